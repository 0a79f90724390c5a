"""Sampling domains: each primitive carries a function that draws valid test inputs.

`check_primitive` calls `prim.sample(rng)` and gets a list of `(args, params)` cases made of
NumPy arrays (converted to the backend under test). These helpers build such functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["uniform", "cases", "away_from"]

SHAPES = ((), (3,), (2, 3))


def uniform(lo: float = -2.0, hi: float = 2.0, nargs: int = 1,
            shapes: Sequence[tuple] = SHAPES, dtype=np.float64, **params) -> Callable:
    """Arguments drawn uniformly from [lo, hi], all of one shape, for each shape; plus one
    broadcasting case (shapes (2, 3) and (3,)) when there are two or more arguments."""

    def sample(rng):
        out = []
        for shape in shapes:
            args = tuple(rng.uniform(lo, hi, shape).astype(dtype) for _ in range(nargs))
            out.append((args, dict(params)))
        if nargs >= 2:
            args = (rng.uniform(lo, hi, (2, 3)).astype(dtype),) + tuple(
                rng.uniform(lo, hi, (3,)).astype(dtype) for _ in range(nargs - 1)
            )
            out.append((args, dict(params)))
        return out

    return sample


def away_from(points: Sequence[float], lo=-2.0, hi=2.0, gap=0.2, **kw) -> Callable:
    """Like `uniform`, but keeps every value at least `gap` away from `points` (kinks,
    poles, ties), where finite differences are meaningless."""
    base = uniform(lo, hi, **kw)

    def push(a):
        a = np.array(a, copy=True)
        for p in points:
            near = np.abs(a - p) < gap
            a[near] = p + np.where(a[near] >= p, gap, -gap) * 1.5
        return a

    def sample(rng):
        return [(tuple(push(a) for a in args), params) for args, params in base(rng)]

    return sample


def cases(*fixed: tuple) -> Callable:
    """Explicit cases: each a `(args, params)` pair, args as NumPy arrays or a builder
    `builder(rng) -> args`."""

    def sample(rng):
        out = []
        for args, params in fixed:
            out.append((args(rng) if callable(args) else args, dict(params)))
        return out

    return sample
