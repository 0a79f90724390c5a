"""convolve, correlate and interp with NumPy's signatures, differentiable.

convolve and correlate are slices of one full 1-D convolution primitive (bilinear: both
arguments differentiable). interp is a primitive differentiable in x and fp; with traced
knots it is composed of differentiable steps.
"""

from __future__ import annotations

from diffkit.numpy import _core as _co
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _has_tracer, concrete, is_traced
from diffkit.primitives import fft as P

__all__ = ["convolve", "correlate", "interp"]

_MODES = ("full", "same", "valid")


def _vectors(name, a, v, mode):
    if mode not in _MODES:
        raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")
    a, v = _co.asarray(a), _co.asarray(v)
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
    vr = _sh.flip(v)
    full = P.convolve.bind(a, _el.conj(vr) if _co.iscomplexobj(vr) else vr)
    start = (min(na, nv) - 1) // 2
    if na < nv:  # NumPy swaps the arguments and reverses the output
        start = (na + nv - 1 - nv) - start
    return _slice(full, mode, start, na, nv)


def _edge(value):
    if value is None:
        return None
    value = complex(value)
    return value.real if value.imag == 0 else value


def interp(x, xp, fp, left=None, right=None, period=None):
    """One-dimensional piecewise-linear interpolation, as np.interp.

    Differentiable in x (the slope; at a knot the mean of the slopes on either side,
    outside the knots 0), in fp, in traced `left`/`right`, and in traced knots xp (without
    `period`): at a knot, the mean of the two sides there too.
    """
    x, xp, fp = _co.asarray(x), _co.asarray(xp), _co.asarray(fp)
    if xp.ndim != 1 or fp.ndim != 1 or xp.shape != fp.shape:
        raise ValueError(f"interp: xp and fp must be 1-D of the same length; got shapes "
                         f"{xp.shape} and {fp.shape}")
    if period is not None:
        period = float(concrete(period, "dnp.interp", "period",
                                "the derivative in the period is not implemented"))
        if period == 0:
            raise ValueError("period must be a non-zero value")
        concrete(xp, "dnp.interp", "xp",
                 "with period= the derivative in the knots is not implemented")
        left = right = None
    if not (is_traced(xp) or _has_tracer([left, right])):
        return P.interp.bind(x, _el.stop_gradient(xp), fp, left=_edge(left),
                             right=_edge(right), period=period)
    if is_traced(xp):
        out = _interp_in_knots(x, xp, fp)
    else:
        out = P.interp.bind(x, _el.stop_gradient(xp), fp, period=period)
    if left is not None:
        out = _el.where(x < xp[0], left, out)
    if right is not None:
        out = _el.where(x > xp[-1], right, out)
    return out


def _interp_in_knots(x, xp, fp):
    """interp composed of differentiable steps, for traced knots: on [xp_i, xp_i+1] the
    value is fp_i + (fp_i+1 - fp_i) (x - xp_i) / (xp_i+1 - xp_i), the interval found from
    the values (no derivative). At a knot it is the mean of the formulas of the intervals
    on either side (the mean of the one-sided derivatives); outside, fp's end values."""
    n = xp.shape[0]
    x0, k0 = _el.stop_gradient(x), _el.stop_gradient(xp)
    if n == 1:
        return _cr.zeros_like(x0, dtype=fp.dtype) + fp[0]
    u = P.interp.bind(x0, k0, _cr.arange(n, dtype=k0.dtype, like=k0))  # position in knots
    inside = (x0 >= k0[0]) & (x0 <= k0[-1])
    xs = _el.where(inside, x, k0[0])  # no inf/nan from outside reaches the formula

    def piece(i):
        i = _el.astype(_el.clip(i, 0, n - 2), "int64")
        a, fa = _ix.take(xp, i), _ix.take(fp, i)
        return fa + (_ix.take(fp, i + 1) - fa) * ((xs - a) / (_ix.take(xp, i + 1) - a))

    below = _el.where(x0 <= k0[0], fp[0], piece(_el.ceil(u) - 1))  # the interval left of x
    above = _el.where(x0 >= k0[-1], fp[-1], piece(_el.floor(u)))  # the one right of x
    out = 0.5 * (below + above)
    return _el.where(x0 < k0[0], fp[0], _el.where(x0 > k0[-1], fp[-1], out))
