"""The multivariate distributions of `diffkit.scipy.stats`: multivariate_normal (logpdf, pdf,
entropy) and dirichlet (logpdf, pdf, entropy), with SciPy's signatures and output shapes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import diffkit.numpy as dnp
import diffkit.scipy.special as sc

_LOG_2PI = math.log(2 * math.pi)


# -- multivariate_normal -------------------------------------------------------------------
def _mvn_params(mean, cov, fn: str):
    """(mean as a (d,) array, cov as a (d, d) array, d): a scalar cov is cov * I, a 1-D one
    a diagonal (SciPy's rules); without mean, zeros of cov's dimension (1 for a scalar)."""
    cov = dnp.asarray(cov)
    if mean is not None:
        mean = dnp.asarray(mean)
        if dnp.ndim(mean) > 1:
            raise ValueError(f"multivariate_normal.{fn}: mean must be 1-D, not of shape "
                             f"{dnp.shape(mean)}")
        d = dnp.size(mean)
    else:
        d = dnp.shape(cov)[0] if dnp.ndim(cov) else 1
        mean = dnp.zeros(d, dtype=cov.dtype, like=cov) if dnp.ndim(cov) else 0.0
    mean = dnp.reshape(mean, (d,)) if dnp.ndim(mean) else mean * dnp.ones(d, like=cov)
    if dnp.ndim(cov) == 0:
        cov = cov * dnp.eye(d, like=cov)
    elif dnp.ndim(cov) == 1:
        cov = dnp.diag(cov)
    if dnp.shape(cov) != (d, d):
        raise ValueError(f"multivariate_normal.{fn}: cov must be a scalar, a ({d},) diagonal "
                         f"or a ({d}, {d}) matrix for a mean of size {d}, not of shape "
                         f"{dnp.shape(cov)}")
    return mean, cov, d


def _half_logdet(chol):
    return dnp.sum(dnp.log(dnp.diagonal(chol)))


def _mvn_logpdf(x, mean=None, cov=1):
    """log N(x; mean, cov) over the last axis of x (for d == 1, each element of x is a point);
    singleton axes of the result are squeezed, as SciPy."""
    mean, cov, d = _mvn_params(mean, cov, "logpdf")
    x = dnp.asarray(x)
    if d == 1 and (dnp.ndim(x) == 0 or dnp.shape(x)[-1] != 1):
        x = dnp.expand_dims(x, -1)
    if dnp.shape(x)[-1] != d:
        raise ValueError(f"multivariate_normal.logpdf: x's last axis has {dnp.shape(x)[-1]} "
                         f"entries but the distribution has dimension {d}")
    chol = dnp.linalg.cholesky(cov)
    diff = dnp.reshape(x - mean, (-1, d))
    white = dnp.linalg.solve(chol, dnp.transpose(diff))  # L^-1 (x - mean), one column a point
    maha = dnp.reshape(dnp.sum(white * white, axis=0), dnp.shape(x)[:-1])
    return dnp.squeeze(-0.5 * (d * _LOG_2PI + maha) - _half_logdet(chol))


def _mvn_pdf(x, mean=None, cov=1):
    """exp(logpdf)."""
    return dnp.exp(_mvn_logpdf(x, mean, cov))


def _mvn_entropy(mean=None, cov=1):
    """The differential entropy (d (1 + log 2 pi) + log det cov) / 2."""
    _, cov, d = _mvn_params(mean, cov, "entropy")
    return 0.5 * d * (1 + _LOG_2PI) + _half_logdet(dnp.linalg.cholesky(cov))


multivariate_normal = SimpleNamespace(__name__="multivariate_normal", logpdf=_mvn_logpdf,
                                      pdf=_mvn_pdf, entropy=_mvn_entropy)


# -- dirichlet -------------------------------------------------------------------------------
def _dirichlet_x(x, alpha):
    """x with quantiles along axis 0 (K or K - 1 of them: the last is 1 - the sum), checked
    to lie on the simplex as SciPy checks it."""
    k = dnp.shape(alpha)[0]
    x = dnp.asarray(x)
    if dnp.shape(x)[0] == k - 1:
        x = dnp.concatenate([x, 1 - dnp.sum(x, axis=0, keepdims=True)], axis=0)
    if dnp.shape(x)[0] != k:
        raise ValueError(f"dirichlet: x has {dnp.shape(x)[0]} entries along axis 0 but alpha "
                         f"has {k} (give {k} or {k - 1})")
    if bool(dnp.any(x < 0)) or bool(dnp.any(x > 1)):
        raise ValueError("dirichlet: each entry of x must lie in [0, 1]")
    if bool(dnp.any(dnp.abs(dnp.sum(x, axis=0) - 1) > 1e-9)):
        raise ValueError("dirichlet: the entries of x along axis 0 must sum to 1")
    return x


def _dirichlet_alpha(alpha):
    alpha = dnp.asarray(alpha)
    if dnp.ndim(alpha) != 1 or bool(dnp.any(alpha <= 0)):
        raise ValueError(f"dirichlet: alpha must be a 1-D array of positive numbers, not "
                         f"of shape {dnp.shape(alpha)}")
    return alpha


def _dirichlet_logpdf(x, alpha):
    """log Dir(x; alpha) = sum((alpha - 1) log x) - log B(alpha), over x's axis 0."""
    alpha = _dirichlet_alpha(alpha)
    x = _dirichlet_x(x, alpha)
    a = dnp.reshape(alpha, dnp.shape(alpha) + (1,) * (dnp.ndim(x) - 1))
    log_b = dnp.sum(sc.gammaln(alpha)) - sc.gammaln(dnp.sum(alpha))
    return dnp.sum(sc.xlogy(a - 1, x), axis=0) - log_b


def _dirichlet_pdf(x, alpha):
    """exp(logpdf)."""
    return dnp.exp(_dirichlet_logpdf(x, alpha))


def _dirichlet_entropy(alpha):
    """log B(alpha) + (a0 - K) psi(a0) - sum((alpha - 1) psi(alpha)), a0 = sum(alpha)."""
    alpha = _dirichlet_alpha(alpha)
    a0 = dnp.sum(alpha)
    log_b = dnp.sum(sc.gammaln(alpha)) - sc.gammaln(a0)
    return (log_b + (a0 - dnp.shape(alpha)[0]) * sc.digamma(a0)
            - dnp.sum((alpha - 1) * sc.digamma(alpha)))


dirichlet = SimpleNamespace(__name__="dirichlet", logpdf=_dirichlet_logpdf, pdf=_dirichlet_pdf,
                            entropy=_dirichlet_entropy)
