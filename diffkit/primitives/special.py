"""Special functions (SciPy's `scipy.special` names): erf family, logistic, gamma family,
x log y, softplus. Each is elementwise; the derivatives are themselves primitives of this
family (gammaln' = digamma, digamma' = polygamma(1, .), polygamma(n, .)' = polygamma(n+1, .)),
so every order is available.
"""

from __future__ import annotations

import math

from diffkit.core.rules import elementwise
from diffkit.primitives.elementwise import exp, log, log1p, where
from diffkit.primitives.sampling import cases, uniform

_2_SQRTPI = 2 / math.sqrt(math.pi)

erf = elementwise("erf", lambda _ans, x: _2_SQRTPI * exp(-x * x), saves_ans=False,
                  sample=uniform(-2.5, 2.5))
erfc = elementwise("erfc", lambda _ans, x: -_2_SQRTPI * exp(-x * x), saves_ans=False,
                   sample=uniform(-2.5, 2.5))
erfinv = elementwise("erfinv", lambda ans, _x: exp(ans * ans) / _2_SQRTPI,
                     saves_args=False, sample=uniform(-0.9, 0.9))
expit = elementwise("expit", lambda ans, _x: ans * (1 - ans), saves_args=False,
                    sample=uniform(-4.0, 4.0))
logit = elementwise("logit", lambda _ans, p: 1 / (p * (1 - p)), saves_ans=False,
                    sample=uniform(0.05, 0.95))
softplus = elementwise("softplus", lambda _ans, x: expit.bind(x), saves_ans=False,
                       sample=uniform(-4.0, 4.0))
gammaln = elementwise(
    "gammaln", lambda _ans, x: digamma.bind(x), saves_ans=False,
    sample=lambda rng: uniform(0.2, 5.0)(rng) + cases(
        (lambda r: (r.uniform(-2.8, -2.2, (3,)),), {}))(rng),
)
digamma = elementwise(
    "digamma", lambda _ans, x: polygamma.bind(1, x), saves_ans=False,
    sample=lambda rng: uniform(0.2, 5.0)(rng) + cases(
        (lambda r: (r.uniform(-1.8, -1.2, (3,)),), {}))(rng),
)
polygamma = elementwise(  # polygamma(n, x): n is a non-negative integer order
    "polygamma", None, lambda _ans, n, x: polygamma.bind(n + 1, x), saves_ans=False,
    sample=cases(*(((lambda r, n=n: (n, r.uniform(0.3, 4.0, (2, 3)))), {}) for n in (1, 2, 3)),
                 (lambda r: (r.integers(1, 4, (3,)), r.uniform(0.3, 4.0, (2, 3))), {})),
)


def _xlogy_d_y(den):
    """d/dy of x * f(y) = x / den: 0 where x == 0 (the function is 0 there for any y)."""
    return lambda _ans, x, y: where(x == 0, 0, x / where(x == 0, 1, den(y)))


xlogy = elementwise(
    "xlogy", lambda _ans, _x, y: log(y), _xlogy_d_y(lambda y: y), saves_ans=False,
    subgradient="d/dy = 0 where x == 0", sample=uniform(0.1, 3.0, nargs=2),
)
xlog1py = elementwise(
    "xlog1py", lambda _ans, _x, y: log1p(y), _xlogy_d_y(lambda y: 1 + y), saves_ans=False,
    subgradient="d/dy = 0 where x == 0", sample=uniform(-0.9, 3.0, nargs=2),
)

PRIMITIVES = (erf, erfc, erfinv, expit, logit, softplus, gammaln, digamma, polygamma, xlogy,
              xlog1py)
