"""`pad` with every NumPy mode but callables: constant, edge, reflect, symmetric, wrap
and empty come from `_indexing.pad` (gathers); maximum, minimum, mean, median and
linear_ramp are built here, axis by axis as NumPy pads, from differentiable reductions
and `linspace`, so the padding carries the derivative of the values it is made from
(and of traced `end_values`)."""

from __future__ import annotations

import numpy as np  # static pad widths

from diffkit.core.dispatch import is_inexact
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _arr, _has_tracer, asarray

__all__ = ["pad"]

_STATS = {"maximum": _rd.max, "minimum": _rd.min, "mean": _rd.mean, "median": _rd.median}


def pad(array, pad_width, mode="constant", **kwargs):
    """Like `np.pad` (callable modes aside)."""
    if mode not in _STATS and mode != "linear_ramp":
        return _ix.pad(array, pad_width, mode, **kwargs)
    array = _arr(array)
    nd = len(array.shape)
    widths = _pairs(pad_width, nd, "pad_width")
    if mode == "linear_ramp":
        ends = _end_values(kwargs.pop("end_values", 0), nd, array)
    else:
        lengths = kwargs.pop("stat_length", None)
        lengths = None if lengths is None else _pairs(lengths, nd, "stat_length")
    if kwargs:
        raise TypeError(f"dnp.pad: unsupported keyword(s) {sorted(kwargs)} for mode {mode!r}")
    out = array
    for ax, (before, after) in enumerate(widths.tolist()):
        if before == after == 0:
            continue
        n = out.shape[ax]
        if n == 0:
            raise ValueError(f"dnp.pad: can't extend empty axis {ax} using modes other than "
                             f"'constant' or 'empty'")
        parts = [out]
        for side, width in ((0, before), (1, after)):
            if width == 0:
                continue
            if mode == "linear_ramp":
                piece = _ramp(out, ax, side, width, ends[ax][side])
            else:
                stat_len = n if lengths is None else min(int(lengths[ax, side]), n)
                piece = _stat(out, ax, side, width, stat_len, mode)
            parts.insert(0 if side == 0 else len(parts), piece)
        out = _sh.concatenate(parts, ax)
    return out


def _pairs(v, nd: int, name: str):
    pairs = np.broadcast_to(np.asarray(v, dtype=int), (nd, 2))
    if (pairs < 0).any():
        raise ValueError(f"dnp.pad: {name} must be non-negative, got {v!r}")
    return pairs


def _end_values(v, nd: int, like):
    if _has_tracer([v]):
        e = _sh.broadcast_to(asarray(v, like=like), (nd, 2))
        return [[e[i, 0], e[i, 1]] for i in range(nd)]
    return np.broadcast_to(np.asarray(v), (nd, 2)).tolist()


def _stat(x, ax: int, side: int, width: int, length: int, mode: str):
    if length == 0:
        raise ValueError("dnp.pad: stat_length of 0 yields no value for padding")
    n = x.shape[ax]
    region = _sh._take_slice(x, ax, 0, length) if side == 0 else \
        _sh._take_slice(x, ax, n - length, n)
    v = _STATS[mode](region, axis=ax, keepdims=True)
    if not is_inexact(x) and mode in ("mean", "median"):
        v = _el.astype(_el.round(v), x.dtype)  # NumPy rounds to the integer dtype
    shape = list(x.shape)
    shape[ax] = width
    return _sh.broadcast_to(v, tuple(shape))


def _ramp(x, ax: int, side: int, width: int, end):
    n = x.shape[ax]
    edge = _sh.squeeze(_sh._take_slice(x, ax, 0, 1) if side == 0 else
                       _sh._take_slice(x, ax, n - 1, n), ax)
    if not hasattr(end, "shape") and not _has_tracer([end]):
        end = _cr.full_like(edge, end)
    ramp = _cr.linspace(end, edge, width, endpoint=False, axis=ax)
    ramp = _el.astype(ramp, x.dtype)
    return _sh.flip(ramp, ax) if side == 1 else ramp
