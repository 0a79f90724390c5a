"""Sorting-based set and search functions with NumPy's signatures: searchsorted, unique,
partition, argpartition.

Positions and counts come from non-differentiable primitives (integer results); values
are gathered with them, so `unique` and `partition` carry the derivative of the elements
they pick (at ties, `unique`'s goes to the first occurrence).
"""

from __future__ import annotations

import operator

from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _arr, asarray, concrete
from diffkit.primitives import reductions as P

__all__ = ["searchsorted", "unique", "partition", "argpartition"]


def searchsorted(a, v, side="left", sorter=None):
    """Indices where `v` would be inserted into the sorted 1-D `a` to keep it sorted."""
    if side not in ("left", "right"):
        raise ValueError(f"dnp.searchsorted: side must be 'left' or 'right', got {side!r}")
    a = _arr(a)
    if len(a.shape) != 1:
        raise ValueError(f"dnp.searchsorted: a must be 1-D, got shape {tuple(a.shape)}")
    if sorter is not None:
        a = _ix.take(a, sorter)
    v = asarray(v, like=a)
    return P.searchsorted.bind(_el.stop_gradient(a), _el.stop_gradient(v), side=side)


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None,
           *, equal_nan=True, sorted=True):  # noqa: A002 (NumPy's name)
    """The sorted unique elements (or slices along `axis`) and, on request, the index of
    each one's first occurrence, the inverse that rebuilds `ar`, and the counts."""
    ar = _arr(ar)
    if axis is not None:
        axis = _sh.normalize_axis("unique", axis, len(ar.shape))
    index, inverse, counts = P.unique.bind(_el.stop_gradient(ar), axis=axis)
    values = _ix.take(_sh.ravel(ar) if axis is None else ar, index, axis=axis or 0)
    extra = [x for x, want in ((index, return_index), (inverse, return_inverse),
                               (counts, return_counts)) if want]
    return (values, *extra) if extra else values


def _kth(kth, n: int, fn: str) -> tuple:
    kth = concrete(kth, f"dnp.{fn}", "kth", "it is a position (an integer)")
    ks = (kth,) if getattr(kth, "ndim", 0) == 0 and not isinstance(kth, list | tuple) else kth
    out = []
    for k in ks:
        k = operator.index(k)
        if not -n <= k < n:
            raise ValueError(f"dnp.{fn}: kth(={k}) out of bounds ({n})")
        out.append(k % n)
    return tuple(out)


def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """Indices that partition `a` around the kth element(s) (NumPy's own order on NumPy
    arrays; a sort on torch, also a valid partition)."""
    a = _arr(a)
    if axis is None:
        a, axis = _sh.ravel(a), 0
    axis = _sh.normalize_axis("argpartition", axis, len(a.shape))
    kth = _kth(kth, a.shape[axis], "argpartition")
    return P.argpartition.bind(_el.stop_gradient(a), kth=kth, axis=axis)


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A copy of `a` with the kth element in its sorted place, smaller ones before it and
    larger ones after; differentiable (a gather)."""
    a = _arr(a)
    if axis is None:
        a, axis = _sh.ravel(a), 0
    return _ix.take_along_axis(a, argpartition(a, kth, axis), axis)
