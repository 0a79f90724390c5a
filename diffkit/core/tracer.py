"""Traced values: the array-like stand-ins that transforms pass through user code.

A `Tracer` belongs to one `Trace` (one transform invocation). Traces get increasing levels,
so of the tracers meeting in one primitive the one of the highest level is processed first
and the others are constants to it (JAX's dynamic levels: nesting to any order, no
perturbation confusion). Operators and methods forward to `diffkit.numpy`.
"""

from __future__ import annotations

import itertools
import math

from diffkit.errors import LeakedTracerError

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


class Tracer:
    """Base of traced values: shape/dtype queries and every array operator and method."""

    __slots__ = ()
    __array_ufunc__ = None  # numpy defers `ndarray + tracer` to Tracer.__radd__

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

    def __bool__(self):
        return bool(self._base())

    def __float__(self):
        return float(self._base())

    def __int__(self):
        return int(self._base())

    def __index__(self):
        return int(self._base())

    def __complex__(self):
        return complex(self._base())

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a traced value cannot become a plain NumPy array inside a transform: "
            "use diffkit.numpy (import diffkit.numpy as dnp) instead of numpy for this "
            "operation, or dk.stop_gradient(x) if no derivative should flow through it"
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

    sum = lambda self, axis=None, dtype=None, keepdims=False: dnp.sum(
        self, axis, dtype, keepdims=keepdims)
    mean = lambda self, axis=None, dtype=None, keepdims=False: dnp.mean(
        self, axis, dtype, keepdims=keepdims)
    prod = lambda self, axis=None, keepdims=False: dnp.prod(self, axis, keepdims=keepdims)
    max = lambda self, axis=None, keepdims=False: dnp.max(self, axis, keepdims=keepdims)
    min = lambda self, axis=None, keepdims=False: dnp.min(self, axis, keepdims=keepdims)
    std = lambda self, axis=None, ddof=0, keepdims=False: dnp.std(
        self, axis, ddof=ddof, keepdims=keepdims)
    var = lambda self, axis=None, ddof=0, keepdims=False: dnp.var(
        self, axis, ddof=ddof, keepdims=keepdims)
    cumsum = lambda self, axis=None: dnp.cumsum(self, axis)
    cumprod = lambda self, axis=None: dnp.cumprod(self, axis)
    argmax = lambda self, axis=None: dnp.argmax(self, axis)
    argmin = lambda self, axis=None: dnp.argmin(self, axis)
    dot = lambda self, o: dnp.dot(self, o)
    astype = lambda self, dtype, copy=True: dnp.astype(self, dtype)
    ravel = lambda self, order="C": dnp.ravel(self, order=order)
    flatten = lambda self, order="C": dnp.ravel(self, order=order)
    squeeze = lambda self, axis=None: dnp.squeeze(self, axis)
    swapaxes = lambda self, a, b: dnp.swapaxes(self, a, b)
    trace = lambda self, offset=0, axis1=0, axis2=1: dnp.trace(self, offset, axis1, axis2)
    clip = lambda self, min=None, max=None: dnp.clip(self, min, max)
    conj = lambda self: dnp.conj(self)
    conjugate = lambda self: dnp.conj(self)
    round = lambda self, decimals=0: dnp.round(self, decimals)
    all = lambda self, axis=None, keepdims=False: dnp.all(self, axis, keepdims=keepdims)
    any = lambda self, axis=None, keepdims=False: dnp.any(self, axis, keepdims=keepdims)
    diagonal = lambda self, offset=0, axis1=0, axis2=1: dnp.diagonal(self, offset, axis1, axis2)
    item = lambda self: self._base().item()
    tolist = lambda self: self._base().tolist()
    copy = lambda self: self
    __copy__ = lambda self: self
    __deepcopy__ = lambda self, memo: self


from diffkit import numpy as dnp  # noqa: E402  (operators forward to it; imported last: cycle)
from diffkit.primitives import elementwise as _ew  # noqa: E402  (hot operators bind directly)
