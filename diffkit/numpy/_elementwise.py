"""Elementwise functions with NumPy's names and signatures (ufunc broadcasting and dtype
promotion come from the backend's kernels).

Every elementwise primitive named like a NumPy function gets NumPy's ufunc signature here,
generated from the primitive table (`_ufuncs`); the functions written by hand are those
whose signature is not a ufunc's (round's decimals, clip's bounds, where's one-argument form).
"""

from __future__ import annotations

import inspect

import numpy

from diffkit.core.tracer import Tracer
from diffkit.numpy._core import _arr, _has_tracer, concrete
from diffkit.primitives import elementwise as P
from diffkit.primitives import indexing as _indexing_p

_INF = float("inf")

__all__ = [  # written by hand below; the ufuncs generated at the end are added to it
    "real", "imag", "angle", "round", "around", "clip", "where", "nan_to_num", "astype",
    "stop_gradient", "divmod", "isclose", "allclose", "array_equal",
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
        return _indexing_p.nonzero.bind(_raw(_arr(condition)))  # `_indexing.nonzero`
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
        return P.add(nan_to_num(real(x), copy, nan, posinf, neginf),
                     P.multiply(1j, nan_to_num(imag(x), copy, nan, posinf, neginf)))
    out = P.nan_to_num.bind(x, nan=0.0 if _has_tracer([nan]) else nan,
                            posinf=None if _has_tracer([posinf]) else posinf,
                            neginf=None if _has_tracer([neginf]) else neginf)
    filled = out
    for where_, v in ((P.isnan(x), nan), (P.equal(x, _INF), posinf),
                      (P.equal(x, -_INF), neginf)):
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
    return P.floor_divide(x1, x2), P.mod(x1, x2)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Like `numpy.isclose`: |a - b| <= atol + rtol * |b| for finite values, exact equality
    for infinities (a boolean array; no derivative)."""
    finite = P.isfinite(a) & P.isfinite(b)
    a0, b0 = where(finite, a, 0), where(finite, b, 0)  # no inf - inf warnings
    close = P.less_equal(P.abs(P.subtract(a0, b0)), atol + rtol * P.abs(b0))
    ok = P.equal(a, b) | (finite & close)
    return ok | (P.isnan(a) & P.isnan(b)) if equal_nan else ok


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Like `numpy.allclose`: True if every element of `a` and `b` is close (`isclose`)."""
    return bool(_raw(isclose(a, b, rtol, atol, equal_nan)).all())


def array_equal(a1, a2, equal_nan=False) -> bool:
    """Like `numpy.array_equal`: same shape and same elements (NaNs equal with equal_nan)."""
    from diffkit.numpy._core import shape

    if shape(a1) != shape(a2):
        return False
    eq = P.equal(a1, a2)
    if equal_nan:
        eq = eq | (P.isnan(a1) & P.isnan(a2))
    return bool(_raw(eq).all())


def _raw(x):
    """A value as data (no derivative; recorded by a program being traced)."""
    return x._value() if isinstance(x, Tracer) else x


def _nin(name: str) -> int:
    """How many arrays NumPy's function `name` takes: a ufunc's `nin`, else its required
    positional parameters (numpy.fix, numpy.sinc)."""
    f = getattr(numpy, name)
    if isinstance(f, numpy.ufunc):
        return f.nin
    return sum(p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
               for p in inspect.signature(f).parameters.values())


def _ufuncs(primitives, written: dict) -> dict:
    """A ufunc-signature function for each primitive named like a NumPy function and not
    written by hand (in `written`)."""
    return {p.name: _ufunc(p, p.name, _nin(p.name)) for p in primitives
            if hasattr(numpy, p.name) and p.name not in written}


UFUNCS = _ufuncs(P.PRIMITIVES, globals())
ALIASES = {  # NumPy's second names for the same ufuncs
    "true_divide": "divide", "remainder": "mod", "absolute": "abs", "conjugate": "conj",
    "degrees": "rad2deg", "radians": "deg2rad", "bitwise_not": "invert",
}
globals().update(UFUNCS)
globals().update({alias: UFUNCS[name] for alias, name in ALIASES.items()})
__all__ += [*UFUNCS, *ALIASES]
