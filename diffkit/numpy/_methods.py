"""Every operator and method of a traced value, installed on `Tracer` by one call.

The core's `Tracer` knows no array math (it only answers shape/dtype queries and refuses
conversions that would drop a derivative); `install_tracer_methods()` gives it NumPy's
operators and methods from this namespace, as autograd's numpy_boxes and JAX's
`register_jax_array_methods()` do. The arithmetic operators bind their primitive directly:
they are the hot path.
"""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.core.tracer import Tracer
from diffkit.errors import TransformError
from diffkit.primitives import elementwise as _ew

__all__ = ["install_tracer_methods"]

_ARITHMETIC = frozenset({"add", "subtract", "multiply", "divide"})
# what Python puts in any class's namespace (`__hash__` = None, since _Methods defines __eq__)
_CLASS_ENTRIES = frozenset({"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                            "__hash__", "__firstlineno__", "__static_attributes__"})


def _operator_ufunc(name: str, inputs: tuple):
    """NumPy's operator ufunc `name` with a traced operand (`ndarray + x`)."""
    if name in _ARITHMETIC:  # the hot ones bind their primitive, as the operators do
        return getattr(_ew, name).bind(*inputs)
    return getattr(dnp, name)(*inputs)


class _Methods:
    """The operators, properties and methods `install_tracer_methods` copies onto Tracer."""

    T = property(lambda self: dnp.transpose(self))
    mT = property(lambda self: dnp.swapaxes(self, -1, -2))
    real = property(lambda self: dnp.real(self))
    imag = property(lambda self: dnp.imag(self))
    at = property(lambda self: dnp._at(self))

    __add__ = lambda self, o: _ew.add.bind(self, o)
    __radd__ = lambda self, o: _ew.add.bind(o, self)
    __sub__ = lambda self, o: _ew.subtract.bind(self, o)
    __rsub__ = lambda self, o: _ew.subtract.bind(o, self)
    __mul__ = lambda self, o: _ew.multiply.bind(self, o)
    __rmul__ = lambda self, o: _ew.multiply.bind(o, self)
    __truediv__ = lambda self, o: _ew.divide.bind(self, o)
    __rtruediv__ = lambda self, o: _ew.divide.bind(o, self)
    __floordiv__ = lambda self, o: dnp.floor_divide(self, o)
    __rfloordiv__ = lambda self, o: dnp.floor_divide(o, self)
    __mod__ = lambda self, o: dnp.mod(self, o)
    __rmod__ = lambda self, o: dnp.mod(o, self)
    __divmod__ = lambda self, o: (dnp.floor_divide(self, o), dnp.mod(self, o))
    __pow__ = lambda self, o: dnp.power(self, o)
    __rpow__ = lambda self, o: dnp.power(o, self)
    __matmul__ = lambda self, o: dnp.matmul(self, o)
    __rmatmul__ = lambda self, o: dnp.matmul(o, self)
    __neg__ = lambda self: _ew.negative.bind(self)
    __pos__ = lambda self: self
    __abs__ = lambda self: dnp.abs(self)
    __invert__ = lambda self: dnp.invert(self)
    __and__ = lambda self, o: dnp.bitwise_and(self, o)
    __rand__ = lambda self, o: dnp.bitwise_and(o, self)
    __or__ = lambda self, o: dnp.bitwise_or(self, o)
    __ror__ = lambda self, o: dnp.bitwise_or(o, self)
    __xor__ = lambda self, o: dnp.bitwise_xor(self, o)
    __rxor__ = lambda self, o: dnp.bitwise_xor(o, self)
    __eq__ = lambda self, o: dnp.equal(self, o)
    __ne__ = lambda self, o: dnp.not_equal(self, o)
    __lt__ = lambda self, o: dnp.less(self, o)
    __le__ = lambda self, o: dnp.less_equal(self, o)
    __gt__ = lambda self, o: dnp.greater(self, o)
    __ge__ = lambda self, o: dnp.greater_equal(self, o)
    __getitem__ = lambda self, idx: dnp._getitem(self, idx)
    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        return dnp.reshape(self, shape, order=order)

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes
        return dnp.transpose(self, axes or None)

    # numpy.sum(x), numpy.max(x), ... call these methods with NumPy's keywords (out=, dtype=,
    # initial=, where=), so they take them as ndarray's methods do
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
        s = dnp.sum(_masked(self, where, 0, "sum"), axis, dtype, out, keepdims)
        return s if initial is None else s + initial

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
        p = dnp.prod(_masked(self, where, 1, "prod"), axis, dtype, out, keepdims)
        return p if initial is None else p * initial

    def max(self, axis=None, out=None, keepdims=False, initial=None, where=True):
        m = dnp.max(_masked(self, where, initial, "max"), axis, out, keepdims)
        return m if initial is None else dnp.maximum(m, initial)

    def min(self, axis=None, out=None, keepdims=False, initial=None, where=True):
        m = dnp.min(_masked(self, where, initial, "min"), axis, out, keepdims)
        return m if initial is None else dnp.minimum(m, initial)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
        if where is True:
            return dnp.mean(self, axis, dtype, out, keepdims)
        s = dnp.sum(_masked(self, where, 0, "mean"), axis, dtype, out, keepdims)
        count = dnp.sum(dnp.broadcast_to(where, self.shape), axis, keepdims=keepdims)
        return s / dnp.astype(count, s.dtype)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True):
        _masked(self, where, None, "var")
        return dnp.var(self, axis, dtype, out, ddof, keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True):
        _masked(self, where, None, "std")
        return dnp.std(self, axis, dtype, out, ddof, keepdims)

    def all(self, axis=None, out=None, keepdims=False, *, where=True):
        return dnp.all(_masked(self, where, True, "all"), axis, out, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False, *, where=True):
        return dnp.any(_masked(self, where, False, "any"), axis, out, keepdims=keepdims)

    cumsum = lambda self, axis=None, dtype=None, out=None: dnp.cumsum(self, axis, dtype, out)
    cumprod = lambda self, axis=None, dtype=None, out=None: dnp.cumprod(self, axis, dtype, out)
    argmax = lambda self, axis=None, out=None, *, keepdims=False: dnp.argmax(
        self, axis, out, keepdims=keepdims)
    argmin = lambda self, axis=None, out=None, *, keepdims=False: dnp.argmin(
        self, axis, out, keepdims=keepdims)
    dot = lambda self, o: dnp.dot(self, o)
    astype = lambda self, dtype, copy=True: dnp.astype(self, dtype)
    ravel = lambda self, order="C": dnp.ravel(self, order=order)
    flatten = lambda self, order="C": dnp.ravel(self, order=order)
    squeeze = lambda self, axis=None: dnp.squeeze(self, axis)
    swapaxes = lambda self, a, b: dnp.swapaxes(self, a, b)
    trace = lambda self, offset=0, axis1=0, axis2=1, dtype=None, out=None: dnp.trace(
        self, offset, axis1, axis2, dtype, out)
    clip = lambda self, min=None, max=None, out=None: dnp.clip(self, min, max, out)
    conj = lambda self: dnp.conj(self)
    conjugate = lambda self: dnp.conj(self)
    round = lambda self, decimals=0, out=None: dnp.round(self, decimals, out)
    diagonal = lambda self, offset=0, axis1=0, axis2=1: dnp.diagonal(self, offset, axis1, axis2)


def install_tracer_methods() -> None:
    """Give `Tracer` (and so every trace's values) NumPy's operators and methods."""
    for name, value in vars(_Methods).items():
        if name not in _CLASS_ENTRIES:
            setattr(Tracer, name, value)
    Tracer._operator_ufunc = staticmethod(_operator_ufunc)


def _masked(x, where, identity, name: str):
    """`x` with the elements NumPy's `where=` mask leaves out set to the reduction's
    identity (for max/min: `initial`, which NumPy then requires)."""
    if where is True:
        return x
    if identity is None:
        raise TransformError(
            f"numpy.{name}(x, where=mask) of a traced value needs a value for the masked-out "
            f"elements: " + ("pass initial=" if name in ("max", "min") else
                             "select the elements first (x[mask]) and reduce those")
        )
    return dnp.where(where, x, identity)

