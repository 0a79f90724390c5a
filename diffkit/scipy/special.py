"""`diffkit.scipy.special`: SciPy's special functions with SciPy's signatures, differentiable.

    from diffkit.scipy.special import logsumexp, gammaln, xlogy

Derivatives flow through every floating operand except orders (polygamma's n, the Bessel
functions' n and v, multigammaln's d): those must be plain values (a traced float raises a
ConcretizationError naming the function and the argument). On NumPy the kernels are SciPy's
(pip install 'diffkit[scipy]'); see plugins/diffkit_*/special.py for torch.
"""

from __future__ import annotations

import math

from diffkit.numpy import _core as _co
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import concrete
from diffkit.primitives import special as P

__all__ = ["erf", "erfc", "erfinv", "erfcinv", "expit", "logit", "softplus", "gammaln",
           "digamma", "psi", "polygamma", "gamma", "rgamma", "gammasgn", "gammainc", "gammaincc",
           "beta", "betaln", "betainc", "multigammaln", "stdtr", "ndtr", "ndtri", "log_ndtr",
           "j0", "j1", "jn", "jv", "y0", "y1", "yn", "yv", "i0", "i0e", "i1", "i1e", "iv", "ive",
           "k0", "k1", "kv", "xlogy", "xlog1py", "entr", "logsumexp", "softmax", "log_softmax"]


def erf(z):
    """The error function 2/sqrt(pi) * integral_0^z exp(-t^2) dt."""
    return P.erf.bind(z)


def erfc(x):
    """1 - erf(x), accurate for large x."""
    return P.erfc.bind(x)


def erfinv(y):
    """The inverse of erf on (-1, 1)."""
    return P.erfinv.bind(y)


def erfcinv(y):
    """The inverse of erfc on (0, 2): -ndtri(y / 2) / sqrt(2), as SciPy computes it (full
    relative accuracy as y -> 0)."""
    return _el.divide(P.ndtri.bind(_el.multiply(y, 0.5)), -math.sqrt(2))


def expit(x):
    """The logistic sigmoid 1 / (1 + exp(-x)), without overflow."""
    return P.expit.bind(x)


def logit(x):
    """log(x / (1 - x)), the inverse of expit."""
    return P.logit.bind(x)


def softplus(x):
    """log(1 + exp(x)), computed as log1p(exp(-abs(x))) + max(x, 0) (no overflow)."""
    return P.softplus.bind(x)


def gammaln(x):
    """log|Gamma(x)|; its derivative is digamma."""
    return P.gammaln.bind(x)


def digamma(z):
    """psi(z) = d/dz log Gamma(z); its derivative is polygamma(1, z)."""
    return P.digamma.bind(z)


psi = digamma


def polygamma(n, x):
    """The n-th derivative of digamma (n a non-negative integer or integer array; no
    derivative flows into n)."""
    n = concrete(n, "polygamma", "n", "it is the integer order of the derivative")
    return P.polygamma.bind(n, x)


def gamma(z):
    """The gamma function (inf at 0, nan at the negative integers); gamma' = gamma * psi."""
    return P.gamma.bind(z)


def rgamma(z):
    """1 / gamma(z), 0 at the poles of gamma."""
    return P.rgamma.bind(z)


def gammasgn(x):
    """The sign of gamma(x) (no derivative: piecewise constant)."""
    return P.gammasgn.bind(x)


def gammainc(a, x):
    """The regularized lower incomplete gamma function P(a, x). Its derivative in a is
    Cephes' series / continued fraction differentiated along (~1e-15 relative; 1e-13 for
    a ~ 1000), to any order."""
    return P.gammainc.bind(a, x)


def gammaincc(a, x):
    """The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x), accurate where
    P is near 1 (its derivative in a too)."""
    return P.gammaincc.bind(a, x)


def beta(a, b):
    """The beta function Gamma(a) Gamma(b) / Gamma(a + b)."""
    return P.beta.bind(a, b)


def betaln(a, b):
    """log|beta(a, b)|, without overflow."""
    return P.betaln.bind(a, b)


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b). Its derivatives in a and b are
    Numerical Recipes' continued fraction differentiated along (~1e-14 relative), to any
    order."""
    return P.betainc.bind(a, b, x)


def multigammaln(a, d):
    """log of the multivariate gamma function of dimension d: d(d-1)/4 log(pi) +
    sum_j gammaln(a - j/2), j = 0..d-1; nan where a <= (d - 1) / 2 (outside its domain)."""
    if isinstance(d, bool) or not float(d).is_integer() or d < 1:
        raise ValueError(f"multigammaln: the dimension d must be a positive integer, not {d!r}")
    d = int(d)
    out = sum(P.gammaln.bind(_el.subtract(a, j / 2)) for j in range(d))
    out = _el.add(out, d * (d - 1) / 4 * math.log(math.pi))
    return _el.where(_el.greater(a, (d - 1) / 2), out, math.nan)


def stdtr(df, t):
    """Student's t CDF with df degrees of freedom (its derivative in df through betainc's)."""
    return P.stdtr.bind(df, t)


# -- the normal distribution -----------------------------------------------------------------
def ndtr(x):
    """The standard normal CDF, erfc(-x / sqrt(2)) / 2 (as SciPy computes it)."""
    return _el.multiply(P.erfc.bind(_el.multiply(x, -math.sqrt(0.5))), 0.5)


def ndtri(y):
    """The inverse of ndtr on (0, 1)."""
    return P.ndtri.bind(y)


def log_ndtr(x):
    """log(ndtr(x)), accurate in both tails."""
    return P.log_ndtr.bind(x)


# -- Bessel functions (the order carries no derivative) ----------------------------------------
def _order(v, fn: str):
    return concrete(v, fn, "v" if fn.endswith("v") else "n",
                    "it is the order of the Bessel function (no derivative in it)")


def j0(x):
    """The Bessel function of the first kind of order 0."""
    return P.j0.bind(x)


def j1(x):
    """The Bessel function of the first kind of order 1."""
    return P.j1.bind(x)


def jv(v, z):
    """The Bessel function of the first kind of real order v."""
    return P.jv.bind(_order(v, "jv"), z)


def jn(n, x):
    """The Bessel function of the first kind of integer order n (SciPy's jn is jv)."""
    return P.jv.bind(_order(n, "jn"), x)


def y0(x):
    """The Bessel function of the second kind of order 0 (x > 0)."""
    return P.y0.bind(x)


def y1(x):
    """The Bessel function of the second kind of order 1 (x > 0)."""
    return P.y1.bind(x)


def yv(v, z):
    """The Bessel function of the second kind of real order v (z > 0)."""
    return P.yv.bind(_order(v, "yv"), z)


def yn(n, x):
    """The Bessel function of the second kind of integer order n (x > 0)."""
    return P.yv.bind(_order(n, "yn"), x)


def i0(x):
    """The modified Bessel function of the first kind of order 0."""
    return P.i0.bind(x)


def i0e(x):
    """i0(x) * exp(-abs(x)), without overflow."""
    return P.i0e.bind(x)


def i1(x):
    """The modified Bessel function of the first kind of order 1."""
    return P.i1.bind(x)


def i1e(x):
    """i1(x) * exp(-abs(x)), without overflow."""
    return P.i1e.bind(x)


def iv(v, z):
    """The modified Bessel function of the first kind of real order v."""
    return P.iv.bind(_order(v, "iv"), z)


def ive(v, z):
    """iv(v, z) * exp(-abs(z)), without overflow."""
    return P.ive.bind(_order(v, "ive"), z)


def k0(x):
    """The modified Bessel function of the second kind of order 0 (x > 0)."""
    return P.k0.bind(x)


def k1(x):
    """The modified Bessel function of the second kind of order 1 (x > 0)."""
    return P.k1.bind(x)


def kv(v, z):
    """The modified Bessel function of the second kind of real order v (z > 0)."""
    return P.kv.bind(_order(v, "kv"), z)


def xlogy(x, y):
    """x * log(y), 0 where x == 0 (so d/dx at x = 0 is log(y), finite for y > 0)."""
    return P.xlogy.bind(x, y)


def xlog1py(x, y):
    """x * log1p(y), 0 where x == 0."""
    return P.xlog1py.bind(x, y)


def entr(x):
    """-x log(x) for x > 0, 0 at 0, -inf below; entr'(x) = -(log(x) + 1) (+inf at 0)."""
    inside = _el.greater_equal(x, 0)
    xs = _el.where(inside, x, 1)  # keeps log's nan out of the derivative below 0
    return _el.where(inside, _el.negative(P.xlogy.bind(xs, xs)), -math.inf)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over `axis`, without overflow (SciPy's signature).

    The maximum is shifted out and held constant (it cancels from the value, so the
    gradient is exactly the softmax). Elements with b == 0 are left out of the maximum.
    With return_sign=True, returns (log|s|, sign(s)) where s = sum(b * exp(a)).
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    if b is not None:
        a = _el.where(_el.equal(b, 0), -float("inf"), a)
    shift = _el.stop_gradient(_rd.max(a, axis=axis, keepdims=True))
    shift = _el.where(_el.isfinite(shift), shift, 0)
    e = _el.exp(_el.subtract(a, shift))
    if b is not None:
        e = _el.multiply(b, e)
    s = _rd.sum(e, axis=axis, keepdims=keepdims)
    shift = shift if keepdims else _sh.reshape(shift, _co.shape(s))
    if return_sign:
        return _el.add(_el.log(_el.abs(s)), shift), _el.sign(s)
    return _el.add(_el.log(s), shift)


def log_softmax(x, axis=None):
    """x - logsumexp(x, axis) (over all elements for axis=None, as SciPy)."""
    return _el.subtract(x, logsumexp(x, axis=axis, keepdims=True))


def softmax(x, axis=None):
    """exp(x) / sum(exp(x)) over `axis` (all elements for axis=None), without overflow."""
    return _el.exp(log_softmax(x, axis=axis))
