"""NumPy kernels of the special functions.

SciPy is an optional extra (`diffkit[scipy]`): erf, erfc, erfinv, gammaln, digamma and
polygamma use `scipy.special` when it is installed (imported on first use) and the NumPy
implementations below otherwise (~1e-15 relative against SciPy; see tests/test_special.py).
The logistic, x log y and softplus kernels are plain NumPy either way. The rest (gamma,
incomplete gamma and beta, ndtri, log_ndtr, Bessel functions) are SciPy's; without SciPy
they raise a MissingKernelError saying to install it.
"""

from __future__ import annotations

import math

import numpy as np

from diffkit.errors import MissingKernelError

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


def _float(x) -> np.ndarray:
    """`x` as a floating array: float16/32/64 kept, integers and bools become float64."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _per_element(fn, x) -> np.ndarray:
    x = _float(x)
    return np.asarray(np.frompyfunc(fn, 1, 1)(x)).astype(x.dtype)


# -- erf family ------------------------------------------------------------------------------
def erf_numpy(x):
    return _per_element(math.erf, x)


def erfc_numpy(x):
    return _per_element(math.erfc, x)


def erfinv_numpy(y):
    """Giles' single-precision approximation (2010), refined by four steps: Halley's on
    erf(x) = |y| for |y| <= 0.5, Newton's on log erfc(x) = log q with q = 1 - |y| (exact in
    floating point) above, which keeps full relative accuracy as |y| -> 1."""
    y = _float(y)
    a = np.abs(y).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = -np.log((1 - a) * (1 + a))
        p_lo = np.polyval([2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                           0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
                           1.50140941], w - 2.5)
        p_hi = np.polyval([-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                           0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
                           2.83297682], np.sqrt(w) - 3)
        x = np.where(w < 5, p_lo, p_hi) * a
        tail, q = a > 0.5, 1 - a
        for _ in range(4):
            dens = _2_SQRTPI * np.exp(-x * x)
            f = erf_numpy(x) - a
            e = erfc_numpy(x)
            step = np.where(tail, -np.log(e / q) * e / dens, f / (dens + x * f))
            x = np.where(np.isfinite(step), x - step, x)
        x = np.where(a == 1, np.inf, np.where(a > 1, np.nan, x))
    return (np.sign(y) * x).astype(y.dtype)


_2_SQRTPI = 2 / math.sqrt(math.pi)


# -- gamma family ----------------------------------------------------------------------------
def _lgamma(v: float) -> float:
    try:
        return math.lgamma(v)
    except (ValueError, OverflowError):  # poles at 0, -1, -2, ...
        return math.inf


def gammaln_numpy(x):
    return _per_element(_lgamma, x)


# Bernoulli numbers B_2k, k = 1..10, for the asymptotic series
_B2K = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510,
        43867 / 798, -174611 / 330)


def digamma_numpy(x):
    """psi(x): reflection psi(x) = psi(1 - x) - pi / tan(pi x) for x < 0, the recurrence
    psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series (error < 1e-16)."""
    x = _float(x)
    z = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = z < 0
        frac = z - np.round(z)  # exact; tan(pi x) = tan(pi frac) without pi x's rounding
        reflect = np.where(neg, -np.pi / np.tan(np.pi * frac), 0.0)
        z = np.where(neg, 1 - z, z)
        acc = np.zeros_like(z)
        for _ in range(10):
            small = z < 10
            acc -= np.where(small, 1 / z, 0.0)
            z = np.where(small, z + 1, z)
        inv2 = 1 / (z * z)
        series = np.polyval([b / (2 * k) for k, b in reversed(list(enumerate(_B2K[:7], 1)))]
                            + [0.0], inv2)
        out = np.log(z) - 0.5 / z - series + acc + reflect
        out = np.where(x == 0, -np.inf, np.where(neg & (x == np.floor(x)), np.nan, out))
    return out.astype(x.dtype)


def polygamma_numpy(n, x):
    """psi^(n)(x) for integer n >= 0 (n = 0: digamma): the recurrence
    psi^(n)(x) = psi^(n)(x + 1) - (-1)^n n! / x^(n+1) up to x >= 20 + n, then the asymptotic
    series (-1)^(n+1) [(n-1)!/x^n + n!/(2 x^(n+1)) + sum B_2k (2k+n-1)!/((2k)! x^(2k+n))]."""
    n, x = np.broadcast_arrays(np.asarray(n), _float(x))
    out = np.empty(x.shape, dtype=x.dtype)
    for order in np.unique(n):
        sel = n == order
        out[sel] = _polygamma_order(order, x[sel].astype(np.float64))
    return out


def _polygamma_order(n, z):
    if n != math.floor(n) or n < 0:
        return np.full_like(z, np.nan)
    n = int(n)
    if n == 0:
        return digamma_numpy(z)
    sign, fact = (-1.0) ** (n + 1), math.factorial(n)
    threshold = 20.0 + n
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.zeros_like(z)
        steps = int(np.max(np.ceil(threshold - z), initial=0)) if z.size else 0
        for _ in range(steps):
            small = z < threshold
            acc += np.where(small, 1 / z ** (n + 1), 0.0)
            z = np.where(small, z + 1, z)
        series = math.factorial(n - 1) / z ** n + fact / (2 * z ** (n + 1))
        for k, b in enumerate(_B2K, 1):
            c = b * math.factorial(2 * k + n - 1) / math.factorial(2 * k)
            series = series + c / z ** (2 * k + n)
        return sign * (series + fact * acc)


def _scipy_or(name, fallback):
    def kernel(*args):
        sp = _sp()
        return getattr(sp, name)(*args) if sp else fallback(*args)

    kernel.__name__ = name
    return kernel


def _polygamma(n, x):
    sp = _sp()
    if not sp:
        return polygamma_numpy(n, x)
    x = _float(x)
    with np.errstate(invalid="ignore"):  # SciPy warns on its own nan for non-integer n
        return np.asarray(sp.polygamma(n, x)).astype(np.result_type(x.dtype, np.float32))


# -- logistic, x log y, softplus -------------------------------------------------------------
def expit(x):
    x = _float(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def logit(p):
    p = _float(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        # log(p / (1 - p)) loses accuracy near 0 and 1, log(p) - log1p(-p) near 1/2
        return np.where(np.abs(p - 0.5) < 0.2, np.log(p / (1 - p)), np.log(p) - np.log1p(-p))


def xlogy(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((x == 0) & ~np.isnan(y), 0, x * np.log(y))


def xlog1py(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((x == 0) & ~np.isnan(y), 0, x * np.log1p(y))


def softplus(x):
    x = _float(x)
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _float_dtype(args) -> np.dtype:
    """The precision of the floating array arguments (float64 when there are none)."""
    kinds = [a.dtype for a in args if isinstance(a, np.ndarray | np.generic)
             and a.dtype.kind == "f"]
    return np.result_type(*kinds) if kinds else np.dtype(np.float64)


def needs_scipy(name: str, backend: str = "numpy") -> MissingKernelError:
    return MissingKernelError(
        f"scipy.special.{name} on the {backend} backend needs SciPy, which is not installed: "
        f"pip install 'diffkit[scipy]'"
    )


def _scipy(name):
    """SciPy's `name` in the floating arguments' precision, or an error naming the extra."""
    def kernel(*args):
        sp = _sp()
        if not sp:
            raise needs_scipy(name)
        return np.asarray(getattr(sp, name)(*args)).astype(_float_dtype(args), copy=False)

    kernel.__name__ = name
    return kernel


_SCIPY_ONLY = ("gamma", "rgamma", "gammasgn", "gammainc", "gammaincc", "beta", "betaln",
               "betainc", "stdtr", "ndtri", "log_ndtr", "j0", "j1", "y0", "y1", "i0", "i1", "i0e",
               "i1e", "k0", "k1", "jv", "yv", "iv", "ive", "kv")

KERNELS = {
    "erf": _scipy_or("erf", erf_numpy),
    "erfc": _scipy_or("erfc", erfc_numpy),
    "erfinv": _scipy_or("erfinv", erfinv_numpy),
    "gammaln": _scipy_or("gammaln", gammaln_numpy),
    "digamma": _scipy_or("digamma", digamma_numpy),
    "polygamma": _polygamma,
    "expit": expit,
    "logit": logit,
    "softplus": softplus,
    "xlogy": xlogy,
    "xlog1py": xlog1py,
    **{name: _scipy(name) for name in _SCIPY_ONLY},
}
