"""NumPy kernels of the indexing primitives: a gather and functional scatter updates."""

import operator

import numpy as np

from diffkit.primitives.indexing import filled


def _ufunc_index(idx):
    """`ufunc.at` takes integer arrays, not boolean masks: a k-d mask is its k `nonzero`
    arrays (NumPy's own definition of mask indexing)."""
    out = []
    for i in idx:
        if isinstance(i, np.ndarray) and i.dtype == np.bool_:
            out.extend(np.nonzero(i))
        else:
            out.append(i)
    return tuple(out)


def _has_int_array(idx):
    return any(isinstance(i, np.ndarray) and i.dtype != np.bool_ for i in idx)


def _update(ufunc):
    def kernel(x, v, idx):
        out = np.array(x, copy=True)
        v = np.asarray(v).astype(out.dtype, copy=False)
        if _has_int_array(idx):  # repeated indices must all apply
            ufunc.at(out, _ufunc_index(idx), v)
        else:
            out[idx] = ufunc(out[idx], v)
        return out

    return kernel


def _set(x, v, idx):
    out = np.array(x, copy=True)
    out[idx] = np.asarray(v).astype(out.dtype, copy=False)
    return out


def _filled(idx, i, shape):
    """`idx` with its slot holding `i`: a 0-d `i` as the Python int the eager path indexes
    with (NumPy raises IndexError out of range, never clamps), a Window as its slice."""
    return filled(idx, i, shape, _operand)


def _operand(i):
    return operator.index(i) if np.ndim(i) == 0 else i


def _scatter(v, i, idx, shape):
    """Zeros of `shape` with `v` added at idx: a fresh np.zeros is untouched pages until
    written, so only the written part costs (not a copy of the whole)."""
    out = np.zeros(shape, dtype=np.result_type(v))
    idx = _filled(idx, i, shape)
    if _has_int_array(idx):  # repeated indices must all apply
        np.add.at(out, _ufunc_index(idx), v)
    else:
        out[idx] = v
    return out


_add = _update(np.add)

KERNELS = {
    "getitem": lambda x, idx: np.asarray(x)[idx],
    "index_add": _add,
    "dynamic_getitem": lambda x, i, idx, shape: np.asarray(x)[_filled(idx, i, shape)],
    "dynamic_scatter": _scatter,
    "dynamic_index_set": lambda x, v, i, idx: _set(x, v, _filled(idx, i, np.shape(x))),
    "dynamic_index_add": lambda x, v, i, idx: _add(x, v, _filled(idx, i, np.shape(x))),
    "index_set": _set,
    "index_mul": _update(np.multiply),
    "index_min": _update(np.minimum),
    "index_max": _update(np.maximum),
    "argsort": lambda x, axis=-1: np.argsort(x, axis=axis, kind="stable"),
    "nonzero": lambda x: np.nonzero(x),
    "argwhere": lambda x: np.argwhere(x),
    "flatnonzero": lambda x: np.flatnonzero(x),
}
