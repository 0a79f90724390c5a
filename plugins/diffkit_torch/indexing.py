"""Torch kernels of the indexing primitives: a gather and functional scatter updates.

`idx` entries are int | slice | None | Ellipsis | integer array | boolean array, the arrays
NumPy arrays or tensors. `_index` makes them tensors on x's device (so a CUDA gather never
reads a host array) and rewrites negative-step slices, which torch lacks, as a flip of x
plus a positive slice. Updates with integer arrays, where an index may repeat, scatter
through flat positions so every repeat applies (NumPy's `ufunc.at`).
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from diffkit.primitives.indexing import filled


def _axes_taken(i) -> int:
    if i is None:
        return 0
    if isinstance(i, torch.Tensor | np.ndarray) and i.dtype in (torch.bool, np.bool_):
        return i.ndim
    return 1


def _index(x, idx: tuple):
    """(x', idx') with array entries as tensors on x's device and every slice step > 0;
    `x'[idx']` equals NumPy's `x[idx]`."""
    device = x.device
    n_ellipsis = x.ndim - sum(_axes_taken(i) for i in idx if i is not Ellipsis)
    out, axis = [], 0
    for i in idx:
        if isinstance(i, np.ndarray):
            i = torch.as_tensor(i, device=device)
        elif isinstance(i, torch.Tensor) and i.device != device:
            i = i.to(device)
        elif isinstance(i, slice) and i.step is not None and i.step < 0:
            n = x.shape[axis]
            r = range(n)[i]
            if len(r) == 0:
                i = slice(0, 0)
            else:
                x = torch.flip(x, (axis,))
                start = n - 1 - r.start
                i = slice(start, start + len(r) * -r.step, -r.step)
        out.append(i)
        axis += n_ellipsis if i is Ellipsis else _axes_taken(i)
    return x, tuple(out)


def _numpy_order(idx: tuple) -> tuple:
    """NumPy counts an int next to an index array as an advanced index (a 0-d array): with a
    slice between them the indexed axes go first (`z[1, :, [0, 2]]` is (2, 3)); torch counts
    it as a basic index (giving (3, 2)). Ints become tensors of the arrays' broadcast shape,
    and masks their `nonzero` arrays, so torch places the axes as NumPy does."""
    if not (_has_int_array(idx) and any(isinstance(i, int) for i in idx)):
        return idx
    flat = []
    for i in idx:
        if isinstance(i, torch.Tensor) and i.dtype == torch.bool:
            flat.extend(torch.nonzero(i, as_tuple=True))
        else:
            flat.append(i)
    arrays = [i for i in flat if isinstance(i, torch.Tensor)]
    shape = torch.broadcast_shapes(*(a.shape for a in arrays))
    device = arrays[0].device
    return tuple(torch.full(shape, i, dtype=torch.int64, device=device)
                 if isinstance(i, int) and not isinstance(i, bool) else i for i in flat)


def _has_int_array(idx) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype != torch.bool for i in idx)


def getitem(x, idx):
    x, idx = _index(x, idx)
    return x[_numpy_order(idx)]


def _positions(x, idx):
    """Flat positions in x of the elements of x[idx] (shaped like x[idx])."""
    return getitem(torch.arange(x.numel(), device=x.device).reshape(x.shape), idx)


def _value(v, x):
    if isinstance(v, torch.Tensor):
        return v.to(x.dtype)
    return torch.as_tensor(v, dtype=x.dtype, device=x.device)


def _update(op, reduce):
    """A functional `x.at[idx].<op>(v)`: `op(old, v)` where no index repeats, else a flat
    scatter with `reduce` ("sum", "prod", "amin", "amax") that applies every repeat."""

    def kernel(x, v, idx):
        v = _value(v, x)
        _, plain = _index(x, idx)
        if _has_int_array(plain) or _flipped(idx):
            pos = _positions(x, idx)
            vals = torch.broadcast_to(v, pos.shape).reshape(-1)
            flat = x.reshape(-1).clone()
            if reduce == "sum":
                return flat.index_add_(0, pos.reshape(-1), vals).reshape(x.shape)
            return flat.scatter_reduce_(0, pos.reshape(-1), vals, reduce).reshape(x.shape)
        out = x.clone()
        out[plain] = op(out[plain], v)  # (no index array: ints are basic in both)
        return out

    return kernel


def _flipped(idx) -> bool:
    return any(isinstance(i, slice) and i.step is not None and i.step < 0 for i in idx)


def _set(x, v, idx):
    """With repeated indices the last write wins, as in NumPy, on every device: each write
    to a position carries the value of the last write there (torch's own order is
    unspecified on CUDA), found without a host sync."""
    v = _value(v, x)
    _, plain = _index(x, idx)
    if _has_int_array(plain) or _flipped(idx):
        where = _positions(x, idx)
        pos = where.reshape(-1)
        vals = torch.broadcast_to(v, where.shape).reshape(-1)
        order = torch.arange(len(pos), device=pos.device)
        last = torch.zeros(x.numel(), dtype=order.dtype, device=pos.device)
        last.scatter_reduce_(0, pos, order, "amax", include_self=False)
        flat = x.reshape(-1).clone()
        flat[pos] = vals[last[pos]]
        return flat.reshape(x.shape)
    out = x.clone()
    out[plain] = v
    return out


def _argsort(x, axis=-1):
    if axis is None:
        return torch.argsort(x.reshape(-1), stable=True)
    return torch.argsort(x, dim=axis, stable=True)


def _filled(idx, i, shape):
    """`idx` with its slot holding `i`: a 0-d `i` as the Python int the eager path indexes
    with (a host sync on CUDA; out of range raises IndexError, never clamps), a Window as
    its slice."""
    return filled(idx, i, tuple(shape), _operand)


def _operand(i):
    if getattr(i, "ndim", 0) != 0:
        return i
    return operator.index(i.item() if isinstance(i, torch.Tensor) else i)


def _scatter(v, i, idx, shape):
    """Zeros of `shape` with `v` added at idx (written in place: no copy of the whole)."""
    out = torch.zeros(shape, dtype=v.dtype, device=v.device)
    idx = _filled(idx, i, shape)
    _, plain = _index(out, idx)
    if _has_int_array(plain) or _flipped(idx):  # repeats and flips: the flat scatter
        return _add(out, v, idx)
    out[plain] = v
    return out


_add = _update(torch.add, "sum")

KERNELS = {
    "getitem": getitem,
    "index_add": _add,
    "dynamic_getitem": lambda x, i, idx, shape: getitem(x, _filled(idx, i, shape)),
    "dynamic_scatter": _scatter,
    "dynamic_index_set": lambda x, v, i, idx: _set(x, v, _filled(idx, i, x.shape)),
    "dynamic_index_add": lambda x, v, i, idx: _add(x, v, _filled(idx, i, x.shape)),
    "index_set": _set,
    "index_mul": _update(torch.mul, "prod"),
    "index_min": _update(torch.minimum, "amin"),
    "index_max": _update(torch.maximum, "amax"),
    "argsort": _argsort,
    "nonzero": lambda x: torch.nonzero(x, as_tuple=True),
    "argwhere": torch.argwhere,
    "flatnonzero": lambda x: torch.nonzero(x.reshape(-1)).reshape(-1),
}
