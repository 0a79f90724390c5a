"""Elementwise functions with NumPy's names and signatures (ufunc broadcasting and dtype
promotion come from the backend's kernels)."""

from __future__ import annotations

from diffkit.core.tracer import Tracer
from diffkit.numpy._core import _has_tracer, concrete
from diffkit.primitives import elementwise as P

_INF = float("inf")

__all__ = [
    "negative", "positive", "reciprocal", "square", "sqrt", "cbrt", "fabs", "exp", "exp2",
    "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos",
    "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "deg2rad", "rad2deg",
    "sinc", "floor", "ceil", "rint", "trunc", "fix", "sign", "logical_not", "invert", "isnan",
    "isinf", "isfinite", "signbit", "add", "subtract", "multiply", "divide", "mod", "fmod",
    "power", "float_power", "logaddexp", "logaddexp2", "arctan2", "hypot", "maximum",
    "minimum", "fmax", "fmin", "heaviside", "floor_divide", "equal", "not_equal", "less",
    "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor", "true_divide", "remainder", "absolute",
    "conjugate", "degrees", "radians", "bitwise_not", "abs", "real", "imag", "conj", "angle",
    "round", "around", "clip", "where", "nan_to_num", "astype", "stop_gradient", "divmod",
    "isclose", "allclose", "array_equal",
]


def _ufunc(prim, name: str, nin: int):
    """NumPy's ufunc signature `f(x1, ..., /, out=None, *, dtype=None)` over a primitive.

    One closure per arity, binding the primitive directly: this wrapper is on the hot path
    of every traced operation (and of every rule), so it does no more than it must.
    """
    bind = prim.bind

    def refuse_out():
        return TypeError(f"dnp.{name} does not support out=: diffkit arrays are immutable; "
                         f"use the returned value")

    if nin == 1:
        def f(x, /, out=None, *, dtype=None):
            if out is None and dtype is None:
                return bind(x)
            if out is not None:
                raise refuse_out()
            return astype(bind(x), dtype)
    else:
        def f(x1, x2, /, out=None, *, dtype=None):
            if out is None and dtype is None:
                return bind(x1, x2)
            if out is not None:
                raise refuse_out()
            return astype(bind(x1, x2), dtype)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Like `numpy.{name}`, differentiable (see diffkit.primitives.elementwise)."
    return f


negative = _ufunc(P.negative, "negative", 1)
positive = _ufunc(P.positive, "positive", 1)
reciprocal = _ufunc(P.reciprocal, "reciprocal", 1)
square = _ufunc(P.square, "square", 1)
sqrt = _ufunc(P.sqrt, "sqrt", 1)
cbrt = _ufunc(P.cbrt, "cbrt", 1)
fabs = _ufunc(P.fabs, "fabs", 1)
exp = _ufunc(P.exp, "exp", 1)
exp2 = _ufunc(P.exp2, "exp2", 1)
expm1 = _ufunc(P.expm1, "expm1", 1)
log = _ufunc(P.log, "log", 1)
log2 = _ufunc(P.log2, "log2", 1)
log10 = _ufunc(P.log10, "log10", 1)
log1p = _ufunc(P.log1p, "log1p", 1)
sin = _ufunc(P.sin, "sin", 1)
cos = _ufunc(P.cos, "cos", 1)
tan = _ufunc(P.tan, "tan", 1)
arcsin = _ufunc(P.arcsin, "arcsin", 1)
arccos = _ufunc(P.arccos, "arccos", 1)
arctan = _ufunc(P.arctan, "arctan", 1)
sinh = _ufunc(P.sinh, "sinh", 1)
cosh = _ufunc(P.cosh, "cosh", 1)
tanh = _ufunc(P.tanh, "tanh", 1)
arcsinh = _ufunc(P.arcsinh, "arcsinh", 1)
arccosh = _ufunc(P.arccosh, "arccosh", 1)
arctanh = _ufunc(P.arctanh, "arctanh", 1)
deg2rad = _ufunc(P.deg2rad, "deg2rad", 1)
rad2deg = _ufunc(P.rad2deg, "rad2deg", 1)
sinc = _ufunc(P.sinc, "sinc", 1)
floor = _ufunc(P.floor, "floor", 1)
ceil = _ufunc(P.ceil, "ceil", 1)
rint = _ufunc(P.rint, "rint", 1)
trunc = _ufunc(P.trunc, "trunc", 1)
fix = _ufunc(P.fix, "fix", 1)
sign = _ufunc(P.sign, "sign", 1)
logical_not = _ufunc(P.logical_not, "logical_not", 1)
invert = _ufunc(P.invert, "invert", 1)
isnan = _ufunc(P.isnan, "isnan", 1)
isinf = _ufunc(P.isinf, "isinf", 1)
isfinite = _ufunc(P.isfinite, "isfinite", 1)
signbit = _ufunc(P.signbit, "signbit", 1)
abs = _ufunc(P.abs, "abs", 1)
conj = _ufunc(P.conj, "conj", 1)
add = _ufunc(P.add, "add", 2)
subtract = _ufunc(P.subtract, "subtract", 2)
multiply = _ufunc(P.multiply, "multiply", 2)
divide = _ufunc(P.divide, "divide", 2)
mod = _ufunc(P.mod, "mod", 2)
fmod = _ufunc(P.fmod, "fmod", 2)
power = _ufunc(P.power, "power", 2)
float_power = _ufunc(P.float_power, "float_power", 2)
logaddexp = _ufunc(P.logaddexp, "logaddexp", 2)
logaddexp2 = _ufunc(P.logaddexp2, "logaddexp2", 2)
arctan2 = _ufunc(P.arctan2, "arctan2", 2)
hypot = _ufunc(P.hypot, "hypot", 2)
maximum = _ufunc(P.maximum, "maximum", 2)
minimum = _ufunc(P.minimum, "minimum", 2)
fmax = _ufunc(P.fmax, "fmax", 2)
fmin = _ufunc(P.fmin, "fmin", 2)
heaviside = _ufunc(P.heaviside, "heaviside", 2)
floor_divide = _ufunc(P.floor_divide, "floor_divide", 2)
equal = _ufunc(P.equal, "equal", 2)
not_equal = _ufunc(P.not_equal, "not_equal", 2)
less = _ufunc(P.less, "less", 2)
less_equal = _ufunc(P.less_equal, "less_equal", 2)
greater = _ufunc(P.greater, "greater", 2)
greater_equal = _ufunc(P.greater_equal, "greater_equal", 2)
logical_and = _ufunc(P.logical_and, "logical_and", 2)
logical_or = _ufunc(P.logical_or, "logical_or", 2)
logical_xor = _ufunc(P.logical_xor, "logical_xor", 2)
bitwise_and = _ufunc(P.bitwise_and, "bitwise_and", 2)
bitwise_or = _ufunc(P.bitwise_or, "bitwise_or", 2)
bitwise_xor = _ufunc(P.bitwise_xor, "bitwise_xor", 2)
# NumPy's second names for the same ufuncs
true_divide = divide
remainder = mod
absolute = abs
conjugate = conj
degrees = rad2deg
radians = deg2rad
bitwise_not = invert


def real(val):
    """Like `numpy.real` (JAX's transpose: a real cotangent ct becomes complex(ct, 0))."""
    return P.real.bind(val)


def imag(val):
    """Like `numpy.imag` (JAX's transpose: a real cotangent ct becomes -1j * ct)."""
    return P.imag.bind(val)


def angle(z, deg=False):
    """Like `numpy.angle`: the argument of z, in radians (degrees with deg=True)."""
    return P.angle.bind(z, deg=bool(deg))


def round(a, decimals=0, out=None):  # noqa: A001 (NumPy's name)
    """Like `numpy.round` (half to even); its derivative is zero everywhere."""
    if out is not None:
        raise TypeError("dnp.round does not support out=: diffkit arrays are immutable")
    decimals = concrete(decimals, "dnp.round", "decimals", "it is a number of decimal places")
    return P.round.bind(a, decimals=int(decimals))


around = round


def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):  # noqa: A002
    """Like `numpy.clip` (also `clip(x, None, hi)` and NumPy 2's min=/max= keywords).

    The derivative is 1 for `a` strictly inside the bounds and 0 at or beyond them, where the
    active bound (if it is an array being differentiated) takes it instead.
    """
    if out is not None:
        raise TypeError("dnp.clip does not support out=: diffkit arrays are immutable")
    if min is not None:
        if a_min is not None:
            raise TypeError("dnp.clip got both a_min and min; pass one of them")
        a_min = min
    if max is not None:
        if a_max is not None:
            raise TypeError("dnp.clip got both a_max and max; pass one of them")
        a_max = max
    return P.clip.bind(a, a_min, a_max)


def where(condition, x=None, y=None):
    """Like `numpy.where`: `where(c, x, y)` picks elementwise (differentiable in x and y);
    `where(c)` is `nonzero(c)`."""
    if x is None and y is None:
        from diffkit import numpy as dnp

        return dnp.nonzero(condition)
    if x is None or y is None:
        raise TypeError("dnp.where takes either one argument (condition) or three "
                        "(condition, x, y)")
    return P.where.bind(condition, x, y)


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """Like `numpy.nan_to_num`; the derivative is 1 where x is finite, 0 where replaced
    (and a traced replacement value gets the derivative of the places it fills)."""
    if not _has_tracer([nan, posinf, neginf]):
        return P.nan_to_num.bind(x, nan=nan, posinf=posinf, neginf=neginf)
    from diffkit.numpy._core import iscomplexobj

    if iscomplexobj(x):  # NumPy replaces in the real and imaginary parts separately
        return add(nan_to_num(real(x), copy, nan, posinf, neginf),
                   multiply(1j, nan_to_num(imag(x), copy, nan, posinf, neginf)))
    out = P.nan_to_num.bind(x, nan=0.0 if _has_tracer([nan]) else nan,
                            posinf=None if _has_tracer([posinf]) else posinf,
                            neginf=None if _has_tracer([neginf]) else neginf)
    filled = out
    for where_, v in ((isnan(x), nan), (equal(x, _INF), posinf), (equal(x, -_INF), neginf)):
        if _has_tracer([v]):
            filled = where(where_, v, filled)
    return filled if filled.dtype == out.dtype else astype(filled, out.dtype)


def astype(x, dtype, /, *, copy=True, device=None):
    """Like `numpy.astype`: `x` cast to `dtype`. Cotangents are cast back to x's dtype;
    an integer or boolean result carries no derivative."""
    if device is not None:
        raise TypeError("dnp.astype does not move arrays between devices; use dk.asarray")
    return P.astype.bind(x, dtype=dtype)


def stop_gradient(x):
    """`x`, through which no derivative flows (JAX's lax.stop_gradient)."""
    return P.stop_gradient.bind(x)


def divmod(x1, x2):  # noqa: A001 (NumPy's name)
    """Like `numpy.divmod`: (floor_divide(x1, x2), mod(x1, x2))."""
    return floor_divide(x1, x2), mod(x1, x2)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Like `numpy.isclose`: |a - b| <= atol + rtol * |b| for finite values, exact equality
    for infinities (a boolean array; no derivative)."""
    finite = isfinite(a) & isfinite(b)
    a0, b0 = where(finite, a, 0), where(finite, b, 0)  # no inf - inf warnings
    ok = equal(a, b) | (finite & less_equal(abs(subtract(a0, b0)), atol + rtol * abs(b0)))
    return ok | (isnan(a) & isnan(b)) if equal_nan else ok


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Like `numpy.allclose`: True if every element of `a` and `b` is close (`isclose`)."""
    return bool(_raw(isclose(a, b, rtol, atol, equal_nan)).all())


def array_equal(a1, a2, equal_nan=False) -> bool:
    """Like `numpy.array_equal`: same shape and same elements (NaNs equal with equal_nan)."""
    from diffkit.numpy._core import shape

    if shape(a1) != shape(a2):
        return False
    eq = equal(a1, a2)
    if equal_nan:
        eq = eq | (isnan(a1) & isnan(a2))
    return bool(_raw(eq).all())


def _raw(x):
    while isinstance(x, Tracer):
        x = x.primal
    return x
