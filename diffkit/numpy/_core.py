"""Array conversion, dtype queries and NumPy's constants and dtype names (nothing here
computes: these are not primitives)."""

from __future__ import annotations

import math

import numpy as _np

from diffkit import config
from diffkit.core import defaults
from diffkit.core.dispatch import default_backend, is_inexact, registry
from diffkit.core.tracer import Tracer, _live_trace
from diffkit.errors import ConcretizationError, DiffkitError
from diffkit.primitives import shape as P

DTYPES = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128")
__all__ = ["asarray", "array", "iscomplexobj", "isrealobj", "ndim", "shape", "size", "pi", "e",
           "inf", "nan", "newaxis", "euler_gamma", "dtype", *DTYPES]

# NumPy's constants, and its dtype names (the torch backend maps them: dnp.float32 is
# torch.float32 there), so code written against `np.` runs with `dnp.` unchanged.
pi, e, inf, nan, newaxis, euler_gamma = math.pi, math.e, math.inf, math.nan, None, _np.euler_gamma
dtype = _np.dtype
(bool_, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, float32, float64,
 complex64, complex128) = (getattr(_np, n) for n in DTYPES)


def _configured_defaults() -> dict:
    """The user configuration's `defaults:` mapping (backend, device, dtype), checked."""
    conf = config.user_config(DiffkitError).get("defaults") or {}
    if not isinstance(conf, dict) or set(conf) - set(defaults.ENV):
        raise DiffkitError(f"{config.user_config_path()}: 'defaults:' must be a mapping with "
                           f"keys among backend, device, dtype; got {config.show(conf)}")
    return conf


defaults.set_loader(_configured_defaults)


def _base(x):
    """The raw array under every tracer: for its type, shape, dtype and device."""
    while isinstance(x, Tracer):
        x = x.primal
    return x


def _value(x):
    """`x` as data with no derivative (a decision, a size, an index): the raw value, or the
    tracer of a program being traced, which records the use (`Tracer._value`)."""
    return x._value() if isinstance(x, Tracer) else x


def _has_tracer(seq) -> bool:
    return any(
        isinstance(v, Tracer) or (isinstance(v, list | tuple) and _has_tracer(v)) for v in seq
    )


def is_traced(v) -> bool:
    """True if `v` (a value, or a list/tuple of them) holds a float/complex value traced by
    a transform that is still running: one whose derivative is live."""
    if isinstance(v, list | tuple):
        return any(is_traced(e) for e in v)
    return (isinstance(v, Tracer) and _live_trace(v) is not None
            and is_inexact(v._base()))


def concrete(v, fn: str, arg: str, why: str):
    """`v` as plain data, for a parameter that is a size, an order or a mode rather than an
    operand. A live traced float is refused naming `fn` and `arg` (`why` says why it carries
    no derivative): silently using its value would drop that derivative."""
    if is_traced(v):
        trace = _live_trace(next(e for e in _flat(v) if is_traced(e)))
        raise ConcretizationError(
            f"{fn}: `{arg}` is a float traced by `{trace.transform}`, but {why}, so its "
            f"derivative would be lost. Pass a plain number, or dk.stop_gradient({arg}) to "
            f"use its value with no derivative (import diffkit as dk)."
        )
    if isinstance(v, list | tuple):
        return type(v)(concrete(e, fn, arg, why) for e in v)
    return _value(v)


def _flat(v) -> list:
    return [x for e in v for x in _flat(e)] if isinstance(v, list | tuple) else [v]


def asarray(a, dtype=None, *, like=None):
    """Like `np.asarray`: arrays of any backend stay on it; a list holding traced values or
    arrays of a backend other than NumPy is stacked on that backend (so `dnp.array([x, y])`
    is differentiable); other lists and numbers go to `like`'s backend and device, else to
    the default backend (`dk.default_backend`, with its float dtype)."""
    if isinstance(a, list | tuple):
        strong = _strong_leaf(a)
        if strong is not None:  # numbers and NumPy values join its backend
            out = _stack([asarray(v, like=strong) for v in a])
            return out if dtype is None else out.astype(dtype)
    if isinstance(a, Tracer):
        return a if dtype is None else a.astype(dtype)
    reg = registry()
    like_b = reg.backend_of(type(_base(like))) if like is not None else None
    own = reg.backend_of(type(a))
    if own is not None and (like_b is None or like_b is own):
        return a if dtype is None else own.asarray(a, dtype=dtype)
    if like_b is not None:
        return like_b.asarray(a, dtype=dtype, device=getattr(_base(like), "device", None))
    backend, d = default_backend(reg)
    out = backend.asarray(a, dtype=dtype, device=d.device)
    if dtype is None and d.dtype is not None and _dtype_kind(out) == "f" and own is None:
        out = backend.asarray(out, dtype=d.dtype)  # Python floats take the default dtype
    return out


def _strong_leaf(seq):
    """The first traced value or array of a backend other than the registry's default in a
    nested list (None if there is none): the backend a mixed list is stacked on."""
    reg = registry()
    for v in _flat(seq):
        if isinstance(v, Tracer):
            return v
        b = reg.backend_of(type(v))
        if b is not None and not b.default:
            return v
    return None


def _stack(arrays: list):
    """`dnp.stack(arrays)` on the primitives (this module sits below the namespace's stack)."""
    shape = tuple(arrays[0].shape)
    if any(tuple(a.shape) != shape for a in arrays):
        raise ValueError(f"dnp.stack: all input arrays must have the same shape, got "
                         f"{[tuple(a.shape) for a in arrays]}")
    rows = [P.reshape_to(a, (1,) + shape) for a in arrays]
    return rows[0] if len(rows) == 1 else P.concatenate.bind(*rows, axis=0)


def _arr(a):
    """Arrays (of any backend) and tracers stay; lists and scalars become arrays."""
    return a if isinstance(a, Tracer) or hasattr(a, "shape") else asarray(a)


def array(a, dtype=None, *, copy=True, like=None):
    """Like `np.array` (diffkit arrays are immutable, so a copy is never needed)."""
    return asarray(a, dtype=dtype, like=like)


def _dtype_kind(x) -> str:
    dt = getattr(_base(x), "dtype", None)
    if dt is None:
        return {complex: "c", float: "f", int: "i", bool: "b"}.get(type(x), "O")
    kind = getattr(dt, "kind", None)
    if kind is not None:
        return kind
    if getattr(dt, "is_complex", False):
        return "c"
    return "f" if getattr(dt, "is_floating_point", False) else "i"


def iscomplexobj(x) -> bool:
    """True if `x` has a complex dtype."""
    return _dtype_kind(x) == "c"


def isrealobj(x) -> bool:
    """True if `x` does not have a complex dtype."""
    return _dtype_kind(x) != "c"


def ndim(a) -> int:
    return len(shape(a))


def shape(a) -> tuple:
    return tuple(getattr(_base(a), "shape", ()))


def size(a, axis=None) -> int:
    s = shape(a)
    if axis is not None:
        return s[axis]
    n = 1
    for d in s:
        n *= d
    return n
