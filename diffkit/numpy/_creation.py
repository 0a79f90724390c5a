"""Array creation (no derivative flows into a constant)."""

from __future__ import annotations

from diffkit.primitives import creation as P

__all__ = ["zeros_like", "ones_like", "full_like"]


def zeros_like(a, dtype=None, shape=None):
    return P.zeros_like.bind(a, dtype=dtype, shape=shape)


def ones_like(a, dtype=None, shape=None):
    return P.ones_like.bind(a, dtype=dtype, shape=shape)


def full_like(a, fill_value, dtype=None, shape=None):
    return P.full_like.bind(a, fill_value=fill_value, dtype=dtype, shape=shape)
