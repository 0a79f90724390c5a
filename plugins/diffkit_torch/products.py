"""Torch kernels of the products. torch refuses mixed dtypes in matmul/einsum where NumPy
promotes, so operands are promoted first (one dtype comparison on the common path)."""

from __future__ import annotations

import torch


def _promote(ops):
    dt = ops[0].dtype
    if all(o.dtype == dt for o in ops):
        return ops
    for o in ops[1:]:
        dt = torch.promote_types(dt, o.dtype)
    return [o.to(dt) for o in ops]


def _matmul(x, y):
    if x.dtype != y.dtype:
        x, y = _promote([x, y])
    return torch.matmul(x, y)


def _einsum(*ops, subscripts):
    return torch.einsum(subscripts, *_promote(list(ops)))


KERNELS = {
    "matmul": _matmul,
    "einsum": _einsum,
}
