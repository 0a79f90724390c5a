"""Torch kernels of the special functions (`torch.special`).

Integer and boolean inputs become float64 first, as in the NumPy kernels (torch would
give its default float32).
"""

from __future__ import annotations

import math

import torch

_FLOAT = torch.float64


def _float(x):
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(_FLOAT)
    return x


def _unary(f):
    return lambda x: f(_float(x))


def _polygamma_n(n: int, x):
    # (-1)^(n+1) n! zeta(n+1, x): torch's own polygamma(1, x) is off by ~4e-10 relative.
    if n == 0:
        return torch.special.digamma(x)
    return (-1) ** (n + 1) * math.factorial(n) * torch.special.zeta(float(n + 1), x)


def _polygamma(n, x):
    x = _float(x)
    if not isinstance(n, torch.Tensor):
        return _polygamma_n(int(n), x)
    # an array of orders: torch takes one int order at a time
    n, x = torch.broadcast_tensors(n, x)
    out = torch.empty_like(x)
    for k in torch.unique(n).tolist():
        sel = n == k
        out[sel] = _polygamma_n(int(k), x[sel])
    return out


def _softplus(x):
    # log1p(exp(-|x|)) + max(x, 0): exact everywhere (torch's softplus switches to x
    # above a threshold, off by ~1e-9 at 20).
    x = _float(x)
    return torch.log1p(torch.exp(-torch.abs(x))) + torch.clamp(x, min=0)


def _binary(f):
    def kernel(x, y):
        return f(_float(x), _float(y))

    return kernel


KERNELS = {
    "erf": _unary(torch.special.erf),
    "erfc": _unary(torch.special.erfc),
    "erfinv": _unary(torch.special.erfinv),
    "gammaln": _unary(torch.special.gammaln),
    "digamma": _unary(torch.special.digamma),
    "polygamma": _polygamma,
    "expit": _unary(torch.special.expit),
    "logit": _unary(torch.special.logit),
    "softplus": _softplus,
    "xlogy": _binary(torch.special.xlogy),
    "xlog1py": _binary(torch.special.xlog1py),
}
