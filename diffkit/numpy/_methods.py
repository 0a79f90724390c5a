"""Every operator and method of a traced value, installed on `Tracer` by one call.

The core's `Tracer` knows no array math (it only answers shape/dtype queries and refuses
conversions that would drop a derivative); `install_tracer_methods()` gives it NumPy's
operators and methods from this namespace, as autograd's numpy_boxes and JAX's
`register_jax_array_methods()` do. The arithmetic operators bind their primitive directly:
they are the hot path.
"""

from __future__ import annotations

from diffkit.core.tracer import Tracer
from diffkit.errors import TransformError
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _products as _pr
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
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
    return (_pr.matmul if name == "matmul" else getattr(_el, name))(*inputs)


class _Methods:
    """The operators, properties and methods `install_tracer_methods` copies onto Tracer."""

    T = property(lambda self: _sh.transpose(self))
    mT = property(lambda self: _sh.swapaxes(self, -1, -2))
    real = property(lambda self: _el.real(self))
    imag = property(lambda self: _el.imag(self))
    at = property(lambda self: _ix._at(self))

    __add__ = lambda self, o: _ew.add.bind(self, o)
    __radd__ = lambda self, o: _ew.add.bind(o, self)
    __sub__ = lambda self, o: _ew.subtract.bind(self, o)
    __rsub__ = lambda self, o: _ew.subtract.bind(o, self)
    __mul__ = lambda self, o: _ew.multiply.bind(self, o)
    __rmul__ = lambda self, o: _ew.multiply.bind(o, self)
    __truediv__ = lambda self, o: _ew.divide.bind(self, o)
    __rtruediv__ = lambda self, o: _ew.divide.bind(o, self)
    __floordiv__ = lambda self, o: _el.floor_divide(self, o)
    __rfloordiv__ = lambda self, o: _el.floor_divide(o, self)
    __mod__ = lambda self, o: _el.mod(self, o)
    __rmod__ = lambda self, o: _el.mod(o, self)
    __divmod__ = lambda self, o: (_el.floor_divide(self, o), _el.mod(self, o))
    __pow__ = lambda self, o: _el.power(self, o)
    __rpow__ = lambda self, o: _el.power(o, self)
    __matmul__ = lambda self, o: _pr.matmul(self, o)
    __rmatmul__ = lambda self, o: _pr.matmul(o, self)
    __neg__ = lambda self: _ew.negative.bind(self)
    __pos__ = lambda self: self
    __abs__ = lambda self: _el.abs(self)
    __invert__ = lambda self: _el.invert(self)
    __and__ = lambda self, o: _el.bitwise_and(self, o)
    __rand__ = lambda self, o: _el.bitwise_and(o, self)
    __or__ = lambda self, o: _el.bitwise_or(self, o)
    __ror__ = lambda self, o: _el.bitwise_or(o, self)
    __xor__ = lambda self, o: _el.bitwise_xor(self, o)
    __rxor__ = lambda self, o: _el.bitwise_xor(o, self)
    __eq__ = lambda self, o: _el.equal(self, o)
    __ne__ = lambda self, o: _el.not_equal(self, o)
    __lt__ = lambda self, o: _el.less(self, o)
    __le__ = lambda self, o: _el.less_equal(self, o)
    __gt__ = lambda self, o: _el.greater(self, o)
    __ge__ = lambda self, o: _el.greater_equal(self, o)
    __getitem__ = lambda self, idx: _ix._getitem(self, idx)
    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        return _sh.reshape(self, shape, order=order)

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes
        return _sh.transpose(self, axes or None)

    # numpy.sum(x), numpy.max(x), ... call these methods with NumPy's keywords (out=, dtype=,
    # initial=, where=), so they take them as ndarray's methods do
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
        s = _rd.sum(_masked(self, where, 0, "sum"), axis, dtype, out, keepdims)
        return s if initial is None else s + initial

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
        p = _rd.prod(_masked(self, where, 1, "prod"), axis, dtype, out, keepdims)
        return p if initial is None else p * initial

    def max(self, axis=None, out=None, keepdims=False, initial=None, where=True):
        m = _rd.max(_masked(self, where, initial, "max"), axis, out, keepdims)
        return m if initial is None else _el.maximum(m, initial)

    def min(self, axis=None, out=None, keepdims=False, initial=None, where=True):
        m = _rd.min(_masked(self, where, initial, "min"), axis, out, keepdims)
        return m if initial is None else _el.minimum(m, initial)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
        if where is True:
            return _rd.mean(self, axis, dtype, out, keepdims)
        s = _rd.sum(_masked(self, where, 0, "mean"), axis, dtype, out, keepdims)
        count = _rd.sum(_sh.broadcast_to(where, self.shape), axis, keepdims=keepdims)
        return s / _el.astype(count, s.dtype)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True):
        _masked(self, where, None, "var")
        return _rd.var(self, axis, dtype, out, ddof, keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True):
        _masked(self, where, None, "std")
        return _rd.std(self, axis, dtype, out, ddof, keepdims)

    def all(self, axis=None, out=None, keepdims=False, *, where=True):
        return _rd.all(_masked(self, where, True, "all"), axis, out, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False, *, where=True):
        return _rd.any(_masked(self, where, False, "any"), axis, out, keepdims=keepdims)

    cumsum = lambda self, axis=None, dtype=None, out=None: _rd.cumsum(self, axis, dtype, out)
    cumprod = lambda self, axis=None, dtype=None, out=None: _rd.cumprod(self, axis, dtype, out)
    argmax = lambda self, axis=None, out=None, *, keepdims=False: _rd.argmax(
        self, axis, out, keepdims=keepdims)
    argmin = lambda self, axis=None, out=None, *, keepdims=False: _rd.argmin(
        self, axis, out, keepdims=keepdims)
    dot = lambda self, o: _pr.dot(self, o)
    astype = lambda self, dtype, copy=True: _el.astype(self, dtype)
    ravel = lambda self, order="C": _sh.ravel(self, order=order)
    flatten = lambda self, order="C": _sh.ravel(self, order=order)
    squeeze = lambda self, axis=None: _sh.squeeze(self, axis)
    swapaxes = lambda self, a, b: _sh.swapaxes(self, a, b)
    trace = lambda self, offset=0, axis1=0, axis2=1, dtype=None, out=None: _pr.trace(
        self, offset, axis1, axis2, dtype, out)
    clip = lambda self, min=None, max=None, out=None: _el.clip(self, min, max, out)
    conj = lambda self: _el.conj(self)
    conjugate = lambda self: _el.conj(self)
    round = lambda self, decimals=0, out=None: _el.round(self, decimals, out)
    diagonal = lambda self, offset=0, axis1=0, axis2=1: _ix.diagonal(self, offset, axis1, axis2)
    repeat = lambda self, repeats, axis=None: _sh.repeat(self, repeats, axis)
    argsort = lambda self, axis=-1, kind=None, order=None, *, stable=None: _ix.argsort(
        self, axis, kind, order, stable=stable)
    itemsize = property(lambda self: self.dtype.itemsize)  # NumPy's and torch's dtypes have it
    nbytes = property(lambda self: self.size * self.dtype.itemsize)


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
    return _el.where(where, x, identity)

