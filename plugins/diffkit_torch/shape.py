"""Torch kernels of the shape primitives (views where torch can, as NumPy)."""

from __future__ import annotations

import torch


def _reverse(x):
    return x.permute(*range(x.ndim - 1, -1, -1))


def reshape(x, shape, order="C"):
    if order == "C":
        return torch.reshape(x, shape)
    if order != "F":
        raise ValueError(f"reshape order must be 'C' or 'F', got {order!r}")
    # Fortran order: reverse the axes, reshape in C order to the reversed shape, reverse.
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _reverse(torch.reshape(_reverse(x), shape[::-1]))


def expand_dims(x, axis):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = x.ndim + len(axes)
    new = sorted(a % ndim for a in axes)
    shape = list(x.shape)
    for a in new:
        shape.insert(a, 1)
    return x.reshape(shape)


KERNELS = {
    "reshape": reshape,
    "broadcast_to": lambda x, shape: torch.broadcast_to(x, shape),
    "expand_dims": expand_dims,
}
