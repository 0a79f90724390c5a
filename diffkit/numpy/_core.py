"""Array conversion and dtype queries that are not primitives (they compute nothing)."""

from __future__ import annotations

from diffkit.core.tracer import Tracer

__all__ = ["asarray", "array", "iscomplexobj", "isrealobj", "ndim", "shape", "size"]


def _base(x):
    while isinstance(x, Tracer):
        x = x.primal
    return x


def _has_tracer(seq) -> bool:
    return any(
        isinstance(v, Tracer) or (isinstance(v, list | tuple) and _has_tracer(v)) for v in seq
    )


def asarray(a, dtype=None, *, like=None):
    """Like `np.asarray`: arrays of any backend stay on it; lists of traced scalars are
    stacked (so `dnp.array([x, y])` is differentiable)."""
    if isinstance(a, list | tuple) and _has_tracer(a):
        from diffkit.numpy._shape import stack

        out = stack([asarray(v) for v in a])
        return out if dtype is None else out.astype(dtype)
    if isinstance(a, Tracer):
        return a if dtype is None else a.astype(dtype)
    from diffkit.plugins import registry

    reg = registry()
    like_b = reg.backend_of(type(_base(like))) if like is not None else None
    own = reg.backend_of(type(a))
    if own is not None and (like_b is None or like_b is own):
        return a if dtype is None else own.asarray(a, dtype=dtype)
    backend = like_b or reg.backends["numpy"]
    device = getattr(_base(like), "device", None) if like is not None else None
    return backend.asarray(a, dtype=dtype, device=device)


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
