"""Reductions and statistics with NumPy's signatures (axis int/tuple/None, keepdims, dtype,
ddof), as primitives or short compositions of them."""

from __future__ import annotations

import builtins
import math

from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _has_tracer, asarray, iscomplexobj, ndim, shape
from diffkit.primitives import reductions as P

__all__ = [
    "sum", "prod", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "all", "any",
    "var", "std", "cumsum", "cumprod", "average", "median", "quantile", "percentile",
    "nansum", "nanmean", "nanmax", "nanmin", "ptp", "count_nonzero", "trapezoid", "trapz",
    "polyval",
]


def _no_out(name: str, out) -> None:
    if out is not None:
        raise TypeError(f"dnp.{name} does not support out=: diffkit arrays are immutable; "
                        f"use the returned value")


def _axis(name: str, axis, nd: int):
    """`axis` checked against `nd` dimensions: None, an int or a tuple of distinct ints."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -nd <= a < nd:
            raise ValueError(f"dnp.{name}: axis {a} is out of bounds for an array of "
                             f"dimension {nd}")
    if len({a % nd for a in axes}) != len(axes):
        raise ValueError(f"dnp.{name}: repeated axis in {axis}")
    return axes[0] if isinstance(axis, int) else axes


def _cast(a, dtype):
    return a if dtype is None else _el.astype(a, dtype)


def _count(a, axis) -> int:
    return P._count(a, axis)


def sum(a, axis=None, dtype=None, out=None, keepdims=False):  # noqa: A001
    _no_out("sum", out)
    a = asarray(a)
    return P.sum.bind(_cast(a, dtype), axis=_axis("sum", axis, ndim(a)), keepdims=keepdims)


def prod(a, axis=None, dtype=None, out=None, keepdims=False):
    """Product over `axis`; its gradient is exact where elements are zero (no division)."""
    _no_out("prod", out)
    a = _cast(asarray(a), dtype)
    nd = ndim(a)
    axis = _axis("prod", axis, nd)
    if axis is None:
        r = P.prod.bind(_sh.reshape(a, (-1,)), axis=0)
        return _sh.reshape(r, (1,) * nd) if keepdims else r
    # the primitive reduces one axis; several axes are reduced last-first
    for ax in sorted((axis,) if isinstance(axis, int) else axis, key=lambda v: -(v % nd)):
        a = P.prod.bind(a, axis=ax % nd, keepdims=keepdims)
    return a


def mean(a, axis=None, dtype=None, out=None, keepdims=False):
    _no_out("mean", out)
    a = asarray(a)
    s = sum(a, axis, dtype, keepdims=keepdims)
    return s / _count(a, _axis("mean", axis, ndim(a)))


def _chooser(name: str, prim):
    def f(a, axis=None, out=None, keepdims=False, initial=None):
        _no_out(name, out)
        if initial is not None:
            raise TypeError(f"dnp.{name} does not support initial=")
        a = asarray(a)
        axis = _axis(name, axis, ndim(a))
        if math.prod(shape(a)) == 0:
            raise ValueError(f"dnp.{name}: zero-size array to reduction operation {name} "
                             f"which has no identity")
        return prim.bind(a, axis=axis, keepdims=keepdims)

    f.__name__ = name
    f.__doc__ = (f"Like `numpy.{name}`; tied extrema share the gradient equally "
                 f"(minimum-norm subgradient).")
    return f


max = amax = _chooser("max", P.max)  # noqa: A001
min = amin = _chooser("min", P.min)  # noqa: A001


def _nondiff(name: str, prim, single_axis: bool):
    def f(a, axis=None, out=None, *, keepdims=False):
        _no_out(name, out)
        a = asarray(a)
        if single_axis and axis is not None and not isinstance(axis, int):
            raise TypeError(f"dnp.{name}: axis must be an int or None, got {axis!r}")
        return prim.bind(a, axis=_axis(name, axis, ndim(a)), keepdims=keepdims)

    f.__name__ = name
    f.__doc__ = f"Like `numpy.{name}` (no derivative)."
    return f


argmax = _nondiff("argmax", P.argmax, True)
argmin = _nondiff("argmin", P.argmin, True)
all = _nondiff("all", P.all, False)  # noqa: A001
any = _nondiff("any", P.any, False)  # noqa: A001


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    """Variance mean(|a - mean(a)|^2) * n / (n - ddof)."""
    _no_out("var", out)
    a = _cast(asarray(a), dtype)
    axis = _axis("var", axis, ndim(a))
    d = a - mean(a, axis, keepdims=True)
    sq = _el.real(d * _el.conj(d)) if iscomplexobj(d) else d * d
    return sum(sq, axis, keepdims=keepdims) / (_count(a, axis) - ddof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    """Standard deviation; where it is 0 its gradient is 0 (not the nan of d sqrt(0))."""
    _no_out("std", out)
    a = _cast(asarray(a), dtype)
    axis = _axis("std", axis, ndim(a))
    if _has_tracer([ddof]):  # differentiable in ddof too: std(ddof) = std(0) sqrt(n / (n - ddof))
        n = _count(a, axis)
        return P.std.bind(a, axis=axis, ddof=0, keepdims=keepdims) * _el.sqrt(n / (n - ddof))
    return P.std.bind(a, axis=axis, ddof=ddof, keepdims=keepdims)


def _cumulative(name: str, prim):
    def f(a, axis=None, dtype=None, out=None):
        _no_out(name, out)
        a = _cast(asarray(a), dtype)
        if axis is None:
            return prim.bind(_sh.reshape(a, (-1,)), axis=0)
        if not isinstance(axis, int):
            raise TypeError(f"dnp.{name}: axis must be an int or None, got {axis!r}")
        return prim.bind(a, axis=_axis(name, axis, ndim(a)) % ndim(a))

    f.__name__ = name
    f.__doc__ = f"Like `numpy.{name}`: running {name[3:]} along `axis` (None: flattened)."
    return f


cumsum = _cumulative("cumsum", P.cumsum)
cumprod = _cumulative("cumprod", P.cumprod)


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """Weighted mean; `returned=True` also gives the sum of the weights."""
    a = asarray(a)
    nd = ndim(a)
    axis = _axis("average", axis, nd)
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        scl = _cr.zeros_like(avg) + _count(a, axis)
    else:
        w = asarray(weights)
        if shape(w) != shape(a):
            if axis is None:
                raise TypeError("dnp.average: axis must be specified when shapes of a and "
                                "weights differ")
            if ndim(w) != 1 or not isinstance(axis, int):
                raise TypeError("dnp.average: 1D weights expected when shapes of a and "
                                "weights differ")
            if shape(w)[0] != shape(a)[axis]:
                raise ValueError("dnp.average: length of weights differs from that of a "
                                 "along axis")
            w = _sh.reshape(w, tuple(-1 if i == axis % nd else 1 for i in range(nd)))
        scl = sum(_sh.broadcast_to(w, shape(a)), axis, keepdims=keepdims)
        avg = sum(_el.multiply(a, w), axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False):
    """Quantiles (NumPy's methods linear, lower, higher, midpoint, nearest). The gradient
    flows to the order statistics q is interpolated between, and to a traced `q`: with
    the linear method, (n - 1) times the gap between them (the other methods are steps)."""
    _no_out("quantile", out)
    if method not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"dnp.quantile: method {method!r} is not supported; use linear, "
                         f"lower, higher, midpoint or nearest")
    a = asarray(a)
    axis = _axis("quantile", axis, ndim(a))
    if _has_tracer([q]):
        return _quantile_in_q(a, asarray(q), axis, method, keepdims)
    qs = q.tolist() if hasattr(q, "tolist") else q
    flat = qs if isinstance(qs, list | tuple) else [qs]
    flat = _flatten(flat)
    if not flat or not builtins.all(0 <= v <= 1 for v in flat):
        raise ValueError("dnp.quantile: quantiles must be in the range [0, 1]")
    outs = [P.quantile.bind(a, q=float(v), axis=axis, keepdims=keepdims, method=method)
            for v in flat]
    if not isinstance(qs, list | tuple):
        return outs[0]
    return _sh.reshape(_sh.stack(outs), _qshape(qs) + shape(outs[0]))


def _quantile_in_q(a, q, axis, method, keepdims):
    """quantile at a traced q: its value at q's value plus (q - that value) times dQ/dq,
    (n - 1) (s[hi] - s[lo]) / (hi - lo) for the order statistics s around q (n - 1); at one
    of them, the mean of the gaps on either side."""
    q0 = _el.stop_gradient(q)
    out = quantile(a, q0.tolist(), axis, None, False, method, keepdims)
    n = _count(a, axis)
    if method != "linear" or n == 1:
        return out
    slopes = [_q_slope(a, v * (n - 1), n, axis, keepdims) for v in _flatten(q0.tolist())]
    slope = _sh.reshape(_sh.stack(slopes), shape(q) + shape(slopes[0]))
    dq = _sh.reshape(q - q0, shape(q) + (1,) * len(shape(slopes[0])))
    return out + _el.where(_el.isfinite(slope), dq * slope, 0)  # inf gaps: no nan value


def _q_slope(a, pos, n, axis, keepdims):
    k = math.floor(pos)
    lo, hi = (builtins.max(k - 1, 0), builtins.min(k + 1, n - 1)) if pos == k else (k, k + 1)

    def order_stat(i):
        return quantile(a, i / (n - 1), axis, None, False, "nearest", keepdims)

    return (order_stat(hi) - order_stat(lo)) * ((n - 1) / (hi - lo))


def _flatten(v) -> list:
    if isinstance(v, list | tuple):
        return [x for item in v for x in _flatten(item)]
    return [v]


def _qshape(v) -> tuple:
    return (len(v),) + _qshape(v[0]) if isinstance(v, list | tuple) and v else ()


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False):
    """Like `quantile` with q in percent."""
    if _has_tracer([q]):
        q = asarray(q)
        if not builtins.all(0 <= v <= 100 for v in _flatten(_el.stop_gradient(q).tolist())):
            raise ValueError("dnp.percentile: percentiles must be in the range [0, 100]")
        return quantile(a, q * 0.01, axis, out, overwrite_input, method, keepdims)
    qs = q.tolist() if hasattr(q, "tolist") else q
    scaled = _scale(qs, 0.01)
    if builtins.any(v < 0 or v > 1 for v in _flatten(scaled)):
        raise ValueError("dnp.percentile: percentiles must be in the range [0, 100]")
    return quantile(a, scaled, axis, out, overwrite_input, method, keepdims)


def _scale(v, s):
    return [_scale(x, s) for x in v] if isinstance(v, list | tuple) else v * s


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """Median: the middle element, or the mean of the two middle ones for even n."""
    return quantile(a, 0.5, axis, out, keepdims=keepdims)


def nansum(a, axis=None, dtype=None, out=None, keepdims=False):
    """Sum treating NaN as 0 (no gradient reaches the NaNs)."""
    a = asarray(a)
    return sum(_el.where(_el.isnan(a), 0, a), axis, dtype, out, keepdims)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False):
    """Mean over the non-NaN elements."""
    a = asarray(a)
    n = sum(_el.logical_not(_el.isnan(a)), axis, keepdims=keepdims)
    return nansum(a, axis, dtype, out, keepdims) / n


def _nanchooser(name: str, chooser, fill: float):
    def f(a, axis=None, out=None, keepdims=False):
        a = asarray(a)
        nan = _el.isnan(a)
        r = chooser(_el.where(nan, fill, a), axis, out, keepdims)
        return _el.where(all(nan, axis, keepdims=keepdims), math.nan, r)

    f.__name__ = name
    f.__doc__ = f"Like `numpy.{name}`: NaNs ignored; an all-NaN slice gives NaN."
    return f


nanmax = _nanchooser("nanmax", max, -math.inf)
nanmin = _nanchooser("nanmin", min, math.inf)


def ptp(a, axis=None, out=None, keepdims=False):
    """Peak to peak: max - min."""
    return max(a, axis, out, keepdims) - min(a, axis, out, keepdims)


def count_nonzero(a, axis=None, *, keepdims=False):
    a = asarray(a)
    return sum(_el.not_equal(a, 0), axis, keepdims=keepdims)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """Integral of y by the trapezoidal rule, with sample points `x` or spacing `dx`."""
    y = asarray(y)
    nd = ndim(y)
    ax = axis % nd
    hi = tuple(slice(1, None) if i == ax else slice(None) for i in range(nd))
    lo = tuple(slice(None, -1) if i == ax else slice(None) for i in range(nd))
    if x is None:
        d = dx
    else:
        x = asarray(x)
        if ndim(x) == 1:
            d = _sh.reshape(x[1:] - x[:-1], tuple(-1 if i == ax else 1 for i in range(nd)))
        else:
            d = x[hi] - x[lo]
    return sum(d * (y[hi] + y[lo]) / 2.0, ax)


trapz = trapezoid


def polyval(p, x):
    """p[0] x^(n-1) + ... + p[n-1], by Horner's scheme."""
    x = asarray(x)
    y = _cr.zeros_like(x)
    for c in p:
        y = y * x + c
    return y
