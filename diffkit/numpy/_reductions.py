"""Reductions with NumPy's signatures."""

from __future__ import annotations

from diffkit.primitives import reductions as P

__all__ = ["sum"]


def sum(a, axis=None, dtype=None, out=None, keepdims=False):  # noqa: A001
    if out is not None:
        raise TypeError("dnp.sum does not support out=: diffkit arrays are immutable")
    if isinstance(axis, list):
        axis = tuple(axis)
    r = P.sum.bind(a, axis=axis, keepdims=keepdims)
    return r if dtype is None else r.astype(dtype)
