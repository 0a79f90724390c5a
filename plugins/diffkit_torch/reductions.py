"""Torch kernels of the reductions (`axis` -> `dim`, `keepdims` -> `keepdim`).

torch reads `dim=()` as "every axis" where NumPy reduces over nothing, and several torch
reductions take one dim only: `_over` moves the reduced axes last and flattens them into
one, so every reduction accepts NumPy's None / int / tuple axes.
"""

from __future__ import annotations

import torch

# NumPy sums and multiplies small integers and booleans in int64, as torch does.
_SMALL_INT = frozenset({torch.bool, torch.int8, torch.int16, torch.int32, torch.uint8})


def _axes(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes) if ndim else ()


def _over(f, x, axis, keepdims, **kw):
    """`f(y, dim=-1, keepdim=False, **kw)` with the axes of `x` in `axis` merged into the
    last one of `y`; the result reshaped as NumPy's reduction over `axis`."""
    axes = _axes(axis, x.ndim)
    rest = [d for d in range(x.ndim) if d not in axes]
    y = x.permute((*rest, *axes)).reshape(*[x.shape[d] for d in rest], -1)
    out = f(y, dim=-1, **kw)
    if keepdims:
        out = out.reshape(*[1 if d in axes else x.shape[d] for d in range(x.ndim)])
    return out


def _sum(x, axis=None, keepdims=False):
    if axis == ():
        return x.to(torch.int64) if x.dtype in _SMALL_INT else x.clone()
    return torch.sum(x, dim=axis, keepdim=keepdims)


def _prod(x, axis=None, keepdims=False):
    if x.dtype in _SMALL_INT:
        x = x.to(torch.int64)
    return _over(torch.prod, x, axis, keepdims)


def _extreme(f):
    return lambda x, axis=None, keepdims=False: x.clone() if axis == () else f(
        x, dim=_axes(axis, x.ndim), keepdim=keepdims)


def _arg(f):
    def kernel(x, axis=None, keepdims=False):
        if axis is None:
            out = f(x.reshape(-1), dim=0)
            return out.reshape((1,) * x.ndim) if keepdims else out
        return f(x, dim=axis, keepdim=keepdims)

    return kernel


def _logical(f):
    def kernel(x, axis=None, keepdims=False):
        if x.dtype != torch.bool:
            x = x != 0
        return x.clone() if axis == () else _over(f, x, axis, keepdims)

    return kernel


def _cumsum(x, axis, reverse=False):
    if reverse:
        return torch.flip(torch.cumsum(torch.flip(x, (axis,)), dim=axis), (axis,))
    return torch.cumsum(x, dim=axis)


def _cumprod(x, axis, reverse=False, exclusive=False):
    """Running product; `exclusive` leaves out the element itself (starts from 1)."""
    if x.dtype in _SMALL_INT:
        x = x.to(torch.int64)
    y = torch.movedim(x, axis, -1)
    if reverse:
        y = torch.flip(y, (-1,))
    if exclusive:
        out = torch.cat([torch.ones_like(y[..., :1]), torch.cumprod(y[..., :-1], dim=-1)], -1)
    else:
        out = torch.cumprod(y, dim=-1)
    if reverse:
        out = torch.flip(out, (-1,))
    return torch.movedim(out, -1, axis).contiguous()


def _std(x, axis=None, ddof=0, keepdims=False):
    if not (x.is_floating_point() or x.is_complex()):
        x = x.to(torch.float64)  # NumPy's std of integers is float64
    return torch.std(x, dim=axis, correction=ddof, keepdim=keepdims)


def _quantile(x, q, axis=None, keepdims=False, method="linear"):
    """One quantile `q` (a float: dnp.quantile binds one primitive per q)."""
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return _over(torch.quantile, x, axis, keepdims, q=float(q), interpolation=method)


def _searchsorted(a, v, side="left"):
    if a.dtype != v.dtype:
        dt = torch.promote_types(a.dtype, v.dtype)
        a, v = a.to(dt), v.to(dt)
    return torch.searchsorted(a, v.contiguous(), side=side)


def _argpartition(x, kth, axis=-1):
    """A sort: one valid partition. NumPy leaves the order on each side of kth open, and
    its introselect orders them otherwise (the k-th values themselves agree)."""
    return torch.argsort(x, dim=axis, stable=True)


def _unique(x, axis=None):
    """NumPy's (index, inverse, counts); torch.unique gives no first-occurrence index, so
    it is the smallest position of each value (a scatter of the positions' minimum)."""
    y = x.reshape(-1) if axis is None else x
    _, inverse, counts = torch.unique(y, sorted=True, return_inverse=True,
                                      return_counts=True, dim=axis)
    n = y.shape[0 if axis is None else axis]
    pos = torch.arange(n, device=x.device)
    index = torch.full((counts.shape[0],), n, dtype=pos.dtype, device=x.device)
    index = index.scatter_reduce(0, inverse, pos, reduce="amin")
    return index, inverse.reshape(x.shape) if axis is None else inverse, counts


KERNELS = {
    "sum": _sum,
    "prod": _prod,
    "max": _extreme(torch.amax),
    "min": _extreme(torch.amin),
    "argmax": _arg(torch.argmax),
    "argmin": _arg(torch.argmin),
    "all": _logical(torch.all),
    "any": _logical(torch.any),
    "cumsum": _cumsum,
    "cumprod": _cumprod,
    "std": _std,
    "quantile": _quantile,
    "searchsorted": _searchsorted,
    "argpartition": _argpartition,
    "unique": _unique,
}
