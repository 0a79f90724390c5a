"""Torch kernels of the shape primitives (views where torch can, as NumPy).

Parameters arrive normalised by `diffkit.numpy._shape` (non-negative axis tuples, shapes
without -1).
"""

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
    shape = list(x.shape)
    for a in sorted(a % ndim for a in axes):
        shape.insert(a, 1)
    return x.reshape(shape)


KERNELS = {
    "reshape": reshape,
    "broadcast_to": lambda x, shape: torch.broadcast_to(x, shape),
    "expand_dims": expand_dims,
    "transpose": lambda x, axes: x.permute(axes),
    "concatenate": lambda *xs, axis: torch.cat(xs, dim=axis),
    "flip": lambda x, axis: torch.flip(x, axis),
    "roll": lambda x, shift, axis: torch.roll(x, shift, axis),
    "tril": lambda x, k: torch.tril(x, k),
    "triu": lambda x, k: torch.triu(x, k),
    "copy": torch.clone,
}
