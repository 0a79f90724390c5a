"""Special functions (SciPy's `scipy.special` names): erf family, logistic, gamma family,
x log y, softplus, incomplete gamma and beta, normal quantiles, Bessel functions. Each is
elementwise; the derivatives are themselves primitives of this family (gammaln' = digamma,
digamma' = polygamma(1, .), j0' = -j1, jv' = (jv(v-1) - jv(v+1)) / 2, ...), so every order
is available. Orders (polygamma's n, Bessel's v), betainc's shapes and stdtr's df have no
rule (None): `diffkit.scipy.special` refuses them traced. gammainc's derivative in a is an
iteration written with primitives (`_gammainc_da`), so it too is differentiated again.
"""

from __future__ import annotations

import math

from diffkit.core.rules import elementwise, nondiff
from diffkit.primitives.elementwise import (
    equal,
    exp,
    greater,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_or,
    sign,
    subtract,
    where,
)
from diffkit.primitives.reductions import any as any_
from diffkit.primitives.sampling import SHAPES, away_from, cases, uniform

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


def _ranges(*ranges, orders=None):
    """One argument drawn from each (lo, hi) range, for each shape; `orders` prepends an
    order argument drawn from those values (a float array, and a Python int case)."""

    def sample(rng):
        out = []
        for s in SHAPES:
            args = tuple(rng.uniform(lo, hi, s) for lo, hi in ranges)
            if orders is not None:
                args = (rng.choice(orders, s),) + args
            out.append((args, {}))
        if orders is not None:
            out.append(((int(orders[1]),) + tuple(rng.uniform(lo, hi, (3,))
                                                   for lo, hi in ranges), {}))
        return out

    return sample


def _plus_negative(lo, hi):
    """(0.2, 4.0) and a case on (lo, hi) < 0 between two poles of the gamma function."""
    return lambda rng: uniform(0.2, 4.0)(rng) + cases(
        (lambda r: (r.uniform(lo, hi, (3,)),), {}))(rng)


# -- gamma and beta --------------------------------------------------------------------------
gamma = elementwise("gamma", lambda ans, x: ans * digamma.bind(x),
                    sample=_plus_negative(-2.8, -2.2))
rgamma = elementwise("rgamma", lambda ans, x: -ans * digamma.bind(x),
                     sample=_plus_negative(-1.8, -1.2))
gammasgn = nondiff("gammasgn", subgradient="0 everywhere (piecewise constant)",
                   sample=uniform(-3.9, 3.9))


# In these densities the terms of the shape alone (gammaln(a)) are subtracted with the
# primitive, not `-`: for a Python-number shape they are NumPy values, and NumPy's `-` with a
# tensor is not torch's (the primitive moves the NumPy value to the tensor's backend).
def _gamma_density(_ans, a, x):
    """d/dx gammainc(a, x) = x^(a-1) exp(-x) / Gamma(a)."""
    return exp(subtract(xlogy.bind(a - 1, x) - x, gammaln.bind(a)))


_MAX_TERMS = 2000  # a = x = 1000 takes ~300, a = x = 10^4 ~850 (so a ~ 10^5 gives nan)


def _eps(x) -> float:
    """The rounding unit of x's precision (float64's unless x says float32 or float16)."""
    kind = str(getattr(x, "dtype", "float64"))
    return 2.0 ** -23 if "float32" in kind else 2.0 ** -10 if "float16" in kind else 2.0 ** -52


def _settled(eps, change, dchange) -> bool:
    """The relative change of every value below `eps`, of every derivative below 32 eps
    (the convergents' derivatives jitter by a few eps once settled)."""
    return not (bool(any_.bind(greater(abs(change), eps)))
                or bool(any_.bind(greater(abs(dchange), 32 * eps))))


def _series_da(a, x):
    """dP/da where x <= max(a, 1): P = x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n)),
    differentiated term by term (Cephes' series, as XLA's IgammaSeries derivative mode)."""
    r, c, s, dc, ds, eps = a, 1.0, 1.0, 0.0, 0.0, _eps(x)
    for _ in range(_MAX_TERMS):
        r = r + 1
        dc = dc * (x / r) - c * x / (r * r)
        ds = ds + dc
        c = c * (x / r)
        s = s + c
        if _settled(eps, c / s, dc / ds):
            break
    else:
        return math.nan
    return exp(a * log(x) - x - gammaln.bind(a + 1)) * (s * (log(x) - digamma.bind(a + 1)) + ds)


def _fraction_da(a, x):
    """dQ/da where x > max(a, 1): Q = x^a e^-x / Gamma(a) * F with Cephes' continued fraction
    F, its convergents p/q differentiated along (as XLA's IgammacContinuedFraction)."""
    y, z, c, eps = 1 - a, x + 2 - a, 0, _eps(x)
    p2, q2, p1, q1 = 1.0, x, x + 1, z * x
    dp2, dq2, dp1, dq1 = 0.0, 0.0, 0.0, -x
    f = p1 / q1
    df = (dp1 - f * dq1) / q1
    for _ in range(_MAX_TERMS):
        c, y, z = c + 1, y + 1, z + 2
        yc = y * c
        p, q = p1 * z - p2 * yc, q1 * z - q2 * yc
        dp, dq = dp1 * z - p1 - dp2 * yc + p2 * c, dq1 * z - q1 - dq2 * yc + q2 * c
        f_new = p / q
        df_new = (dp - f_new * dq) / q
        change, dchange = (f - f_new) / f_new, (df - df_new) / df_new
        f, df = f_new, df_new
        p2, q2, p1, q1, dp2, dq2, dp1, dq1 = p1, q1, p, q, dp1, dq1, dp, dq
        scale = where(greater(abs(p), 1 / eps), eps, 1.0)  # keeps p, q finite
        p2, q2, p1, q1 = p2 * scale, q2 * scale, p1 * scale, q1 * scale
        dp2, dq2, dp1, dq1 = dp2 * scale, dq2 * scale, dp1 * scale, dq1 * scale
        if _settled(eps, change, dchange):
            break
    else:
        return math.nan
    return exp(a * log(x) - x - gammaln.bind(a)) * (f * (log(x) - digamma.bind(a)) + df)


def _gammainc_da(a, x):
    """dP(a, x)/da, P the regularized lower incomplete gamma function: the series where
    x <= max(a, 1), minus dQ/da by the continued fraction above (each accurate relative to
    its own side, as SciPy's P and Q). Written with primitives, so it is differentiated again
    for higher orders. 0 at x = 0; nan on a side whose iteration has not settled in 2000
    steps (never an unsettled value)."""
    series = logical_or(less_equal(x, 1), less_equal(x, a))
    inside = greater(x, 0)
    # each side computes on the other side's elements too: give them values it handles
    lower = _series_da(where(series, a, 1.0), where(logical_and(series, inside), x, 0.5))
    upper = _fraction_da(where(series, 1.0, a), where(series, 2.0, x))
    return where(inside, where(series, lower, -upper), where(equal(x, 0), 0.0, math.nan))


gammainc = elementwise("gammainc", lambda _ans, a, x: _gammainc_da(a, x), _gamma_density,
                       saves_ans=False, sample=_ranges((0.5, 4.0), (0.2, 5.0)))
gammaincc = elementwise("gammaincc", lambda _ans, a, x: -_gammainc_da(a, x),
                        lambda _ans, a, x: -_gamma_density(_ans, a, x),
                        saves_ans=False, sample=_ranges((0.5, 4.0), (0.2, 5.0)))


def _beta_d(ans_factor):
    """d/da of beta (ans_factor=True: B * (psi(a) - psi(a+b))) or of betaln (False)."""
    def d(ans, a, b):
        g = subtract(digamma.bind(a), digamma.bind(a + b))
        return ans * g if ans_factor else g
    return d


beta = elementwise("beta", _beta_d(True), lambda ans, a, b: _beta_d(True)(ans, b, a),
                   sample=uniform(0.3, 4.0, nargs=2))
betaln = elementwise("betaln", lambda _ans, a, b: _beta_d(False)(_ans, a, b),
                     lambda _ans, a, b: _beta_d(False)(_ans, b, a), saves_ans=False,
                     sample=uniform(0.3, 4.0, nargs=2))
betainc = elementwise(  # d/dx = x^(a-1) (1-x)^(b-1) / B(a, b)
    "betainc", None, None,
    lambda _ans, a, b, x: exp(subtract(xlogy.bind(a - 1, x) + xlog1py.bind(b - 1, -x),
                                       betaln.bind(a, b))),
    saves_ans=False, sample=_ranges((0.5, 4.0), (0.5, 4.0), (0.05, 0.95)))



def _t_density(_ans, df, t):
    """d/dt stdtr(df, t): Student's t density."""
    log_c = gammaln.bind((df + 1) / 2) - gammaln.bind(df / 2) - 0.5 * log(df * math.pi)
    return exp(subtract(-(df + 1) / 2 * log1p(t * t / df), -log_c))


stdtr = elementwise("stdtr", None, _t_density, saves_ans=False,  # Student's t CDF
                    sample=_ranges((0.5, 8.0), (-4.0, 4.0)))

# -- the normal distribution -----------------------------------------------------------------
_SQRT_2PI = math.sqrt(2 * math.pi)
ndtri = elementwise("ndtri", lambda ans, _p: _SQRT_2PI * exp(ans * ans / 2), saves_args=False,
                    sample=uniform(0.02, 0.98))
log_ndtr = elementwise("log_ndtr", lambda ans, x: exp(-x * x / 2 - ans) / _SQRT_2PI,
                       sample=uniform(-6.0, 6.0))


# -- Bessel functions of order 0 and 1 (x-only) -------------------------------------------
def _minus_over_x(f, at_zero):
    """-f(x) / x, with its limit `at_zero` at x = 0 (f(0) = 0)."""
    return lambda x: where(x == 0, at_zero, -f.bind(x) / where(x == 0, 1, x))


j0 = elementwise("j0", lambda _ans, x: -j1.bind(x), saves_ans=False, sample=uniform(-6, 6))
j1 = elementwise("j1", lambda _ans, x: j0.bind(x) + _minus_over_x(j1, -0.5)(x),
                 saves_ans=False, sample=uniform(-6, 6))
y0 = elementwise("y0", lambda _ans, x: -y1.bind(x), saves_ans=False, sample=uniform(0.3, 6))
y1 = elementwise("y1", lambda _ans, x: y0.bind(x) - y1.bind(x) / x, saves_ans=False,
                 sample=uniform(0.3, 6))
i0 = elementwise("i0", lambda _ans, x: i1.bind(x), saves_ans=False, sample=uniform(-4, 4))
i1 = elementwise("i1", lambda _ans, x: i0.bind(x) + _minus_over_x(i1, -0.5)(x),
                 saves_ans=False, sample=uniform(-4, 4))
i0e = elementwise("i0e", lambda _ans, x: i1e.bind(x) - sign(x) * i0e.bind(x),
                  saves_ans=False, subgradient="i0e'(0) = 0 (the kink of exp(-abs(x)))",
                  sample=away_from([0.0], -4.0, 4.0))
i1e = elementwise("i1e", lambda _ans, x: (i0e.bind(x) + _minus_over_x(i1e, -0.5)(x)
                                          - sign(x) * i1e.bind(x)),
                  saves_ans=False, sample=away_from([0.0], -4.0, 4.0))
k0 = elementwise("k0", lambda _ans, x: -k1.bind(x), saves_ans=False, sample=uniform(0.3, 6))
k1 = elementwise("k1", lambda _ans, x: -k0.bind(x) - k1.bind(x) / x, saves_ans=False,
                 sample=uniform(0.3, 6))

# -- Bessel functions of any order v (v has no derivative) -----------------------------------
_ORDERS = (0.0, 1.0, 2.0, 2.5)
jv = elementwise("jv", None, lambda _ans, v, x: (jv.bind(v - 1, x) - jv.bind(v + 1, x)) / 2,
                 saves_ans=False, sample=_ranges((0.3, 6.0), orders=_ORDERS))
yv = elementwise("yv", None, lambda _ans, v, x: (yv.bind(v - 1, x) - yv.bind(v + 1, x)) / 2,
                 saves_ans=False, sample=_ranges((0.3, 6.0), orders=_ORDERS))
iv = elementwise("iv", None, lambda _ans, v, x: (iv.bind(v - 1, x) + iv.bind(v + 1, x)) / 2,
                 saves_ans=False, sample=_ranges((0.3, 4.0), orders=_ORDERS))
ive = elementwise(  # ive = iv * exp(-|x|)
    "ive", None,
    lambda ans, v, x: (ive.bind(v - 1, x) + ive.bind(v + 1, x)) / 2 - sign(x) * ans,
    sample=_ranges((0.3, 4.0), orders=_ORDERS))
kv = elementwise("kv", None, lambda _ans, v, x: -(kv.bind(v - 1, x) + kv.bind(v + 1, x)) / 2,
                 saves_ans=False, sample=_ranges((0.3, 6.0), orders=_ORDERS))

PRIMITIVES = (erf, erfc, erfinv, expit, logit, softplus, gammaln, digamma, polygamma, xlogy,
              xlog1py, gamma, rgamma, gammasgn, gammainc, gammaincc, beta, betaln, betainc,
              stdtr, ndtri, log_ndtr, j0, j1, y0, y1, i0, i1, i0e, i1e, k0, k1, jv, yv, iv,
              ive, kv)
