"""Dtypes: NumPy / Python / string dtypes as torch dtypes, and NumPy's defaults.

Kernels receive dtype parameters exactly as users wrote them (`np.float32`, `"float64"`,
`float`, `torch.float32`); `torch_dtype` maps each to a `torch.dtype` through a cache, so
the cost on a hot path is one dict lookup.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

__all__ = ["torch_dtype", "numpy_dtype", "FLOAT", "INT", "is_inexact"]

FLOAT = torch.float64  # NumPy's default float: creation with dtype=None follows NumPy
INT = torch.int64

_NAMES = (
    "bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
_TO_TORCH: dict = {None: None}
for _n in _NAMES:
    _TO_TORCH[np.dtype(_n)] = getattr(torch, _n)
_FROM_TORCH = {v: k for k, v in _TO_TORCH.items() if v is not None}
_FROM_TORCH[torch.bfloat16] = np.dtype(np.float32)  # NumPy has no bfloat16: widen


def torch_dtype(dtype) -> torch.dtype | None:
    """The torch dtype for a NumPy, Python, string or torch dtype (None stays None)."""
    try:
        return _TO_TORCH[dtype]
    except (KeyError, TypeError):
        pass
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        np_dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype the torch backend understands") from None
    if np_dt not in _TO_TORCH:
        raise TypeError(
            f"NumPy dtype {np_dt} has no torch equivalent; use one of {', '.join(_NAMES)}"
        )
    out = _TO_TORCH[np_dt]
    with contextlib.suppress(TypeError):  # an unhashable dtype-like is not cached
        _TO_TORCH[dtype] = out
    return out


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a torch dtype (bfloat16 widens to float32)."""
    return _FROM_TORCH[dtype]


def is_inexact(dtype: torch.dtype) -> bool:
    """Floating or complex: the dtypes that carry derivatives."""
    return dtype.is_floating_point or dtype.is_complex
