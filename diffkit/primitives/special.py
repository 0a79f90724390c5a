"""Special functions (SciPy's `scipy.special` names): erf family, logistic, gamma family,
x log y, softplus, incomplete gamma and beta, normal quantiles, Bessel functions. Each is
elementwise; the derivatives are themselves primitives of this family (gammaln' = digamma,
digamma' = polygamma(1, .), j0' = -j1, jv' = (jv(v-1) - jv(v+1)) / 2, ...), so every order
is available. Orders (polygamma's n, Bessel's v) have no rule (None): `diffkit.scipy.special`
refuses them traced. The derivatives of gammainc in a, betainc in a and b and stdtr in df
are the functions' iterations (series, continued fractions) differentiated along, written
with primitives, so they too are differentiated again.
"""

from __future__ import annotations

import math

from diffkit.core.rules import elementwise, nondiff
from diffkit.primitives.elementwise import (
    equal,
    exp,
    greater,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    sign,
    subtract,
    where,
)
from diffkit.primitives.reductions import all as all_
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


def _settled(eps, value, *derivatives):
    """Each argument a pair (change, size): where the value's change is within eps of its
    size and every derivative's within 32 eps (the convergents' derivatives jitter by a few
    eps once settled). Products, not quotients: a size may be 0."""
    ok = less_equal(abs(value[0]), eps * abs(value[1]))
    for d, size in derivatives:
        ok = logical_and(ok, less_equal(abs(d), 32 * eps * abs(size)))
    return ok


class _Settling:
    """Keeps each element's values from the step its iteration settled (later steps only
    jitter it), and says when every element has; the unsettled ones end as nan."""

    def __init__(self):
        self.kept, self.done = None, None

    def step(self, values, now) -> bool:
        if self.done is None:
            self.kept, self.done = list(values), now
        else:
            self.kept = [where(self.done, k, v) for k, v in zip(self.kept, values, strict=True)]
            self.done = logical_or(self.done, now)
        return bool(all_.bind(self.done))

    def result(self, out):
        return where(self.done, out, math.nan)


def _series_da(a, x):
    """dP/da where x <= max(a, 1): P = x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n)),
    differentiated term by term (Cephes' series, as XLA's IgammaSeries derivative mode)."""
    r, c, s, dc, ds, eps = a, 1.0, 1.0, 0.0, 0.0, _eps(x)
    settling = _Settling()
    for _ in range(_MAX_TERMS):
        r = r + 1
        dc = dc * (x / r) - c * x / (r * r)
        ds = ds + dc
        c = c * (x / r)
        s = s + c
        if settling.step((s, ds), _settled(eps, (c, s), (dc, ds))):
            break
    s, ds = settling.kept
    return settling.result(exp(a * log(x) - x - gammaln.bind(a + 1))
                           * (s * (log(x) - digamma.bind(a + 1)) + ds))


def _fraction_da(a, x):
    """dQ/da where x > max(a, 1): Q = x^a e^-x / Gamma(a) * F with Cephes' continued fraction
    F, its convergents p/q differentiated along (as XLA's IgammacContinuedFraction)."""
    y, z, c, eps = 1 - a, x + 2 - a, 0, _eps(x)
    p2, q2, p1, q1 = 1.0, x, x + 1, z * x
    dp2, dq2, dp1, dq1 = 0.0, 0.0, 0.0, -x
    f = p1 / q1
    df = (dp1 - f * dq1) / q1
    settling = _Settling()
    for _ in range(_MAX_TERMS):
        c, y, z = c + 1, y + 1, z + 2
        yc = y * c
        p, q = p1 * z - p2 * yc, q1 * z - q2 * yc
        dp, dq = dp1 * z - p1 - dp2 * yc + p2 * c, dq1 * z - q1 - dq2 * yc + q2 * c
        f_new = p / q
        df_new = (dp - f_new * dq) / q
        now = _settled(eps, (f - f_new, f_new), (df - df_new, df_new))
        f, df = f_new, df_new
        p2, q2, p1, q1, dp2, dq2, dp1, dq1 = p1, q1, p, q, dp1, dq1, dp, dq
        scale = where(greater(abs(p), 1 / eps), eps, 1.0)  # keeps p, q finite
        p2, q2, p1, q1 = p2 * scale, q2 * scale, p1 * scale, q1 * scale
        dp2, dq2, dp1, dq1 = dp2 * scale, dq2 * scale, dp1 * scale, dq1 * scale
        if settling.step((f, df), now):
            break
    f, df = settling.kept
    return settling.result(exp(a * log(x) - x - gammaln.bind(a))
                           * (f * (log(x) - digamma.bind(a)) + df))


def _gammainc_da(a, x):
    """dP(a, x)/da, P the regularized lower incomplete gamma function: the series where
    x <= max(a, 1), minus dQ/da by the continued fraction above (each accurate relative to
    its own side, as SciPy's P and Q). Written with primitives, so it is differentiated again
    for higher orders. 0 at x = 0; nan for a <= 0 and where the iteration has not settled
    in 2000 steps (never an unsettled value)."""
    series = logical_or(less_equal(x, 1), less_equal(x, a))
    inside = logical_and(greater(x, 0), greater(a, 0))  # a <= 0: nan, as SciPy's P
    # each side computes on the other side's elements too: give them values it handles
    lower = _series_da(where(logical_and(series, inside), a, 1.0),
                       where(logical_and(series, inside), x, 0.5))
    upper = _fraction_da(where(series, 1.0, where(inside, a, 1.0)), where(series, 2.0, x))
    edge = where(logical_and(equal(x, 0), greater(a, 0)), 0.0, math.nan)
    return where(inside, where(series, lower, -upper), edge)


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


class _Dual:
    """A value with its partial derivatives in two shapes (a, b), carried by hand through
    betainc's continued fraction (each part is a primitive expression, so differentiable)."""

    __slots__ = ("v", "da", "db")

    def __init__(self, v, da=0.0, db=0.0):
        self.v, self.da, self.db = v, da, db

    def __add__(self, o):
        o = o if isinstance(o, _Dual) else _Dual(o)
        return _Dual(self.v + o.v, self.da + o.da, self.db + o.db)

    __radd__ = __add__

    def __sub__(self, o):
        return self + (-1.0) * o

    def __rsub__(self, o):
        return (-1.0) * self + o

    def __mul__(self, o):
        if not isinstance(o, _Dual):
            return _Dual(self.v * o, self.da * o, self.db * o)
        return _Dual(self.v * o.v, self.da * o.v + self.v * o.da, self.db * o.v + self.v * o.db)

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = o if isinstance(o, _Dual) else _Dual(o)
        q = self.v / o.v
        return _Dual(q, (self.da - q * o.da) / o.v, (self.db - q * o.db) / o.v)

    def __rtruediv__(self, o):
        return _Dual(o) / self


def _beta_fraction(a, b, x):
    """(dI/da, dI/db) of I_x(a, b) where x < (a+1)/(a+b+2): x^a (1-x)^b / (a B(a, b)) times
    the continued fraction of Numerical Recipes' betacf (modified Lentz), with its partials."""
    eps = _eps(x)
    pa, pb = _Dual(a, 1.0, 0.0), _Dual(b, 0.0, 1.0)
    c, d = _Dual(1.0), 1 / (1 - (pa + pb) * x / (pa + 1))
    h, settling = d, _Settling()
    for m in range(1, _MAX_TERMS):
        aa = m * (pb - m) * x / ((pa + (2 * m - 1)) * (pa + 2 * m))
        d, c = 1 / (1 + aa * d), 1 + aa / c
        h = h * d * c
        aa = -1.0 * (pa + m) * (pa + pb + m) * x / ((pa + 2 * m) * (pa + (2 * m + 1)))
        d, c = 1 / (1 + aa * d), 1 + aa / c
        new = h * d * c
        now = _settled(eps, (new.v - h.v, new.v), (new.da - h.da, new.da),
                       (new.db - h.db, new.db))
        h = new
        if settling.step((h.v, h.da, h.db), now):
            break
    h = _Dual(*settling.kept)
    both = digamma.bind(a + b)
    front = exp(subtract(xlogy.bind(a, x) + xlog1py.bind(b, -x), betaln.bind(a, b))) / a
    da = front * (h.v * (log(x) - digamma.bind(a) + both - 1 / a) + h.da)
    db = front * (h.v * (log1p(-x) - digamma.bind(b) + both) + h.db)
    return settling.result(da), settling.result(db)


def _betainc_dab(a, b, x):
    """(dI/da, dI/db) of the regularized incomplete beta function: the fraction for I_x(a, b)
    where x < (a+1)/(a+b+2), else for 1 - I_{1-x}(b, a) (each side keeps its relative
    accuracy, as Cephes' incbet); 0 at x = 0 and 1; nan outside [0, 1] and for shapes <= 0."""
    inside = logical_and(logical_and(greater(x, 0), less(x, 1)),
                         logical_and(greater(a, 0), greater(b, 0)))  # else nan, as SciPy
    direct = logical_and(inside, less(x, (a + 1) / (a + b + 2)))
    swap = logical_and(inside, logical_not(direct))
    da, db = _beta_fraction(where(direct, a, 1.0), where(direct, b, 1.0),
                            where(direct, x, 0.25))  # 0.25: the other side's stand-in
    jb, ja = _beta_fraction(where(swap, b, 1.0), where(swap, a, 1.0), where(swap, 1 - x, 0.25))
    ends = logical_and(logical_or(equal(x, 0), equal(x, 1)),
                       logical_and(greater(a, 0), greater(b, 0)))
    edge = where(ends, 0.0, math.nan)
    return (where(direct, da, where(swap, -ja, edge)), where(direct, db, where(swap, -jb, edge)))


betainc = elementwise(  # d/dx = x^(a-1) (1-x)^(b-1) / B(a, b)
    "betainc", lambda _ans, a, b, x: _betainc_dab(a, b, x)[0],
    lambda _ans, a, b, x: _betainc_dab(a, b, x)[1],
    lambda _ans, a, b, x: exp(subtract(xlogy.bind(a - 1, x) + xlog1py.bind(b - 1, -x),
                                       betaln.bind(a, b))),
    saves_ans=False, sample=_ranges((0.5, 4.0), (0.5, 4.0), (0.05, 0.95)))



def _t_density(_ans, df, t):
    """d/dt stdtr(df, t): Student's t density."""
    log_c = gammaln.bind((df + 1) / 2) - gammaln.bind(df / 2) - 0.5 * log(df * math.pi)
    return exp(subtract(-(df + 1) / 2 * log1p(t * t / df), -log_c))


def _stdtr_d_df(_ans, df, t):
    """d/d(df) of stdtr = 1/2 + sign(t) I_y(1/2, df/2) / 2, y = t^2 / (df + t^2): the
    fraction's dI/db, plus dI/dy dy/d(df); 0 at t = 0 (stdtr(df, 0) = 1/2 for every df)."""
    zero = equal(t, 0)
    ts = where(zero, 1.0, t)
    s = ts * ts
    y = s / (df + s)
    di_db = _betainc_dab(0 * s + 0.5, df / 2, y)[1]  # a = 1/2 on y's backend
    di_dy = exp(subtract(xlogy.bind(-0.5, y) + xlog1py.bind(df / 2 - 1, -y),
                         betaln.bind(0.5, df / 2)))
    return where(zero, 0.0, 0.5 * sign(ts) * (0.5 * di_db - di_dy * s / ((df + s) * (df + s))))


stdtr = elementwise("stdtr", _stdtr_d_df, _t_density, saves_ans=False,  # Student's t CDF
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
