"""Torch kernels of the fft family (`torch.fft`), 1-D convolution, and piecewise-linear
interpolation with the adjoint kernels its rules need (torch has no `interp`: ported from
the NumPy kernels with `torch.searchsorted`, float64 as `np.interp`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_F64 = torch.float64


def _resize(x, axes, sizes):
    """Truncate or zero-pad `x` at the end of each axis to the given size."""
    for ax, n in zip(axes, sizes, strict=True):
        m = x.shape[ax]
        if n < m:
            x = x.narrow(ax, 0, n)
        elif n > m:
            pad = [0, 0] * (x.ndim - 1 - ax % x.ndim) + [0, n - m]
            x = F.pad(x, pad)
    return x


def _irfftn(x, axes, n, norm=None):
    s = [x.shape[a] for a in axes[:-1]] + [n]
    return torch.fft.irfftn(x, s=s, dim=axes, norm=norm)


def _fftfreq(like, n, d=1.0, real=False):
    f = torch.fft.rfftfreq if real else torch.fft.fftfreq
    return f(n, d, dtype=_F64, device=None if like is None else like.device)


def _inexact(x):
    """Integer and boolean input as float64, as NumPy's FFT computes it (torch would pick
    its default float32, so complex64 results)."""
    return x if x.is_floating_point() or x.is_complex() else x.to(_F64)


def _convolve(a, v):
    """Full 1-D convolution: conv1d (a cross-correlation) with v flipped."""
    dt = torch.promote_types(a.dtype, v.dtype)
    if not dt.is_floating_point:
        dt = torch.promote_types(dt, _F64) if dt.is_complex else dt
    a, v = a.to(dt), v.to(dt)
    if len(v) > len(a):
        a, v = v, a
    if dt.is_floating_point:
        out = F.conv1d(a.view(1, 1, -1), v.flip(0).view(1, 1, -1), padding=len(v) - 1)
        return out.view(-1)
    # complex and integer inputs: windows of a times v (conv1d takes real floats only)
    m = len(v)
    padded = F.pad(a.view(1, -1), (m - 1, m - 1)).view(-1) if m > 1 else a
    return padded.unfold(0, m, 1) @ v.flip(0)


# -- interpolation: knots, their values' positions in fp (periodic: sorted and wrapped) ----
def _knots(x, xp, period):
    idx = torch.arange(len(xp), device=xp.device)
    x, xp = x.to(_F64), xp.to(_F64)
    if period is None:
        return x, xp, idx
    period = abs(period)
    x, xp = torch.remainder(x, period), torch.remainder(xp, period)
    order = torch.argsort(xp, stable=True)
    xp, idx = xp[order], idx[order]
    return (x, torch.cat([xp[-1:] - period, xp, xp[:1] + period]),
            torch.cat([idx[-1:], idx, idx[:1]]))


def _search(xk, x, side):
    return torch.searchsorted(xk, x.contiguous(), side=side)


def _interp(x, xp, fp, left=None, right=None, period=None):
    x, xk, idx = _knots(x, xp, period)
    fk = fp[idx]
    fk = fk.to(torch.complex128 if fk.is_complex() else _F64)
    K = len(xk)
    j = torch.clamp(_search(xk, x, "right") - 1, 0, K - 2)
    t = (x - xk[j]) / (xk[j + 1] - xk[j])
    out = fk[j] + t * (fk[j + 1] - fk[j])
    out = torch.where(x == xk[-1], fk[-1], out)
    lo = fk[0] if left is None else torch.as_tensor(left, dtype=fk.dtype, device=fk.device)
    hi = fk[-1] if right is None else torch.as_tensor(right, dtype=fk.dtype, device=fk.device)
    return torch.where(x < xk[0], lo, torch.where(x > xk[-1], hi, out))


def _interp_slope(x, xp, fp, period=None):
    """d interp / dx: the mean of the slopes on either side (0 outside the knots)."""
    x, xk, idx = _knots(x, xp, period)
    fk = fp[idx]
    s = torch.diff(fk) / torch.diff(xk)
    zero = torch.zeros(1, dtype=s.dtype, device=s.device)
    s = torch.cat([zero, s, zero])
    return 0.5 * (s[_search(xk, x, "left")] + s[_search(xk, x, "right")])


def _interp_adjoint(g, x, xp, n, deriv=False, left_const=False, right_const=False,
                    period=None):
    """Transpose of fp -> interp(x, xp, fp) (deriv=False) or of fp -> slope (deriv=True)."""
    x, xk, idx = _knots(x, xp, period)
    g = torch.broadcast_to(g, x.shape).reshape(-1)
    x = x.reshape(-1)
    dt = torch.promote_types(g.dtype, _F64)
    g = g.to(dt)
    out = torch.zeros(n, dtype=dt, device=g.device)
    K = len(xk)
    if deriv:
        for side in ("left", "right"):
            k = _search(xk, x, side)
            seg = torch.clamp(k - 1, 0, K - 2)
            w = torch.where((k >= 1) & (k <= K - 1), 0.5 * g / (xk[seg + 1] - xk[seg]), 0)
            out.index_add_(0, idx[seg + 1], w)
            out.index_add_(0, idx[seg], -w)
        return out
    j = torch.clamp(_search(xk, x, "right") - 1, 0, K - 2)
    t = (x - xk[j]) / (xk[j + 1] - xk[j])
    inside = (x >= xk[0]) & (x <= xk[-1])
    out.index_add_(0, idx[j], torch.where(inside, g * (1 - t), 0))
    out.index_add_(0, idx[j + 1], torch.where(inside, g * t, 0))
    if not left_const:
        out[idx[0]] += torch.sum(torch.where(x < xk[0], g, 0))
    if not right_const:
        out[idx[-1]] += torch.sum(torch.where(x > xk[-1], g, 0))
    return out


KERNELS = {
    "fft_c2c": lambda x, axes, norm=None, inverse=False: (
        torch.fft.ifftn if inverse else torch.fft.fftn)(_inexact(x), dim=axes, norm=norm),
    "rfftn": lambda x, axes, norm=None: torch.fft.rfftn(_inexact(x), dim=axes, norm=norm),
    "irfftn": _irfftn,
    "fft_resize": _resize,
    "fftshift": lambda x, axes: torch.fft.fftshift(x, dim=axes),
    "ifftshift": lambda x, axes: torch.fft.ifftshift(x, dim=axes),
    "fftfreq": _fftfreq,
    "convolve": _convolve,
    "interp": _interp,
    "interp_slope": _interp_slope,
    "interp_adjoint": _interp_adjoint,
}
