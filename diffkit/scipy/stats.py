"""`diffkit.scipy.stats`: SciPy's distributions as namespaces of functions, differentiable in
the values and the parameters.

    from diffkit.scipy.stats import norm, gamma
    norm.logpdf(x, loc=0.0, scale=1.0); gamma.cdf(x, a, loc=0.0, scale=1.0)

Each distribution has SciPy's signatures (no frozen objects): `logpdf`/`pdf` (`logpmf`/`pmf`
for poisson and binom), `cdf`, `logcdf`, `sf`, `logsf` (not for multivariate_normal and
dirichlet, where SciPy's are numerical integrations or absent), and `ppf` for norm.
Outside the support a density is 0 (log: -inf) with zero derivative; invalid parameters
(scale <= 0, shapes <= 0) give nan, as SciPy. Counts (poisson's and binom's k, binom's n)
must be plain values: a traced float raises a ConcretizationError naming the argument.
The multivariate functions live in `diffkit.scipy._stats_multi`.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

import diffkit.numpy as dnp
import diffkit.scipy.special as sc
from diffkit.numpy._core import concrete
from diffkit.scipy._stats_multi import dirichlet, multivariate_normal

__all__ = ["norm", "t", "cauchy", "laplace", "logistic", "expon", "gamma", "beta", "chi2",
           "uniform", "poisson", "binom", "multivariate_normal", "dirichlet"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_NAN, _INF = math.nan, math.inf


def _namespace(name: str, **fns) -> SimpleNamespace:
    """SciPy's distribution object as a namespace of its functions."""
    for key, f in fns.items():
        f.__name__, f.__qualname__ = key, f"{name}.{key}"
    return SimpleNamespace(__name__=name, **fns)


def _valid(out, *ok):
    """`out` where every condition in `ok` holds, nan elsewhere (SciPy's invalid parameters)."""
    cond = ok[0]
    for c in ok[1:]:
        cond = dnp.logical_and(cond, c)
    return dnp.where(cond, out, _NAN)


def _log(scale):
    """log(scale), without NumPy's warning for an invalid scale (its result is nan anyway)."""
    return dnp.log(dnp.where(scale > 0, scale, 1.0))


def _from_cdf(cdf, sf):
    """logcdf, logsf as the logs of cdf and sf (accurate: both are computed directly); -inf
    where they are 0, without NumPy's warning (SciPy gives none)."""
    def log_of(f):
        def g(*args, **kw):
            with np.errstate(divide="ignore"):
                return dnp.log(f(*args, **kw))
        return g

    return log_of(cdf), log_of(sf)


# -- norm --------------------------------------------------------------------------------------
def _std(x, loc, scale):
    """(x - loc) / scale; x may be a list, as in SciPy."""
    return dnp.divide(dnp.subtract(x, loc), scale)


def _norm_logpdf(x, loc=0.0, scale=1.0):
    z = _std(x, loc, scale)
    return _valid(-0.5 * z * z - _LOG_SQRT_2PI - _log(scale), scale > 0)


def _norm_cdf(x, loc=0.0, scale=1.0):
    return _valid(sc.ndtr(_std(x, loc, scale)), scale > 0)


def _norm_logcdf(x, loc=0.0, scale=1.0):
    return _valid(sc.log_ndtr(_std(x, loc, scale)), scale > 0)


def _norm_sf(x, loc=0.0, scale=1.0):
    return _valid(sc.ndtr(-_std(x, loc, scale)), scale > 0)


def _norm_logsf(x, loc=0.0, scale=1.0):
    return _valid(sc.log_ndtr(-_std(x, loc, scale)), scale > 0)


def _norm_ppf(q, loc=0.0, scale=1.0):
    return _valid(loc + scale * sc.ndtri(q), scale > 0)


def _pdf(logpdf):
    def pdf(*args, **kw):
        return dnp.exp(logpdf(*args, **kw))

    pdf.__doc__ = "The exponential of the log-density (log-mass)."
    return pdf


norm = _namespace("norm", logpdf=_norm_logpdf, pdf=_pdf(_norm_logpdf), cdf=_norm_cdf,
                  logcdf=_norm_logcdf, sf=_norm_sf, logsf=_norm_logsf, ppf=_norm_ppf)


# -- t -----------------------------------------------------------------------------------------
def _t_logpdf(x, df, loc=0.0, scale=1.0):
    z = _std(x, loc, scale)
    out = (sc.gammaln((df + 1) / 2) - sc.gammaln(df / 2) - 0.5 * dnp.log(df * math.pi)
           - (df + 1) / 2 * dnp.log1p(z * z / df) - _log(scale))
    return _valid(out, scale > 0, df > 0)


def _t_cdf(x, df, loc=0.0, scale=1.0):
    return _valid(sc.stdtr(df, _std(x, loc, scale)), scale > 0, df > 0)


def _t_sf(x, df, loc=0.0, scale=1.0):
    return _valid(sc.stdtr(df, -_std(x, loc, scale)), scale > 0, df > 0)


t = _namespace("t", logpdf=_t_logpdf, pdf=_pdf(_t_logpdf), cdf=_t_cdf, sf=_t_sf,
               **dict(zip(("logcdf", "logsf"), _from_cdf(_t_cdf, _t_sf), strict=True)))


# -- cauchy ------------------------------------------------------------------------------------
def _cauchy_logpdf(x, loc=0.0, scale=1.0):
    z = _std(x, loc, scale)
    return _valid(-math.log(math.pi) - _log(scale) - dnp.log1p(z * z), scale > 0)


def _cauchy_cdf(x, loc=0.0, scale=1.0):  # arctan2(1, -z) keeps full accuracy as z -> -inf
    return _valid(dnp.arctan2(1.0, -_std(x, loc, scale)) / math.pi, scale > 0)


def _cauchy_sf(x, loc=0.0, scale=1.0):
    return _valid(dnp.arctan2(1.0, _std(x, loc, scale)) / math.pi, scale > 0)


cauchy = _namespace("cauchy", logpdf=_cauchy_logpdf, pdf=_pdf(_cauchy_logpdf),
                    cdf=_cauchy_cdf, sf=_cauchy_sf,
                    **dict(zip(("logcdf", "logsf"), _from_cdf(_cauchy_cdf, _cauchy_sf),
                               strict=True)))


# -- laplace -----------------------------------------------------------------------------------
def _halves(z):
    """z on each side of 0 (the other side replaced by 0, so exp() stays finite there)."""
    neg = z <= 0
    return neg, dnp.where(neg, z, 0.0), dnp.where(neg, 0.0, z)


def _laplace_logpdf(x, loc=0.0, scale=1.0):
    z = _std(x, loc, scale)
    return _valid(-math.log(2) - _log(scale) - dnp.abs(z), scale > 0)


def _laplace_cdf(x, loc=0.0, scale=1.0):
    neg, zn, zp = _halves(_std(x, loc, scale))
    return _valid(dnp.where(neg, 0.5 * dnp.exp(zn), 1 - 0.5 * dnp.exp(-zp)), scale > 0)


def _laplace_logcdf(x, loc=0.0, scale=1.0):
    neg, zn, zp = _halves(_std(x, loc, scale))
    return _valid(dnp.where(neg, zn - math.log(2), dnp.log1p(-0.5 * dnp.exp(-zp))), scale > 0)


def _laplace_sf(x, loc=0.0, scale=1.0):
    return _laplace_cdf(-x, -loc, scale)


def _laplace_logsf(x, loc=0.0, scale=1.0):
    return _laplace_logcdf(-x, -loc, scale)


laplace = _namespace("laplace", logpdf=_laplace_logpdf, pdf=_pdf(_laplace_logpdf),
                     cdf=_laplace_cdf, logcdf=_laplace_logcdf, sf=_laplace_sf,
                     logsf=_laplace_logsf)


# -- logistic ----------------------------------------------------------------------------------
def _logistic_logpdf(x, loc=0.0, scale=1.0):
    z = _std(x, loc, scale)
    return _valid(-z - 2 * sc.softplus(-z) - _log(scale), scale > 0)


def _logistic(fn, sign):
    def f(x, loc=0.0, scale=1.0):
        return _valid(fn(sign * _std(x, loc, scale)), scale > 0)

    return f


logistic = _namespace(
    "logistic", logpdf=_logistic_logpdf, pdf=_pdf(_logistic_logpdf),
    cdf=_logistic(sc.expit, 1), logcdf=_logistic(lambda z: -sc.softplus(z), -1),
    sf=_logistic(sc.expit, -1), logsf=_logistic(lambda z: -sc.softplus(z), 1),
)


# -- expon -------------------------------------------------------------------------------------
def _positive(x, loc, scale):
    """(z >= 0, z there and 0 elsewhere): the support of expon, gamma, chi2."""
    z = _std(x, loc, scale)
    inside = z >= 0
    return inside, dnp.where(inside, z, 0.0)


def _expon_logpdf(x, loc=0.0, scale=1.0):
    inside, z = _positive(x, loc, scale)
    return _valid(dnp.where(inside, -z, -_INF) - _log(scale), scale > 0)


def _expon_cdf(x, loc=0.0, scale=1.0):
    return _valid(-dnp.expm1(-_positive(x, loc, scale)[1]), scale > 0)


def _expon_logsf(x, loc=0.0, scale=1.0):
    return _valid(-_positive(x, loc, scale)[1], scale > 0)


def _expon_sf(x, loc=0.0, scale=1.0):
    return dnp.exp(_expon_logsf(x, loc, scale))


expon = _namespace("expon", logpdf=_expon_logpdf, pdf=_pdf(_expon_logpdf), cdf=_expon_cdf,
                   logcdf=_from_cdf(_expon_cdf, _expon_sf)[0], sf=_expon_sf,
                   logsf=_expon_logsf)


# -- gamma, chi2 -------------------------------------------------------------------------------
def _gamma_logpdf(x, a, loc=0.0, scale=1.0):
    inside, z = _positive(x, loc, scale)
    zs = dnp.where(inside, z, 1.0)  # keeps log(0)'s inf out of the derivative outside
    out = dnp.where(inside, sc.xlogy(a - 1, zs) - zs - sc.gammaln(a), -_INF)
    return _valid(out - _log(scale), scale > 0, a > 0)


def _gamma_tail(fn):
    def f(x, a, loc=0.0, scale=1.0):
        return _valid(fn(a, _positive(x, loc, scale)[1]), scale > 0, a > 0)

    return f


_gamma_cdf, _gamma_sf = _gamma_tail(sc.gammainc), _gamma_tail(sc.gammaincc)
gamma = _namespace("gamma", logpdf=_gamma_logpdf, pdf=_pdf(_gamma_logpdf), cdf=_gamma_cdf,
                   sf=_gamma_sf, **dict(zip(("logcdf", "logsf"),
                                            _from_cdf(_gamma_cdf, _gamma_sf), strict=True)))


def _chi2(fn):
    """chi2(df) is gamma(df / 2, scale=2)."""
    def f(x, df, loc=0.0, scale=1.0):
        return fn(x, df / 2, loc, 2 * scale)

    return f


chi2 = _namespace("chi2", logpdf=_chi2(_gamma_logpdf), pdf=_pdf(_chi2(_gamma_logpdf)),
                  cdf=_chi2(_gamma_cdf), sf=_chi2(_gamma_sf),
                  logcdf=_chi2(gamma.logcdf), logsf=_chi2(gamma.logsf))


# -- beta --------------------------------------------------------------------------------------
def _unit(x, loc, scale):
    """(0 <= z <= 1, z clipped to [0, 1]) for beta and uniform."""
    z = _std(x, loc, scale)
    inside = dnp.logical_and(z >= 0, z <= 1)
    return inside, dnp.where(z < 0, 0.0, dnp.where(z > 1, 1.0, z))


def _beta_logpdf(x, a, b, loc=0.0, scale=1.0):
    inside, z = _unit(x, loc, scale)
    zs = dnp.where(inside, z, 0.5)
    out = sc.xlogy(a - 1, zs) + sc.xlog1py(b - 1, -zs) - sc.betaln(a, b)
    return _valid(dnp.where(inside, out, -_INF) - _log(scale), scale > 0, a > 0, b > 0)


def _beta_cdf(x, a, b, loc=0.0, scale=1.0):
    return _valid(sc.betainc(a, b, _unit(x, loc, scale)[1]), scale > 0, a > 0, b > 0)


def _beta_sf(x, a, b, loc=0.0, scale=1.0):  # I_{1-z}(b, a): accurate where the cdf is near 1
    return _valid(sc.betainc(b, a, 1 - _unit(x, loc, scale)[1]), scale > 0, a > 0, b > 0)


beta = _namespace("beta", logpdf=_beta_logpdf, pdf=_pdf(_beta_logpdf), cdf=_beta_cdf,
                  sf=_beta_sf, **dict(zip(("logcdf", "logsf"), _from_cdf(_beta_cdf, _beta_sf),
                                          strict=True)))


# -- uniform -----------------------------------------------------------------------------------
def _uniform_logpdf(x, loc=0.0, scale=1.0):
    inside, _ = _unit(x, loc, scale)
    return _valid(dnp.where(inside, -_log(scale), -_INF), scale > 0)


def _uniform_cdf(x, loc=0.0, scale=1.0):
    return _valid(_unit(x, loc, scale)[1], scale > 0)


def _uniform_sf(x, loc=0.0, scale=1.0):
    return _valid(1 - _unit(x, loc, scale)[1], scale > 0)


uniform = _namespace("uniform", logpdf=_uniform_logpdf, pdf=_pdf(_uniform_logpdf),
                     cdf=_uniform_cdf, sf=_uniform_sf,
                     **dict(zip(("logcdf", "logsf"), _from_cdf(_uniform_cdf, _uniform_sf),
                                strict=True)))


# -- poisson, binom (k and n are counts: no derivative) ----------------------------------------
def _count(k, dist: str, arg: str = "k"):
    k = concrete(k, dist, arg, "it is a count")
    return dnp.asarray(k) if isinstance(k, list | tuple) else k


def _poisson_logpmf(k, mu, loc=0):
    k = dnp.subtract(_count(k, "poisson.logpmf"), loc)
    ok = dnp.logical_and(k >= 0, dnp.floor(k) == k)
    ks = dnp.where(ok, k, 0)
    out = dnp.where(ok, sc.xlogy(ks, mu) - mu - sc.gammaln(ks + 1), -_INF)
    return _valid(out, mu >= 0)


def _poisson_tail(fn, below):
    def f(k, mu, loc=0):
        k = dnp.floor(dnp.subtract(_count(k, f"poisson.{fn.__name__}"), loc))
        inside = k >= 0
        out = dnp.where(inside, fn(dnp.where(inside, k, 0) + 1, mu), below)
        return _valid(out, mu >= 0)

    return f


def _poisson_cdf_k(a, mu):
    return sc.gammaincc(a, mu)


def _poisson_sf_k(a, mu):
    return sc.gammainc(a, mu)


_poisson_cdf_k.__name__, _poisson_sf_k.__name__ = "cdf", "sf"
_poisson_cdf, _poisson_sf = _poisson_tail(_poisson_cdf_k, 0.0), _poisson_tail(_poisson_sf_k, 1.0)
poisson = _namespace("poisson", logpmf=_poisson_logpmf, pmf=_pdf(_poisson_logpmf),
                     cdf=_poisson_cdf, sf=_poisson_sf,
                     **dict(zip(("logcdf", "logsf"), _from_cdf(_poisson_cdf, _poisson_sf),
                                strict=True)))


def _binom_logpmf(k, n, p, loc=0):
    k, n = dnp.subtract(_count(k, "binom.logpmf"), loc), _count(n, "binom.logpmf", "n")
    ok = dnp.logical_and(dnp.logical_and(k >= 0, dnp.less_equal(k, n)), dnp.floor(k) == k)
    ks = dnp.where(ok, k, 0)
    nk = dnp.subtract(n, ks)  # dnp: k and n may be arrays of two backends
    out = (sc.gammaln(dnp.add(n, 1)) - sc.gammaln(ks + 1) - sc.gammaln(nk + 1)
           + sc.xlogy(ks, p) + sc.xlog1py(nk, -p))
    return _valid(dnp.where(ok, out, -_INF), p >= 0, p <= 1, dnp.greater_equal(n, 0))


def _binom_tail(upper):
    """cdf = I_{1-p}(n - k, k + 1), sf = I_p(k + 1, n - k) for 0 <= k < n."""
    def f(k, n, p, loc=0):
        name = "binom.sf" if upper else "binom.cdf"
        k = dnp.floor(dnp.subtract(_count(k, name), loc))
        n = _count(n, name, "n")
        inside = dnp.logical_and(k >= 0, dnp.less(k, n))
        ks = dnp.where(inside, k, 0)
        nk = dnp.where(inside, dnp.subtract(n, ks), 1)
        out = sc.betainc(ks + 1, nk, p) if upper else sc.betainc(nk, ks + 1, 1 - p)
        edge = dnp.where(k < 0, 1.0, 0.0) if upper else dnp.where(k < 0, 0.0, 1.0)
        return _valid(dnp.where(inside, out, edge), p >= 0, p <= 1, dnp.greater_equal(n, 0))

    return f


_binom_cdf, _binom_sf = _binom_tail(False), _binom_tail(True)
binom = _namespace("binom", logpmf=_binom_logpmf, pmf=_pdf(_binom_logpmf), cdf=_binom_cdf,
                   sf=_binom_sf, **dict(zip(("logcdf", "logsf"), _from_cdf(_binom_cdf, _binom_sf),
                                            strict=True)))
