"""`diffkit.scipy.special`: SciPy's special functions with SciPy's signatures, differentiable.

    from diffkit.scipy.special import logsumexp, gammaln, xlogy
"""

from __future__ import annotations

from diffkit.numpy import _core as _co
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import concrete
from diffkit.primitives import special as P

__all__ = ["erf", "erfc", "erfinv", "expit", "logit", "softplus", "gammaln", "digamma", "psi",
           "polygamma", "xlogy", "xlog1py", "logsumexp"]


def erf(z):
    """The error function 2/sqrt(pi) * integral_0^z exp(-t^2) dt."""
    return P.erf.bind(z)


def erfc(x):
    """1 - erf(x), accurate for large x."""
    return P.erfc.bind(x)


def erfinv(y):
    """The inverse of erf on (-1, 1)."""
    return P.erfinv.bind(y)


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


def xlogy(x, y):
    """x * log(y), 0 where x == 0 (so d/dx at x = 0 is log(y), finite for y > 0)."""
    return P.xlogy.bind(x, y)


def xlog1py(x, y):
    """x * log1p(y), 0 where x == 0."""
    return P.xlog1py.bind(x, y)


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
