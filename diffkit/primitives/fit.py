"""Fitting a rule's tangent or cotangent to its primal, and real zeros for a symbolic `Zero`.

The one place broadcasting is undone (a cotangent of a broadcast result is summed back) or
applied (a broadcast input's tangent is stretched), and real/complex mismatches resolved.
Written with primitives; installed into the core's hook table `diffkit.core.ops` on import.
"""

from __future__ import annotations

from diffkit.core import dispatch, ops
from diffkit.core.tracer import Tracer
from diffkit.primitives import creation as _creation
from diffkit.primitives import elementwise as _ew
from diffkit.primitives import reductions as _reductions
from diffkit.primitives import shape as _shapes

__all__ = ["fit_to", "unbroadcast", "zeros_like"]


def fit_to(t, like):
    """Make a rule's tangent/cotangent match its primal's shape and dtype."""
    try:
        if t.shape == like.shape and t.dtype == like.dtype:
            return t
    except AttributeError:  # a Python scalar on either side
        if type(t) in (float, complex, int) and getattr(like, "dtype", None) is not None:
            return _number_like(t, like)
    t_shape = _shape(t)
    shape = _shape(like)
    if t_shape != shape:
        # a broadcast input's tangent contribution is stretched; a cotangent of the
        # broadcast result is summed back
        if _broadcasts_to(t_shape, shape):
            t = _shapes.broadcast_to.bind(t, shape=tuple(shape))
        else:
            t = unbroadcast(t, shape)
    dt = getattr(like, "dtype", None)
    tdt = getattr(t, "dtype", None)
    if dt is not None and tdt is not None and tdt != dt:
        if _is_complex(t) and not _is_complex(like):
            t = _ew.real.bind(t)
        t = _ew.astype.bind(t, dtype=dt)
    return t


def zeros_like(x):
    """Zeros of `x`'s shape, dtype and backend (a symbolic Zero made real)."""
    return _creation.zeros_like.bind(x, dtype=None, shape=None)


def _number_like(t, like):
    """A Python number fitted to `like`: the real part for a real `like`, and an array of its
    dtype and backend when `like` is an array (a shape/dtype record keeps the number)."""
    if not _is_complex(like):
        t = t.real
    if isinstance(like, Tracer) or dispatch.registry().backend_of(type(like)) is not None:
        return _creation.full_like.bind(like, fill_value=t, dtype=None, shape=None)
    return t


def _is_complex(x) -> bool:
    """Whether `x` (an array, a shape/dtype record or a number) is complex."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return isinstance(x, complex)
    return getattr(dt, "kind", None) == "c" or bool(getattr(dt, "is_complex", False))


def _broadcasts_to(small: tuple, big: tuple) -> bool:
    if len(small) > len(big):
        return False
    return all(a == b or a == 1 for a, b in zip(small, big[len(big) - len(small):]))


def unbroadcast(g, shape):
    """Sum `g` over the axes broadcasting added or stretched, to get back to `shape`."""
    g_shape = _shape(g)
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g_shape[lead + i] != 1
    )
    if axes:  # the primitives themselves: the axes are already normalized
        g = _reductions.sum.bind(g, axis=axes, keepdims=False)
    return _shapes.reshape.bind(g, shape=tuple(shape)) if _shape(g) != tuple(shape) else g


def _shape(x):
    s = getattr(x, "shape", ())
    return s if type(s) is tuple else tuple(s)


ops.install(fit_to=fit_to, zeros_like=zeros_like)
