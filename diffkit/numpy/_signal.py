"""convolve, correlate and interp with NumPy's signatures, differentiable.

convolve and correlate are slices of one full 1-D convolution primitive (bilinear: both
arguments differentiable). interp is differentiable in x and fp; the knots xp are data.
"""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.core.tracer import Tracer
from diffkit.primitives import fft as P

__all__ = ["convolve", "correlate", "interp"]

_MODES = ("full", "same", "valid")


def _vectors(name, a, v, mode):
    if mode not in _MODES:
        raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")
    a, v = dnp.asarray(a), dnp.asarray(v)
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError(f"{name} takes 1-D arrays; got shapes {a.shape} and {v.shape}")
    if a.shape[0] == 0 or v.shape[0] == 0:
        raise ValueError(f"{name}: {'a' if a.shape[0] == 0 else 'v'} cannot be empty")
    return a, v


def _slice(full, mode, start_same, na, nv):
    if mode == "full":
        return full
    lo, hi = min(na, nv), max(na, nv)
    if mode == "same":
        return full[start_same:start_same + hi]
    return full[lo - 1:hi]


def convolve(a, v, mode="full"):
    """Discrete linear convolution of two 1-D sequences (NumPy's modes)."""
    a, v = _vectors("convolve", a, v, mode)
    na, nv = a.shape[0], v.shape[0]
    return _slice(P.convolve.bind(a, v), mode, (min(na, nv) - 1) // 2, na, nv)


def correlate(a, v, mode="valid"):
    """Cross-correlation c[k] = sum_n a[n + k] * conj(v[n]) (NumPy's modes, default valid)."""
    a, v = _vectors("correlate", a, v, mode)
    na, nv = a.shape[0], v.shape[0]
    vr = dnp.flip(v)
    full = P.convolve.bind(a, dnp.conj(vr) if dnp.iscomplexobj(vr) else vr)
    start = (min(na, nv) - 1) // 2
    if na < nv:  # NumPy swaps the arguments and reverses the output
        start = (na + nv - 1 - nv) - start
    return _slice(full, mode, start, na, nv)


def _edge(value, name):
    if value is None:
        return None
    if isinstance(value, Tracer):
        raise TypeError(f"interp: {name} must be a constant (it carries no derivative)")
    value = complex(value)
    return value.real if value.imag == 0 else value


def interp(x, xp, fp, left=None, right=None, period=None):
    """One-dimensional piecewise-linear interpolation, as np.interp.

    Differentiable in x (the slope; at a knot the mean of the slopes on either side,
    outside the knots 0) and in fp. xp are the knots: no derivative flows to them.
    """
    x, xp, fp = dnp.asarray(x), dnp.asarray(xp), dnp.asarray(fp)
    if xp.ndim != 1 or fp.ndim != 1 or xp.shape != fp.shape:
        raise ValueError(f"interp: xp and fp must be 1-D of the same length; got shapes "
                         f"{xp.shape} and {fp.shape}")
    if period is not None:
        period = float(period)
        if period == 0:
            raise ValueError("period must be a non-zero value")
        left = right = None
    return P.interp.bind(x, dnp.stop_gradient(xp), fp, left=_edge(left, "left"),
                         right=_edge(right, "right"), period=period)
