"""select, piecewise, and the complex-type tests (iscomplex, isreal, real_if_close), with
NumPy's signatures.

select is nested `where`s. piecewise evaluates each function on the elements its
condition picks (a gather), as NumPy does, so a function is never applied (nor
differentiated) where it is not used: no nan from the unused branch reaches a gradient.
"""

from __future__ import annotations

import numpy as np  # finfo and result_type: static dtype bookkeeping

from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _arr, _base, asarray, iscomplexobj

__all__ = ["select", "piecewise", "iscomplex", "isreal", "real_if_close"]


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
        mask = _base(_el.stop_gradient(cond))
        if not bool(_base(_rd.any(mask))):
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
    if bool(_base(_rd.all(_el.abs(_el.imag(_el.stop_gradient(a))) < tol))):
        return _el.real(a)
    return a
