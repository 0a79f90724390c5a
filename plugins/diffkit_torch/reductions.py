"""Torch kernels of the reductions (`axis` -> `dim`, `keepdims` -> `keepdim`).

NumPy reduces over nothing when `axis=()`; torch reads `dim=()` as every axis, so the
empty tuple is handled before calling torch.
"""

from __future__ import annotations

import torch


def _sum(x, axis=None, keepdims=False):
    if axis == ():
        return x.clone() if x.dtype not in _WIDEN else x.to(torch.int64)
    return torch.sum(x, dim=axis, keepdim=keepdims)


# NumPy sums small integers and booleans in the default integer (int64), like torch.
_WIDEN = frozenset({torch.bool, torch.int8, torch.int16, torch.int32, torch.uint8})

KERNELS = {
    "sum": _sum,
}
