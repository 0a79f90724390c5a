"""Torch kernels of the special functions (`torch.special`).

Integer and boolean inputs become float64 first, as in the NumPy kernels (torch would
give its default float32). What torch lacks, or computes inaccurately (its
bessel_j0/j1/y0/y1 are off by up to 1e-8/1e-6 in float64), is computed by SciPy on a host
copy: betainc, stdtr, the Bessel functions j0, j1, y0, y1 and those of any order (jv, yv,
iv, ive, kv). Without SciPy those raise a MissingKernelError saying to install
diffkit[scipy].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffkit.errors import MissingKernelError

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


def _tensors(x, y):
    """Both as floating tensors: a Python number takes the other's dtype and device."""
    x, y = _float(x), _float(y)
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=y.dtype, device=y.device)
    elif not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y, dtype=x.dtype, device=x.device)
    return x, y


def _binary(f):
    """f(x, y) on tensors (gammainc and gammaincc take no Python numbers)."""
    return lambda x, y: f(*_tensors(x, y))


def _gammasgn(x):
    """The sign of Gamma(x) as SciPy gives it: 1 for x > 0, (-1)^floor(x) below, the sign
    of the zero at +-0, nan at the poles (negative integers, -inf) and at nan."""
    x = _float(x)
    fl = torch.floor(x)
    s = torch.where(torch.remainder(fl, 2) == 0, 1.0, -1.0).to(x.dtype)
    s = torch.where(x > 0, torch.ones_like(x), s)
    s = torch.where(x == 0, torch.copysign(torch.ones_like(x), x), s)
    return torch.where(((x < 0) & (x == fl)) | torch.isnan(x), torch.nan, s)


def _rgamma(x):
    x = _float(x)
    lg = torch.lgamma(x)
    return torch.where(torch.isinf(lg), 0.0, _gammasgn(x) * torch.exp(-lg)).to(x.dtype)


def _betaln(a, b):
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def _beta(a, b):
    a, b = _tensors(a, b)
    return _gammasgn(a) * _gammasgn(b) * _gammasgn(a + b) * torch.exp(_betaln(a, b))


_scipy_special = None


def _sp():
    """`scipy.special`, or False when SciPy is not installed (looked up once)."""
    global _scipy_special
    if _scipy_special is None:
        try:
            import scipy.special as sp
        except ImportError:
            sp = False
        _scipy_special = sp
    return _scipy_special


def _on_host(name):
    """SciPy's `name` on a host copy, returned on the tensors' device in their precision."""
    def kernel(*args):
        sp = _sp()
        if not sp:
            raise MissingKernelError(
                f"scipy.special.{name} on the torch backend needs SciPy, which is not "
                f"installed (torch.special has no accurate {name}; diffkit computes it with "
                f"SciPy on a host copy): pip install 'diffkit[scipy]'"
            )
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        floats = [a.dtype for a in tensors if a.is_floating_point()]
        dtype = floats[0] if floats else _FLOAT
        for d in floats[1:]:
            dtype = torch.promote_types(dtype, d)
        host = [a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a for a in args]
        out = np.asarray(getattr(sp, name)(*host))
        return torch.as_tensor(out, device=tensors[0].device if tensors else None).to(dtype)

    kernel.__name__ = name
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
    "gamma": lambda x: _gammasgn(x) * torch.exp(torch.lgamma(_float(x))),
    "rgamma": _rgamma,
    "gammasgn": _gammasgn,
    "gammainc": _binary(torch.special.gammainc),
    "gammaincc": _binary(torch.special.gammaincc),
    "beta": _beta,
    "betaln": _binary(_betaln),
    "ndtri": _unary(torch.special.ndtri),
    "log_ndtr": _unary(torch.special.log_ndtr),
    "i0": _unary(torch.special.i0),
    "i1": _unary(torch.special.i1),
    "i0e": _unary(torch.special.i0e),
    "i1e": _unary(torch.special.i1e),
    "k0": _unary(torch.special.modified_bessel_k0),
    "k1": _unary(torch.special.modified_bessel_k1),
    **{name: _on_host(name) for name in ("betainc", "stdtr", "j0", "j1", "y0", "y1", "jv",
                                         "yv", "iv", "ive", "kv")},
}
