"""Elementwise primitives: NumPy's ufuncs (arithmetic, powers, exp/log, trig, complex parts,
selection, rounding, comparisons) with their derivatives.

Each derivative is one expression `d(ans, *args, **params)` serving both modes (see
`core.rules.elementwise`); complex inputs follow JAX (holomorphic f: the same f'(z) multiplies
tangents and cotangents; real-valued f of z: `d` is the c with JVP Re(c * t)).
Non-differentiable points follow the minimum-norm subgradient, stated per primitive.
"""

from __future__ import annotations

import math

from diffkit.core.dispatch import is_inexact
from diffkit.core.primitive import Primitive
from diffkit.core.residuals import pass_cotangent
from diffkit.core.rules import elementwise, linear, nondiff
from diffkit.primitives.sampling import SHAPES, away_from, cases, uniform

LN2, LN10 = math.log(2.0), math.log(10.0)


def is_complex(x) -> bool:
    """Whether `x` (an array, a traced value or a Python number) has a complex dtype (NumPy's
    `dtype.kind`, torch's `dtype.is_complex`)."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return isinstance(x, complex)
    kind = getattr(dt, "kind", None)
    return kind == "c" if kind is not None else bool(getattr(dt, "is_complex", False))


# -- sampling domains beyond `uniform` ---------------------------------------------------------
def _draw(make, nargs=1, **params):
    """One case per standard shape, each argument drawn by `make(rng, shape)`."""
    return lambda rng: [(tuple(make(rng, s) for _ in range(nargs)), dict(params)) for s in SHAPES]


def _cplx(lo=-2.0, hi=2.0):
    return lambda rng, s: rng.uniform(lo, hi, s) + 1j * rng.uniform(-2.0, 2.0, s)


def _also_complex(base, nargs=1, lo=-2.0, hi=2.0):
    """`base`'s real cases plus complex ones (real parts in [lo, hi])."""
    return lambda rng: base(rng) + _draw(_cplx(lo, hi), nargs)(rng)


def _ints(rng, s):
    return rng.integers(-5, 6, s)


def _bools(rng, s):
    return rng.uniform(size=s) > 0.5


def _mod_args(rng):
    """x/y kept 0.2 away from integers, where mod/fmod jump."""
    y = rng.choice([-1.0, 1.0], (2, 3)) * rng.uniform(0.5, 2.0, (2, 3))
    k = rng.integers(-3, 3, (2, 3)) + rng.uniform(0.2, 0.8, (2, 3))
    return k * y, y


def _safe(den):
    """`den` with zeros replaced by 1, under a `where` that sets the value at 0."""
    return where(den == 0, 1, den)


# -- arithmetic ----------------------------------------------------------------------------
add = Primitive(
    "add",
    jvp=(lambda t, ans, x, y: t, lambda t, ans, x, y: t),
    vjp=(pass_cotangent, pass_cotangent),
    saves_args=False, saves_ans=False, sample=_also_complex(uniform(nargs=2), 2),
)
subtract = Primitive(
    "subtract",
    jvp=(lambda t, ans, x, y: t, lambda t, ans, x, y: -t),
    vjp=(pass_cotangent, lambda g, _ans, _x, _y: -g),
    saves_args=False, saves_ans=False, sample=_also_complex(uniform(nargs=2), 2),
)
multiply = elementwise(
    "multiply", lambda _ans, _x, y: y, lambda _ans, x, _y: x, saves_ans=False,
    sample=_also_complex(uniform(nargs=2), 2),
)
# d/dx is `t / y`, not `t * (1 / y)`: y may be a Python number, and Python's `1 / 0` raises
# where the kernel's `t / 0` gives inf/nan as NumPy and torch do (one rounding fewer, too).
divide = Primitive(
    "divide",
    jvp=(lambda t, ans, x, y: t / y, lambda t, ans, x, y: t * (-ans / y)),
    vjp=(lambda g, _ans, _x, y: g / y, lambda g, ans, _x, y: g * (-ans / y)),
    sample=_also_complex(away_from([0.0], nargs=2), 2, 0.5, 2.0),
)
mod = elementwise(
    "mod", lambda _ans, _x, _y: 1, lambda _ans, x, y: -floor_divide(x, y),
    saves_ans=False, subgradient="at the jumps (x/y an integer): the one-sided 1, -floor(x/y)",
    sample=cases((_mod_args, {})),
)
fmod = elementwise(
    "fmod", lambda _ans, _x, _y: 1, lambda _ans, x, y: -trunc(x / y),
    saves_ans=False, subgradient="at the jumps (x/y an integer): the one-sided 1, -trunc(x/y)",
    sample=cases((_mod_args, {})),
)
def _d_power_x(pow_fn):
    """y * x**(y-1), and 0 where y == 0 (not 0 * 0**-1 = nan at x = 0)."""

    def d(_ans, x, y):
        if isinstance(y, int | float):
            return 0 if y == 0 else y * pow_fn(x, y - 1)
        return y * pow_fn(x, where(y == 0, 1, y) - 1)

    return d


power = elementwise(
    "power",
    _d_power_x(lambda x, y: power(x, y)),
    lambda ans, x, _y: log(where(x == 0, 1, x)) * ans,  # log(1) = 0 at x = 0
    subgradient="d/dx = 0 where y == 0; d/dy = 0 where x == 0",
    sample=lambda rng: uniform(0.2, 2.0, nargs=2)(rng) + cases(
        (lambda r: (r.uniform(-2, 2, (3,)), 3), {}),
        (lambda r: (r.uniform(0.2, 2, (2, 3)) + 1j * r.uniform(-1, 1, (2, 3)),
                    r.uniform(-1, 2, (3,)) + 0.5j), {}),
    )(rng),
)
float_power = elementwise(
    "float_power",
    _d_power_x(lambda x, y: float_power(x, y)),
    lambda ans, x, _y: log(where(x == 0, 1, x)) * ans,
    subgradient="d/dx = 0 where y == 0; d/dy = 0 where x == 0",
    sample=uniform(0.2, 2.0, nargs=2),
)
negative = linear("negative", lambda g, _ans, _x: -g, saves_args=False, saves_ans=False,
                  sample=_also_complex(uniform()))
positive = linear("positive", pass_cotangent, saves_args=False, saves_ans=False,
                  sample=uniform())
reciprocal = elementwise("reciprocal", lambda ans, _x: -ans * ans, saves_args=False,
                         sample=_also_complex(away_from([0.0]), 1, 0.5, 2.0))
square = elementwise("square", lambda _ans, x: 2 * x, saves_ans=False,
                     sample=_also_complex(uniform()))
sqrt = elementwise("sqrt", lambda ans, _x: 0.5 / ans, saves_args=False,
                   subgradient="sqrt'(0) = inf (0.5 / sqrt(0), as JAX and PyTorch)",
                   sample=_also_complex(uniform(0.1, 3.0), 1, 0.2, 2.0))
cbrt = elementwise("cbrt", lambda ans, _x: 1 / (3 * ans * ans), saves_args=False,
                   subgradient="cbrt'(0) = inf", sample=away_from([0.0]))


def _d_abs(ans, x):
    if is_complex(x):  # d|z| = Re(conj(z) / |z| * dz)
        return where(ans == 0, 0, conj(x) / _safe(ans))
    return sign(x)


abs = elementwise(  # noqa: A001 (NumPy's name)
    "abs", _d_abs, subgradient="abs'(0) = 0 (real and complex)",
    sample=_also_complex(away_from([0.0])),
)
fabs = elementwise("fabs", lambda _ans, x: sign(x), saves_ans=False,
                   subgradient="fabs'(0) = 0", sample=away_from([0.0]))

# -- exp / log -----------------------------------------------------------------------------
exp = elementwise("exp", lambda ans, _x: ans, saves_args=False, sample=_also_complex(uniform()))
exp2 = elementwise("exp2", lambda ans, _x: ans * LN2, saves_args=False, sample=uniform())
expm1 = elementwise("expm1", lambda ans, _x: ans + 1, saves_args=False, sample=uniform())
log = elementwise("log", lambda _ans, x: 1 / x, saves_ans=False,
                  sample=_also_complex(uniform(0.1, 3.0), 1, 0.2, 2.0))
log2 = elementwise("log2", lambda _ans, x: 1 / (x * LN2), saves_ans=False,
                   sample=uniform(0.1, 3.0))
log10 = elementwise("log10", lambda _ans, x: 1 / (x * LN10), saves_ans=False,
                    sample=uniform(0.1, 3.0))
log1p = elementwise("log1p", lambda _ans, x: 1 / (1 + x), saves_ans=False,
                    sample=uniform(-0.9, 3.0))
logaddexp = elementwise("logaddexp", lambda ans, x, _y: exp(x - ans),
                        lambda ans, _x, y: exp(y - ans), sample=uniform(nargs=2))
logaddexp2 = elementwise("logaddexp2", lambda ans, x, _y: exp2(x - ans),
                         lambda ans, _x, y: exp2(y - ans), sample=uniform(nargs=2))

# -- trigonometric and hyperbolic -------------------------------------------------------------
sin = elementwise("sin", lambda _ans, x: cos(x), saves_ans=False,
                  sample=_also_complex(uniform()))
cos = elementwise("cos", lambda _ans, x: -sin(x), saves_ans=False,
                  sample=_also_complex(uniform()))
tan = elementwise("tan", lambda ans, _x: 1 + ans * ans, saves_args=False,
                  sample=_also_complex(uniform(-1.2, 1.2), 1, -1.0, 1.0))
arcsin = elementwise("arcsin", lambda _ans, x: 1 / sqrt(1 - x * x), saves_ans=False,
                     sample=uniform(-0.9, 0.9))
arccos = elementwise("arccos", lambda _ans, x: -1 / sqrt(1 - x * x), saves_ans=False,
                     sample=uniform(-0.9, 0.9))
arctan = elementwise("arctan", lambda _ans, x: 1 / (1 + x * x), saves_ans=False,
                     sample=uniform())
arctan2 = elementwise(
    "arctan2", lambda _ans, y, x: x / (x * x + y * y), lambda _ans, y, x: -y / (x * x + y * y),
    saves_ans=False, sample=away_from([0.0], nargs=2),  # away from the cut y = 0, x < 0
)
hypot = elementwise(
    "hypot", lambda ans, x, _y: x / _safe(ans), lambda ans, _x, y: y / _safe(ans),
    subgradient="0 at x = y = 0", sample=away_from([0.0], nargs=2),
)
sinh = elementwise("sinh", lambda _ans, x: cosh(x), saves_ans=False,
                   sample=_also_complex(uniform()))
cosh = elementwise("cosh", lambda _ans, x: sinh(x), saves_ans=False,
                   sample=_also_complex(uniform()))
# tanh's cotangent g * (1 - y*y) is one primitive (one kernel where the backend fuses it,
# one dispatch everywhere): on the 256x512 dense-loss benchmark it removes two kernels.
tanh_grad = elementwise("tanh_grad", lambda _ans, _g, y: 1 - y * y, lambda _ans, g, y: -2 * g * y,
                        saves_ans=False, sample=_also_complex(uniform(nargs=2), 2, -1.0, 1.0))
tanh = Primitive("tanh", jvp=(lambda t, ans, x: tanh_grad(t, ans),),
                 vjp=(lambda g, ans, _x: tanh_grad(g, ans),), saves_args=False,
                 sample=_also_complex(uniform(), 1, -1.0, 1.0))
arcsinh = elementwise("arcsinh", lambda _ans, x: 1 / sqrt(x * x + 1), saves_ans=False,
                      sample=uniform())
arccosh = elementwise("arccosh", lambda _ans, x: 1 / sqrt(x * x - 1), saves_ans=False,
                      sample=uniform(1.2, 3.0))
arctanh = elementwise("arctanh", lambda _ans, x: 1 / (1 - x * x), saves_ans=False,
                      sample=uniform(-0.9, 0.9))
deg2rad = linear("deg2rad", lambda g, _ans, _x: g * (math.pi / 180), saves_args=False,
                 saves_ans=False, sample=uniform())
rad2deg = linear("rad2deg", lambda g, _ans, _x: g * (180 / math.pi), saves_args=False,
                 saves_ans=False, sample=uniform())


def _d_sinc(_ans, x):
    """sinc'(x) = (cos(pi x) - sinc(x)) / x, by its Maclaurin series where |x| < 0.1 (exact
    at 0, free of the cancellation near it, and differentiable again there)."""
    small = abs(x) < 0.1
    u = (math.pi * x) ** 2
    series = 0.0
    for k in range(7, 0, -1):  # sum_k (-1)^k 2k u^(k-1) / (2k+1)!, Horner in u
        series = series * u + (-1) ** k * 2 * k / math.factorial(2 * k + 1)
    xs = where(small, 1, x)
    direct = (cos(math.pi * xs) - sinc(xs)) / xs
    return where(small, math.pi ** 2 * x * series, direct)


sinc = elementwise("sinc", _d_sinc, saves_ans=False,
                   sample=lambda rng: uniform()(rng) + cases(
                       (lambda r: (r.uniform(-0.12, 0.12, (4,)),), {}))(rng))

# -- complex parts (JAX: real's transpose is ct -> complex(ct, 0), imag's is ct -> -1j ct) ------
real = linear("real", pass_cotangent, saves_args=False, saves_ans=False,
              sample=_also_complex(uniform()))
imag = linear("imag", lambda g, _ans, _x: -1j * g, saves_args=False, saves_ans=False,
              sample=_draw(_cplx()))
conj = linear("conj", lambda g, _ans, _x: conj(g), saves_args=False, saves_ans=False,
              sample=_also_complex(uniform()))


def _d_angle(_ans, x, deg=False):
    if not is_complex(x):
        return 0  # 0 or pi, piecewise constant
    d = -1j / x  # d angle = Im(dz / z) = Re(-1j / z * dz)
    return d * (180 / math.pi) if deg else d


angle = elementwise("angle", _d_angle, saves_ans=False,
                    subgradient="0 for real input (and at z = 0: nan, as 1/z)",
                    sample=lambda rng: _draw(_cplx())(rng) + _draw(_cplx(), deg=True)(rng))

# -- selection ------------------------------------------------------------------------------
def _half(x, y):
    return where(x == y, 0.5, 0.0)


def _isnan(v):
    """`v != v`: NaN-ness that stays a Python bool for a Python number (`isnan` would give
    a NumPy bool, which a torch tensor refuses in `|`)."""
    return v != v


maximum = elementwise(
    "maximum", lambda _ans, x, y: where(x > y, 1.0, _half(x, y)),
    lambda _ans, x, y: where(y > x, 1.0, _half(x, y)), saves_ans=False,
    subgradient="ties split 0.5/0.5", sample=uniform(nargs=2),
)
minimum = elementwise(
    "minimum", lambda _ans, x, y: where(x < y, 1.0, _half(x, y)),
    lambda _ans, x, y: where(y < x, 1.0, _half(x, y)), saves_ans=False,
    subgradient="ties split 0.5/0.5", sample=uniform(nargs=2),
)
fmax = elementwise(  # a NaN loses: the other argument takes the whole derivative
    "fmax", lambda _ans, x, y: where((x > y) | _isnan(y), 1.0, _half(x, y)),
    lambda _ans, x, y: where((y > x) | _isnan(x), 1.0, _half(x, y)), saves_ans=False,
    subgradient="ties split 0.5/0.5", sample=uniform(nargs=2),
)
fmin = elementwise(
    "fmin", lambda _ans, x, y: where((x < y) | _isnan(y), 1.0, _half(x, y)),
    lambda _ans, x, y: where((y < x) | _isnan(x), 1.0, _half(x, y)), saves_ans=False,
    subgradient="ties split 0.5/0.5", sample=uniform(nargs=2),
)


# clip(a, lo, hi) = minimum(maximum(a, lo), hi): exactly one of a, lo, hi takes each element's
# derivative; `a` only strictly inside, an active bound (ties included) otherwise.
def _clip_d_a(_ans, a, lo, hi):
    inside = (True if lo is None else a > lo) & (True if hi is None else a < hi)
    return where(inside, 1.0, 0.0)


def _clip_d_lo(_ans, a, lo, hi):
    return where((a <= lo) & (True if hi is None else lo < hi), 1.0, 0.0)


def _clip_d_hi(_ans, a, lo, hi):
    return where((a if lo is None else maximum(a, lo)) >= hi, 1.0, 0.0)


def _clip_args(rng):
    a = rng.uniform(-2, 2, (2, 3))
    lo, hi = rng.uniform(-1.5, -0.5, (3,)), rng.uniform(0.5, 1.5, (2, 3))
    a = a + 0.3 * ((a >= lo) & (a < lo + 0.15)) - 0.3 * ((a < lo) & (a > lo - 0.15))
    a = a + 0.3 * ((a >= hi) & (a < hi + 0.15)) - 0.3 * ((a < hi) & (a > hi - 0.15))
    return a, lo, hi


clip = elementwise(
    "clip", _clip_d_a, _clip_d_lo, _clip_d_hi, saves_ans=False,
    subgradient="0 for the argument at or beyond a bound; the active bound takes 1",
    sample=cases((_clip_args, {}), (lambda r: (_clip_args(r)[0], r.uniform(-1, 0, ()), None), {}),
                 (lambda r: (_clip_args(r)[0], None, r.uniform(0.5, 1.5, ())), {})),
)
where = Primitive(
    "where",
    jvp=(None, lambda t, ans, c, x, y: where(c, t, 0),
         lambda t, ans, c, x, y: where(c, 0, t)),
    vjp=(None, lambda g, _ans, c, _x, _y: where(c, g, 0),
         lambda g, _ans, c, _x, _y: where(c, 0, g)),
    saves_ans=False,
    sample=lambda rng: [((_bools(rng, s), rng.normal(size=s), rng.normal(size=s)), {})
                        for s in SHAPES] + [((_bools(rng, (2, 3)), rng.normal(size=(3,)),
                                              rng.normal(size=(2, 1))), {})],
)
nan_to_num = elementwise(
    "nan_to_num", lambda _ans, x, **p: where(isfinite(x), 1.0, 0.0), saves_ans=False,
    subgradient="0 where x is replaced (nan, inf)",
    sample=lambda rng: uniform(nan=0.0, posinf=None, neginf=None)(rng) + cases(
        (lambda r: (r.uniform(-2, 2, (5,)) * [1, float("nan"), 1, float("inf"), 1],),
         {"nan": 1.0, "posinf": 9.0, "neginf": None}))(rng),
)
heaviside = elementwise(
    "heaviside", None, lambda _ans, x, _h: where(x == 0, 1.0, 0.0), saves_ans=False,
    subgradient="0 in x everywhere (a step)",
    # integer x with zeros: only h is perturbed, so d/dh = [x == 0] is checked
    sample=cases((lambda r: (_ints(r, (2, 3)), r.uniform(0, 1, (3,))), {}),
                 (lambda r: (r.uniform(-2, 2, (3,)), r.uniform(0, 1, (3,))), {})),
)


# -- casts ----------------------------------------------------------------------------------
def _astype_jvp(t, ans, x, dtype):
    if not is_inexact(ans):
        return None  # integer and boolean results carry no derivative
    if is_complex(t) and not is_complex(ans):
        t = real(t)
    return astype.bind(t, dtype=dtype)


astype = Primitive(
    "astype", jvp=(_astype_jvp,),
    vjp=(lambda g, _ans, _x, dtype: g if is_inexact(g) else None,),  # `fit_to` casts back
    saves_args=False, saves_ans=False,
    subgradient="zero derivative when casting to an integer or boolean dtype",
    sample=cases((lambda r: (r.normal(size=3).astype("float32"),), {"dtype": "float64"}),
                 (lambda r: (r.normal(size=(2, 3)),), {"dtype": "complex128"}),
                 (lambda r: (_cplx()(r, (3,)),), {"dtype": "float64"}),
                 (lambda r: (r.normal(size=3),), {"dtype": "int64"})),
)

# -- no derivative --------------------------------------------------------------------------
_STEP = "0 everywhere (piecewise constant)"
stop_gradient = nondiff("stop_gradient", sample=uniform())
floor, ceil, rint, trunc, fix, sign = (
    nondiff(n, sample=uniform(), subgradient=_STEP)
    for n in ("floor", "ceil", "rint", "trunc", "fix", "sign")
)
round = nondiff(  # noqa: A001 (NumPy's name)
    "round", subgradient=_STEP,
    sample=lambda rng: uniform(decimals=0)(rng) + uniform(decimals=2)(rng),
)
floor_divide = nondiff("floor_divide", subgradient=_STEP, sample=away_from([0.0], nargs=2))
equal, not_equal, less, less_equal, greater, greater_equal = (
    nondiff(n, sample=uniform(nargs=2))
    for n in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
)
logical_and, logical_or, logical_xor = (
    nondiff(n, sample=_draw(_bools, 2)) for n in ("logical_and", "logical_or", "logical_xor")
)
logical_not = nondiff("logical_not", sample=_draw(_bools))
bitwise_and, bitwise_or, bitwise_xor = (
    nondiff(n, sample=_draw(_ints, 2)) for n in ("bitwise_and", "bitwise_or", "bitwise_xor")
)
invert = nondiff("invert", sample=_draw(_ints))
isnan, isinf, isfinite, signbit = (
    nondiff(n, sample=uniform()) for n in ("isnan", "isinf", "isfinite", "signbit")
)

# every primitive defined above, once each, in order: a new one is registered by its definition
PRIMITIVES = tuple(dict.fromkeys(v for v in list(globals().values()) if isinstance(v, Primitive)))
