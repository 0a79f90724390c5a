"""Traced values: the array-like stand-ins that transforms pass through user code.

A `Tracer` belongs to one `Trace` (one transform invocation). Traces get increasing levels,
so of the tracers meeting in one primitive the one of the highest level is processed first
and the others are constants to it (JAX's dynamic levels: nesting to any order, no
perturbation confusion). The core defines only shape/dtype queries, conversions and the
refusals; the namespace layer installs every operator and method
(`diffkit.numpy._methods.install_tracer_methods`, as autograd's numpy_boxes and JAX's
`register_jax_array_methods` do).
"""

from __future__ import annotations

import itertools
import math
import operator

from diffkit.core.dispatch import is_inexact
from diffkit.errors import ConcretizationError, LeakedTracerError

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


# The binary ufuncs that NumPy arrays and scalars use for their operators.
_OPERATOR_UFUNCS = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder", "divmod",
    "power", "matmul", "bitwise_and", "bitwise_or", "bitwise_xor", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal",
})


class Tracer:
    """Base of traced values: shape/dtype queries, conversions and their refusals.

    Conversions to Python data (float(x), int(x), x.item(), math.exp(x), y[0] = x for a
    NumPy array y) and NumPy ufuncs other than the operators are refused while they would
    drop a derivative; `bool(x)` and comparisons stay allowed so Python control flow works.
    `numpy.sum(x)` and the other NumPy functions that call array methods work.
    """

    __slots__ = ()
    # `run(ufunc_name, inputs)` for NumPy's operator ufuncs: installed by the namespace layer
    _operator_ufunc = None

    # -- what the value is -------------------------------------------------------------
    @property
    def primal(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _base(self):
        """The raw array under every level of tracing (for its type, shape, dtype, device)."""
        v = self
        while isinstance(v, Tracer):
            v = v.primal
        return v

    _records_values = False  # a program trace's tracers: uses of their values are recorded

    def _value(self):
        """What code that uses the value with no derivative (a Python decision, an index, a
        mask, a parameter) must see: the raw value, except under a program being traced,
        whose tracer it keeps, so that the program records the use (a guard, equations)
        instead of freezing the traced value into it."""
        v = self
        while isinstance(v, Tracer):
            if v._records_values:
                return v
            v = v.primal
        return v

    shape = property(lambda self: tuple(self._base().shape))
    dtype = property(lambda self: self._base().dtype)
    ndim = property(lambda self: len(self._base().shape))
    size = property(lambda self: math.prod(self._base().shape))

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
        if trace is not None and is_inexact(self):
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
        run = self._operator_ufunc
        if method == "__call__" and not kwargs and name in _OPERATOR_UFUNCS and run:
            return run(name, inputs)
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

    def __setitem__(self, idx, value):
        raise TypeError(
            "traced arrays are immutable: write `x = x.at[idx].set(value)` "
            "(or .add / .multiply) instead of `x[idx] = value`"
        )

    copy = lambda self: self
    __copy__ = lambda self: self
    __deepcopy__ = lambda self, memo: self
