"""Torch kernels of the creation primitives: results on the device of the array imitated.

With `dtype=None`, `*_like` kernels keep the imitated array's dtype (as NumPy does).
"""

from __future__ import annotations

import torch

from diffkit_torch.dtypes import torch_dtype


def _like(fill):
    """A `*_like` kernel: `fill(shape, dtype, device)` when a new shape is asked."""

    def kernel(a, *value, dtype=None, shape=None):
        dt = torch_dtype(dtype) or a.dtype
        if shape is None:
            shape = a.shape
        elif isinstance(shape, int):
            shape = (shape,)
        return fill(shape, *value, dtype=dt, device=a.device)

    return kernel


KERNELS = {
    "zeros_like": _like(torch.zeros),
    "ones_like": _like(torch.ones),
    "full_like": _like(torch.full),
}
