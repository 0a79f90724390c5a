"""Torch kernels of the elementwise primitives.

Most kernels are the torch function itself (the hot path stays one call): torch's function
of the primitive's name, or of the name in `RENAMED`; `OWN` lists the kernels written here.
torch functions that refuse a Python scalar argument (`torch.maximum(t, 0.0)`, listed in
`SCALARS_AS_TENSORS`) go through `_tensors`, which turns the scalar into a 0-d tensor of its
category's widest dtype (float64, complex128, int64) on the other argument's device: torch
lets 0-d tensors take part in promotion as weakly as scalars, so NumPy 2's rule (Python
scalars are weak) still holds. The float-valued binary functions in `REAL_OF_INTEGERS` take
integer tensors as float64, NumPy's loop for them.
"""

from __future__ import annotations

import math

import torch

from diffkit.primitives.elementwise import PRIMITIVES
from diffkit_torch.dtypes import torch_dtype

_WIDEST = {float: torch.float64, complex: torch.complex128, int: torch.int64, bool: torch.bool}


def _device(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
    return None


def _as_tensor(a, device):
    if isinstance(a, torch.Tensor):
        return a
    return torch.tensor(a, dtype=_WIDEST[type(a)], device=device)


def _tensors(f):
    """`f` with any Python-scalar argument made a 0-d tensor (f wants tensors only)."""

    def kernel(*args):
        device = _device(args)
        return f(*(_as_tensor(a, device) for a in args))

    kernel.__name__ = f.__name__
    return kernel


def _real_tensors(f):
    """`f` of tensors, integer and boolean ones as float64: NumPy's loop for these
    float-valued binary functions (torch refuses integers or gives float32); not on the
    hot path (arctan2, hypot, logaddexp)."""

    def kernel(*args):
        device = _device(args)
        args = [_as_tensor(a, device) for a in args]
        return f(*(a if a.is_floating_point() or a.is_complex() else a.to(torch.float64)
                   for a in args))

    kernel.__name__ = f.__name__
    return kernel


def _promoted(f):
    """`f` on arguments cast to their common dtype (for torch functions that refuse mixed
    dtypes, e.g. heaviside)."""

    def kernel(x, y):
        device = _device((x, y))
        x, y = _as_tensor(x, device), _as_tensor(y, device)
        dt = torch.result_type(x, y)
        return f(x.to(dt), y.to(dt))

    return kernel


def _cbrt(x):
    # torch has no cbrt; pow(|x|, 1/3) with x's sign is NumPy's real cube root.
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return torch.sign(x) * torch.abs(x).pow(1.0 / 3.0)


def _imag(x):
    # torch.imag refuses real tensors; NumPy returns zeros.
    return torch.imag(x) if x.is_complex() else torch.zeros_like(x)


def _angle(z, deg=False):
    a = torch.angle(z)
    return a * (180.0 / math.pi) if deg else a


def _clip(a, lo, hi):
    device = _device((a, lo, hi))
    lo = None if lo is None else _as_tensor(lo, device)
    hi = None if hi is None else _as_tensor(hi, device)
    return torch.clamp(_as_tensor(a, device), min=lo, max=hi)


def _where(c, x, y):
    device = _device((c, x, y))
    c = _as_tensor(c, device)
    if c.dtype != torch.bool:
        c = c != 0
    if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
        x = _as_tensor(x, device)  # two scalars: NumPy's float64, not torch's float32
    return torch.where(c, x, y)


def _astype(x, dtype):
    dt = torch_dtype(dtype)
    if x.is_complex() and not dt.is_complex:
        x = x.real  # drop the imaginary part (NumPy warns, JAX does the same)
    return x.to(dt)


def _sign(x):
    # NumPy 2's sign of complex z is z/|z| (torch.sgn); torch.sign refuses complex.
    return torch.sgn(x) if x.is_complex() else torch.sign(x)


def _round(x, decimals=0):
    if not (x.is_floating_point() or x.is_complex()):
        return x.clone() if decimals >= 0 else torch.round(x.double(), decimals=decimals).to(
            x.dtype)
    return torch.round(x, decimals=decimals)


def _nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return torch.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


def _rounding(f):
    """floor/ceil/trunc: NumPy keeps integer inputs as they are, torch refuses some."""
    return lambda x: f(x) if x.is_floating_point() else x.clone()


def _tanh_grad(g, y):
    """torch's fused kernel for real tensors; for complex ones it conjugates (PyTorch's
    convention), diffkit follows JAX's: no conjugation."""
    if isinstance(g, torch.Tensor) and isinstance(y, torch.Tensor) and g.shape == y.shape \
            and g.dtype == y.dtype and not y.is_complex():
        return torch.ops.aten.tanh_backward(g, y)
    return g * (1 - y * y)


# Every elementwise primitive's kernel is torch's function of its name, except:
RENAMED = {  # torch's function of another name
    "subtract": "sub", "multiply": "mul", "divide": "true_divide", "mod": "remainder",
    "power": "pow", "negative": "neg", "fabs": "abs", "arcsin": "asin", "arccos": "acos",
    "arctan": "atan", "arctan2": "atan2", "arcsinh": "asinh", "arccosh": "acosh",
    "arctanh": "atanh", "conj": "conj_physical", "equal": "eq", "not_equal": "ne",
    "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
    "invert": "bitwise_not",
}
SCALARS_AS_TENSORS = {  # torch functions that refuse a Python scalar argument
    "fmod", "logaddexp", "logaddexp2", "arctan2", "hypot", "maximum", "minimum", "fmax",
    "fmin", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
}
OWN = {  # kernels written here
    "cbrt": _cbrt,
    "tanh_grad": _tanh_grad,
    "imag": _imag,
    "angle": _angle,
    "clip": _clip,
    "where": _where,
    "nan_to_num": _nan_to_num,
    "heaviside": _promoted(torch.heaviside),
    "astype": _astype,
    "stop_gradient": torch.Tensor.detach,
    "floor": _rounding(torch.floor),
    "ceil": _rounding(torch.ceil),
    "rint": _rounding(torch.round),
    "trunc": _rounding(torch.trunc),
    "fix": _rounding(torch.trunc),
    "sign": _sign,
    "round": _round,
}


REAL_OF_INTEGERS = {"arctan2", "hypot", "logaddexp", "logaddexp2"}  # NumPy: float64 of ints


def _kernel(name: str):
    """The kernel of primitive `name`: its own, or torch's function of its (torch) name."""
    if name in OWN:
        return OWN[name]
    f = getattr(torch, RENAMED.get(name, name), None)
    if f is not None and name in REAL_OF_INTEGERS:
        return _real_tensors(f)
    return _tensors(f) if f is not None and name in SCALARS_AS_TENSORS else f


def kernels(primitives) -> dict:
    """The kernel of each of `primitives` that has one (`_kernel`)."""
    return {p.name: k for p in primitives if (k := _kernel(p.name)) is not None}


KERNELS = kernels(PRIMITIVES)
