"""NumPy kernels of the fft family: discrete Fourier transforms, 1-D convolution and
piecewise-linear interpolation (with the adjoint kernels their rules need)."""

import numpy as np


def _resize(x, axes, sizes):
    """Truncate or zero-pad `x` at the end of each axis to the given size."""
    for ax, n in zip(axes, sizes, strict=True):
        m = x.shape[ax]
        if n < m:
            x = np.take(x, np.arange(n), axis=ax)
        elif n > m:
            pad = [(0, 0)] * x.ndim
            pad[ax] = (0, n - m)
            x = np.pad(x, pad)
    return x


def _irfftn(x, axes, n, norm=None):
    s = [x.shape[a] for a in axes[:-1]] + [n]
    return np.fft.irfftn(x, s=s, axes=axes, norm=norm)


def _fftfreq(like, n, d=1.0, real=False):
    return (np.fft.rfftfreq if real else np.fft.fftfreq)(n, d)


# -- interpolation: knots, their values' positions in fp (periodic: sorted and wrapped) ----
def _knots(x, xp, period):
    idx = np.arange(len(xp))
    if period is None:
        return np.asarray(x, dtype=float), np.asarray(xp, dtype=float), idx
    period = abs(period)
    x, xp = np.asarray(x, dtype=float) % period, np.asarray(xp, dtype=float) % period
    order = np.argsort(xp)
    xp, idx = xp[order], idx[order]
    return (x, np.concatenate([xp[-1:] - period, xp, xp[:1] + period]),
            np.concatenate([idx[-1:], idx, idx[:1]]))


def _interp_slope(x, xp, fp, period=None):
    """d interp / dx: the mean of the slopes on either side (0 outside the knots)."""
    x, xk, idx = _knots(x, xp, period)
    fk = np.asarray(fp)[idx]
    s = np.diff(fk) / np.diff(xk)
    s = np.concatenate([np.zeros(1, s.dtype), s, np.zeros(1, s.dtype)])
    return 0.5 * (s[np.searchsorted(xk, x, "left")] + s[np.searchsorted(xk, x, "right")])


def _interp_adjoint(g, x, xp, n, deriv=False, left_const=False, right_const=False,
                    period=None):
    """Transpose of fp -> interp(x, xp, fp) (deriv=False) or of fp -> slope (deriv=True)."""
    x, xk, idx = _knots(x, xp, period)
    x, g = x.ravel(), np.broadcast_to(g, x.shape).ravel()
    out = np.zeros(n, dtype=np.result_type(g, float))
    K = len(xk)
    if deriv:
        for side in ("left", "right"):
            k = np.searchsorted(xk, x, side)
            seg = np.clip(k - 1, 0, K - 2)
            w = np.where((k >= 1) & (k <= K - 1), 0.5 * g / (xk[seg + 1] - xk[seg]), 0)
            np.add.at(out, idx[seg + 1], w)
            np.add.at(out, idx[seg], -w)
        return out
    j = np.clip(np.searchsorted(xk, x, "right") - 1, 0, K - 2)
    t = (x - xk[j]) / (xk[j + 1] - xk[j])
    inside = (x >= xk[0]) & (x <= xk[-1])
    np.add.at(out, idx[j], np.where(inside, g * (1 - t), 0))
    np.add.at(out, idx[j + 1], np.where(inside, g * t, 0))
    if not left_const:
        out[idx[0]] += np.sum(np.where(x < xk[0], g, 0))
    if not right_const:
        out[idx[-1]] += np.sum(np.where(x > xk[-1], g, 0))
    return out


KERNELS = {
    "fft_c2c": lambda x, axes, norm=None, inverse=False: (np.fft.ifftn if inverse else np.fft.fftn)(
        x, axes=axes, norm=norm),
    "rfftn": lambda x, axes, norm=None: np.fft.rfftn(x, axes=axes, norm=norm),
    "irfftn": _irfftn,
    "fft_resize": _resize,
    "fftshift": lambda x, axes: np.fft.fftshift(x, axes),
    "ifftshift": lambda x, axes: np.fft.ifftshift(x, axes),
    "fftfreq": _fftfreq,
    "convolve": lambda a, v: np.convolve(a, v, mode="full"),
    "interp": lambda x, xp, fp, left=None, right=None, period=None: np.asarray(
        np.interp(x, xp, fp, left=left, right=right, period=period)),
    "interp_slope": _interp_slope,
    "interp_adjoint": _interp_adjoint,
}
