"""Traced values: the array-like stand-ins that transforms pass through user code.

A `Tracer` belongs to one `Trace` (one transform invocation). Traces get increasing levels,
so of the tracers meeting in one primitive the one of the highest level is processed first
and the others are constants to it (JAX's dynamic levels: nesting to any order, no
perturbation confusion). Operators and methods forward to `diffkit.numpy`.
"""

from __future__ import annotations

import itertools
import math
import operator

from diffkit.errors import ConcretizationError, LeakedTracerError, TransformError

_levels = itertools.count(1)


class Trace:
    """One transform invocation. `active` turns False when the transform returns."""

    __slots__ = ("level", "active", "transform")

    def __init__(self, transform: str):
        self.level = next(_levels)
        self.active = True
        self.transform = transform

    def leaked(self, prim_name: str) -> LeakedTracerError:
        return LeakedTracerError(
            f"a value traced by `{self.transform}` was used in `{prim_name}` after that "
            f"transform returned (it leaked out through a closure, a global or a stored list). "
            f"Pass the value as an argument of the function you transform, or return it "
            f"instead of storing it."
        )


def _live_trace(x) -> Trace | None:
    """The innermost still-running trace among the levels of tracer `x`, if any."""
    while isinstance(x, Tracer):
        if x._trace.active:
            return x._trace
        x = x.primal
    return None


def _inexact(dtype) -> bool:
    """Floating or complex (NumPy or torch dtype): the values that carry derivatives."""
    kind = getattr(dtype, "kind", None)
    if kind is not None:
        return kind in "fc"
    return bool(getattr(dtype, "is_floating_point", False) or getattr(dtype, "is_complex", False))


# The binary ufuncs that NumPy arrays and scalars use for their operators.
_OPERATOR_UFUNCS = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder", "divmod",
    "power", "matmul", "bitwise_and", "bitwise_or", "bitwise_xor", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal",
})
_ARITHMETIC = frozenset({"add", "subtract", "multiply", "divide"})


class Tracer:
    """Base of traced values: shape/dtype queries and every array operator and method.

    Conversions to Python data (float(x), int(x), x.item(), math.exp(x), y[0] = x for a
    NumPy array y) and NumPy ufuncs other than the operators are refused while they would
    drop a derivative; `bool(x)` and comparisons stay allowed so Python control flow works.
    `numpy.sum(x)` and the other NumPy functions that call array methods work.
    """

    __slots__ = ()

    # -- what the value is -------------------------------------------------------------
    @property
    def primal(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _base(self):
        """The raw array under every level of tracing."""
        v = self
        while isinstance(v, Tracer):
            v = v.primal
        return v

    shape = property(lambda self: tuple(self._base().shape))
    dtype = property(lambda self: self._base().dtype)
    ndim = property(lambda self: len(self._base().shape))
    size = property(lambda self: math.prod(self._base().shape))
    T = property(lambda self: dnp.transpose(self))
    mT = property(lambda self: dnp.swapaxes(self, -1, -2))
    real = property(lambda self: dnp.real(self))
    imag = property(lambda self: dnp.imag(self))
    at = property(lambda self: dnp._at(self))

    def __len__(self):
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d traced array")
        return shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):  # allowed: Python control flow on traced values (`if x > 0:`)
        return bool(self._base())

    def _concrete(self, op: str, fix: str):
        """The raw value for a conversion to Python data (`op`), refused while it would
        drop a derivative: an inexact value of a transform that is still running."""
        trace = _live_trace(self)
        if trace is not None and _inexact(self.dtype):
            raise ConcretizationError(
                f"{op} would turn a value traced by `{trace.transform}` into plain Python "
                f"data and silently drop its derivative. Keep it an array and use "
                f"diffkit.numpy (dnp.exp(x), not math.exp(x); dnp.zeros(n).at[i].set(x), not "
                f"storing x into a NumPy array); to use its value on purpose, with no "
                f"derivative, write {fix} (import diffkit as dk)."
            )
        return self._base()

    __float__ = lambda self: float(self._concrete("float(x)", "float(dk.stop_gradient(x))"))
    __int__ = lambda self: int(self._concrete("int(x)", "int(dk.stop_gradient(x))"))
    __complex__ = lambda self: complex(
        self._concrete("complex(x)", "complex(dk.stop_gradient(x))"))
    # integer-valued tracers (shapes, indices) convert; a float one is no index, as in NumPy
    __index__ = lambda self: operator.index(self._concrete(
        "operator.index(x) (x used as an index or a size)", "int(dk.stop_gradient(x))"))
    item = lambda self, *args: self._concrete(
        "x.item()", "dk.stop_gradient(x).item()").item(*args)
    tolist = lambda self: self._concrete("x.tolist()", "dk.stop_gradient(x).tolist()").tolist()
    # formatting makes a string, which carries no derivative: f"{x:.3f}" prints the value
    __format__ = lambda self, spec: format(self._base(), spec) if spec else str(self)

    def __array__(self, dtype=None, copy=None):
        raise ConcretizationError(
            "a traced value cannot become a plain NumPy array inside a transform: "
            "use diffkit.numpy (import diffkit.numpy as dnp) instead of numpy for this "
            "operation, or dk.stop_gradient(x) if no derivative should flow through it"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy operators with a NumPy array or scalar on the left (`ndarray + x`,
        `np.float64(2) * x`) run diffkit's; every other ufunc would drop the derivative."""
        name = ufunc.__name__
        if method == "__call__" and not kwargs and name in _OPERATOR_UFUNCS:
            if name in _ARITHMETIC:  # the hot ones bind their primitive, as the operators do
                return getattr(_ew, name).bind(*inputs)
            return getattr(dnp, name)(*inputs)
        if "out" in kwargs:
            raise ConcretizationError(
                f"numpy.{name}(..., out=y) (or `y += x` with a NumPy array y) "
                f"cannot write a traced value into a NumPy array: write `y = y + x`, "
                f"which makes y a traced value too"
            )
        call = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
        raise ConcretizationError(
            f"{call} was called on a traced value: NumPy cannot carry its derivative. "
            f"Use diffkit.numpy (import diffkit.numpy as dnp; dnp.{name}(...)), "
            f"or dk.stop_gradient(x) if no derivative should flow through it"
        )

    def __hash__(self):
        return id(self)

    # -- operators (the arithmetic ones bind their primitive directly: the hot path) ------
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

    def __setitem__(self, idx, value):
        raise TypeError(
            "traced arrays are immutable: write `x = x.at[idx].set(value)` "
            "(or .add / .multiply) instead of `x[idx] = value`"
        )

    # -- methods real code calls ---------------------------------------------------------
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
    copy = lambda self: self
    __copy__ = lambda self: self
    __deepcopy__ = lambda self, memo: self


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


from diffkit import numpy as dnp  # noqa: E402  (operators forward to it; imported last: cycle)
from diffkit.primitives import elementwise as _ew  # noqa: E402  (hot operators bind directly)
