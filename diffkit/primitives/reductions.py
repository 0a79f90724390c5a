"""Reductions: sum, ... — each VJP broadcasts the cotangent back over the reduced axes."""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.core.rules import linear
from diffkit.core.sampling import cases, uniform


def _expand_reduced(g, x, axis, keepdims):
    """Broadcast a reduction's cotangent back to the input's shape."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        g = dnp.expand_dims(g, tuple(a % x.ndim for a in axes))
    elif axis is None and not keepdims:
        g = dnp.reshape(g, (1,) * x.ndim)
    return dnp.broadcast_to(g, x.shape)


sum = linear(  # noqa: A001 (NumPy's name)
    "sum",
    lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims),
    saves_ans=False,
    sample=lambda rng: uniform()(rng) + cases(
        (lambda r: (r.normal(size=(2, 3, 4)),), {"axis": 1}),
        (lambda r: (r.normal(size=(2, 3, 4)),), {"axis": (0, 2), "keepdims": True}),
    )(rng),
)

PRIMITIVES = (sum,)
