"""Torch kernels of the creation primitives: results on the device of `like`.

`dtype=None` means NumPy's default for the function (float64 for zeros/ones/eye/tri/linspace,
the fill value's type for full, int64 or float64 for arange), never torch's default
float32, so both backends return the same arrays. `*_like` keep the imitated array's dtype.
"""

from __future__ import annotations

import torch

from diffkit_torch.dtypes import FLOAT, INT, torch_dtype

_SCALAR_DTYPE = {bool: torch.bool, int: INT, float: FLOAT, complex: torch.complex128}


def _device(like):
    """The device of `like`; torch's default one when there is none (a call with no array)."""
    return None if like is None else like.device


def _shape(shape) -> tuple:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _value_dtype(v) -> torch.dtype:
    """NumPy's dtype for a fill value: a Python scalar's widest, an array's own."""
    if isinstance(v, torch.Tensor):
        return v.dtype
    return _SCALAR_DTYPE.get(type(v)) or torch_dtype(getattr(v, "dtype", FLOAT))


def _like(fill):
    """A `*_like` kernel: `fill(shape, [fill_value], dtype, device)`."""

    def kernel(a, dtype=None, shape=None, **fill_value):
        dt = torch_dtype(dtype) or a.dtype
        return fill(a.shape if shape is None else _shape(shape), **fill_value, dtype=dt,
                    device=a.device)

    return kernel


def _full(like, shape, fill_value, dtype=None):
    dt = torch_dtype(dtype) or _value_dtype(fill_value)
    return torch.full(_shape(shape), fill_value, dtype=dt, device=_device(like))


def _eye(like, N, M, k, dtype=None):
    out = torch.zeros(N, N if M is None else M, dtype=torch_dtype(dtype) or FLOAT,
                      device=_device(like))
    out.diagonal(k).fill_(1)
    return out


def _tri(like, N, M, k, dtype=None):
    ones = torch.ones(N, N if M is None else M, dtype=torch_dtype(dtype) or FLOAT,
                      device=_device(like))
    return torch.tril(ones, k)


def _arange(like, start, stop, step, dtype=None):
    if stop is None:
        start, stop = 0, start
    dt = torch_dtype(dtype)
    if dt is None:
        dt = FLOAT if any(isinstance(v, float) for v in (start, stop, step)) else INT
    return torch.arange(start, stop, step, dtype=dt, device=_device(like))


def _linspace(like, start, stop, num, endpoint, dtype, axis):
    """NumPy's formula (start + i * step, the last point set to `stop`), so both backends
    agree to the last bit; start/stop may be arrays (points stacked along `axis`)."""
    device = _device(like)
    start = torch.as_tensor(start, dtype=FLOAT, device=device)
    stop = torch.as_tensor(stop, dtype=FLOAT, device=device)
    div = (num - 1) if endpoint else num
    delta = stop - start
    y = torch.arange(num, dtype=FLOAT, device=device).reshape((-1,) + (1,) * delta.ndim)
    y = y * (delta / div) + start if div > 0 else y * delta + start
    if endpoint and num > 1:
        y[-1] = stop
    if axis != 0:
        y = torch.movedim(y, 0, axis)
    dt = torch_dtype(dtype)
    if dt is not None and not (dt.is_floating_point or dt.is_complex):
        y = torch.floor(y)
    return y if dt is None else y.to(dt)


KERNELS = {
    "zeros_like": _like(torch.zeros),
    "ones_like": _like(torch.ones),
    "full_like": _like(torch.full),
    "zeros": lambda like, shape, dtype=None: torch.zeros(
        _shape(shape), dtype=torch_dtype(dtype) or FLOAT, device=_device(like)),
    "ones": lambda like, shape, dtype=None: torch.ones(
        _shape(shape), dtype=torch_dtype(dtype) or FLOAT, device=_device(like)),
    "full": _full,
    "eye": _eye,
    "tri": _tri,
    "arange": _arange,
    "linspace": _linspace,
}
