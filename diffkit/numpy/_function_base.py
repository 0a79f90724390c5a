"""select, piecewise, gradient and the complex-type tests (iscomplex, isreal,
real_if_close), with NumPy's signatures.

select is nested `where`s. piecewise evaluates each function on the elements its
condition picks (a gather), as NumPy does, so a function is never applied (nor
differentiated) where it is not used: no nan from the unused branch reaches a gradient.
"""

from __future__ import annotations

import numpy as np  # finfo and result_type: static dtype bookkeeping

from diffkit.core.dispatch import is_inexact
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _arr, _value, asarray, iscomplexobj, shape

__all__ = ["select", "piecewise", "iscomplex", "isreal", "real_if_close", "gradient"]


def select(condlist, choicelist, default=0):
    """The element of the first choice whose condition holds, else `default`."""
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist):
        raise ValueError("dnp.select: list of cases must be same length as list of conditions")
    if not condlist:
        raise ValueError("dnp.select: select with an empty condition list is not possible")
    arrays = _sh._arrs([*choicelist, default], "select")
    conds = [asarray(c, like=arrays[0]) for c in condlist]
    for i, c in enumerate(conds):
        if "bool" not in str(c.dtype):
            raise TypeError(f"dnp.select: invalid entry {i} in condlist: should be boolean "
                            f"ndarray")
    # Python numbers stay weak in the promotion, as NumPy keeps them (NEP 50)
    dtype = np.result_type(*(v if type(v) in (int, float, complex) else _np_dtype(a)
                             for v, a in zip([*choicelist, default], arrays, strict=True)))
    out = _el.astype(arrays[-1], dtype)
    for c, v in zip(reversed(conds), reversed(arrays[:-1]), strict=True):
        out = _el.where(c, _el.astype(v, dtype), out)
    return _sh.broadcast_to(out, _sh.broadcast_shapes(*(tuple(a.shape) for a in
                                                         [*conds, *arrays])))


def _np_dtype(x):
    dt = x.dtype
    return dt if isinstance(dt, np.dtype) else np.dtype(str(dt).removeprefix("torch."))


def piecewise(x, condlist, funclist, *args, **kw):
    """`np.piecewise`: out[cond_i] = funclist[i](x[cond_i], *args, **kw) (or the constant
    funclist[i]); one extra function is the otherwise case; elsewhere 0."""
    x = _arr(x)
    if _is_one_condition(condlist, len(x.shape)):  # NumPy's rule for a single condition
        condlist = [condlist]
    conds = [_sh.broadcast_to(asarray(c, like=x), tuple(x.shape)) for c in condlist]
    n, nf = len(conds), len(funclist)
    if nf == n + 1:
        rest = _rd.any(_sh.stack(conds), axis=0) if conds else None
        conds.append(~rest if rest is not None else _cr.ones_like(x, dtype=bool))
    elif nf != n:
        raise ValueError(f"dnp.piecewise: with {n} condition(s), either {n} or {n + 1} "
                         f"functions are expected, got {nf}")
    out = _cr.zeros_like(x)
    for cond, f in zip(conds, funclist, strict=True):
        if not callable(f):
            out = _el.where(cond, _el.astype(asarray(f, like=x), out.dtype), out)
            continue
        mask = _value(_el.stop_gradient(cond))
        if not bool(_value(_rd.any(mask))):
            continue
        vals = f(_ix._getitem(x, mask), *args, **kw)
        out = _ix.at(out)[mask].set(_el.astype(asarray(vals, like=x), out.dtype))
    return out


def _is_one_condition(condlist, x_ndim: int) -> bool:
    if not isinstance(condlist, list | tuple) and not hasattr(condlist, "shape"):
        return True  # a Python bool
    first = condlist[0]
    return not (isinstance(first, list) or len(getattr(first, "shape", ())) > 0) and x_ndim > 0


def iscomplex(x):
    """Elementwise: True where the imaginary part is non-zero."""
    x = _arr(x)
    if not iscomplexobj(x):
        return _cr.zeros_like(x, dtype=bool)
    return _el.imag(_el.stop_gradient(x)) != 0


def isreal(x):
    """Elementwise: True where the imaginary part is zero (every element of a real array)."""
    x = _arr(x)
    if not iscomplexobj(x):
        return _cr.ones_like(x, dtype=bool)
    return _el.imag(_el.stop_gradient(x)) == 0


def real_if_close(a, tol=100):
    """The real part if every imaginary part is within `tol` machine epsilons of 0 (tol
    > 1) or within `tol` itself (tol <= 1); `a` unchanged otherwise."""
    a = _arr(a)
    if not iscomplexobj(a):
        return a
    if tol > 1:
        tol = np.finfo(_np_dtype(_el.real(_el.stop_gradient(a)))).eps * tol
    if bool(_value(_rd.all(_el.abs(_el.imag(_el.stop_gradient(a))) < tol))):
        return _el.real(a)
    return a


def gradient(f, *varargs, axis=None, edge_order=1):
    """`np.gradient`: second-order central differences inside, first or second order
    one-sided ones at the edges; spacings are scalars or coordinate arrays (either may be
    traced: the result is differentiable in f and in the spacings)."""
    f = _arr(f)
    nd = len(f.shape)
    axes = _sh.normalize_axes("gradient", axis, nd)
    if edge_order not in (1, 2):
        raise ValueError(f"dnp.gradient: edge_order must be 1 or 2, got {edge_order!r}")
    if len(varargs) == 1 and len(axes) > 1 and len(shape(varargs[0])) == 0:
        varargs = varargs * len(axes)
    elif not varargs:
        varargs = (1.0,) * len(axes)
    if len(varargs) != len(axes):
        raise TypeError(f"dnp.gradient: {len(varargs)} spacings given for {len(axes)} axes")
    out = [_gradient_1(f, ax, h, edge_order) for ax, h in zip(axes, varargs, strict=True)]
    return out[0] if len(out) == 1 else tuple(out)


def _gradient_1(f, axis: int, h, edge_order: int):
    n = f.shape[axis]
    if n < edge_order + 1:
        raise ValueError(f"dnp.gradient: axis {axis} of length {n} is too short for "
                         f"edge_order={edge_order} (it needs at least {edge_order + 1})")
    if not is_inexact(f):
        f = _el.astype(f, "float64")

    def sl(a, b):
        return _sh._take_slice(f, axis, a, b)

    def along(v):  # a 1-D coordinate array (or spacing) set along `axis`
        return _sh.reshape(v, (-1,) + (1,) * (len(f.shape) - axis - 1))

    if len(shape(h)) == 0:  # uniform spacing
        mid = (sl(2, n) - sl(0, n - 2)) / (2.0 * h)
        if edge_order == 1:
            lo, hi = (sl(1, 2) - sl(0, 1)) / h, (sl(n - 1, n) - sl(n - 2, n - 1)) / h
        else:
            lo = (-1.5 * sl(0, 1) + 2.0 * sl(1, 2) - 0.5 * sl(2, 3)) / h
            hi = (0.5 * sl(n - 3, n - 2) - 2.0 * sl(n - 2, n - 1) + 1.5 * sl(n - 1, n)) / h
        return _sh.concatenate([lo, mid, hi], axis)
    x = asarray(h, like=f)
    if len(x.shape) != 1 or x.shape[0] != n:
        raise ValueError(f"dnp.gradient: a coordinate array must be 1-D of length {n} (the "
                         f"length of axis {axis}), got shape {tuple(x.shape)}")
    dx = x[1:] - x[:-1]
    d1, d2 = along(dx[:-1]), along(dx[1:])
    a = -d2 / (d1 * (d1 + d2))
    b = (d2 - d1) / (d1 * d2)
    c = d1 / (d2 * (d1 + d2))
    mid = a * sl(0, n - 2) + b * sl(1, n - 1) + c * sl(2, n)
    if edge_order == 1:
        lo = (sl(1, 2) - sl(0, 1)) / along(dx[:1])
        hi = (sl(n - 1, n) - sl(n - 2, n - 1)) / along(dx[-1:])
    else:
        d1, d2 = along(dx[:1]), along(dx[1:2])
        lo = (-(2.0 * d1 + d2) / (d1 * (d1 + d2)) * sl(0, 1) + (d1 + d2) / (d1 * d2) * sl(1, 2)
              - d1 / (d2 * (d1 + d2)) * sl(2, 3))
        d1, d2 = along(dx[-2:-1]), along(dx[-1:])
        hi = (d2 / (d1 * (d1 + d2)) * sl(n - 3, n - 2) - (d2 + d1) / (d1 * d2) * sl(n - 2, n - 1)
              + (2.0 * d2 + d1) / (d2 * (d1 + d2)) * sl(n - 1, n))
    return _sh.concatenate([lo, mid, hi], axis)
