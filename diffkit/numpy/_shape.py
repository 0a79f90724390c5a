"""Shape manipulation with NumPy's signatures.

Everything here is a primitive of `diffkit.primitives.shape` or a composition of them (and
of indexing), so every function is differentiable to any order. Arguments are checked and
normalised here (axes made non-negative, -1 in shapes resolved) so that primitives receive
plain Python parameters.
"""

from __future__ import annotations

import math
import operator

import numpy as np  # static bookkeeping on shapes and index arrays only

from diffkit.core.tracer import Tracer
from diffkit.errors import DiffkitError
from diffkit.numpy import _elementwise as _el
from diffkit.numpy._core import _arr, asarray, concrete
from diffkit.numpy._core import shape as _shape_of
from diffkit.primitives import indexing as _indexing_p
from diffkit.primitives import shape as P

__all__ = [
    "AxisError", "reshape", "ravel", "transpose", "moveaxis", "swapaxes", "squeeze",
    "expand_dims", "broadcast_to", "broadcast_arrays", "broadcast_shapes", "atleast_1d",
    "atleast_2d", "atleast_3d", "concatenate", "stack", "hstack", "vstack", "dstack",
    "column_stack", "split", "array_split", "flip", "fliplr", "flipud", "roll", "rot90",
    "tile", "repeat", "diff", "tril", "triu", "copy", "meshgrid", "block", "append",
    "hsplit", "vsplit", "dsplit", "row_stack", "rollaxis",
]


class AxisError(DiffkitError, ValueError, IndexError):
    """An axis argument is out of range for the array (NumPy raises ValueError/IndexError)."""


def normalize_axis(fn: str, axis, ndim: int) -> int:
    """`axis` as a non-negative int, or an AxisError naming the function and the axis."""
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"dnp.{fn}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise AxisError(
            f"dnp.{fn}: axis {axis} is out of bounds for an array of dimension {ndim} "
            f"(valid axes: {-ndim}..{ndim - 1})"
        )
    return axis % ndim


def normalize_axes(fn: str, axis, ndim: int) -> tuple:
    """A tuple of distinct non-negative axes from an int or a sequence (None: all)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) or hasattr(axis, "__index__") else tuple(axis)
    out = tuple(normalize_axis(fn, a, ndim) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"dnp.{fn}: repeated axis in {axis!r}")
    return out


def _arrs(arrays, fn: str) -> list:
    """The operands of a joining function, non-arrays converted on the first array's
    backend (so `stack([x, 1.0])` works for a torch tracer x)."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError(f"dnp.{fn}: need at least one array")
    like = next((a for a in arrays if isinstance(a, Tracer) or hasattr(a, "shape")), None)
    return [a if isinstance(a, Tracer) or hasattr(a, "shape") else asarray(a, like=like)
            for a in arrays]


# -- reshaping ------------------------------------------------------------------------------
def _resolve_shape(shape, size: int) -> tuple:
    shape = (shape,) if isinstance(shape, int) or hasattr(shape, "__index__") else shape
    shape = tuple(operator.index(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    known = math.prod(s for s in shape if s != -1)
    if len(unknown) > 1:
        raise ValueError(f"dnp.reshape: can only specify one unknown dimension (-1), got {shape}")
    if unknown and known and size % known == 0:
        shape = shape[: unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    if math.prod(shape) != size or any(s < 0 for s in shape):
        raise ValueError(f"dnp.reshape: cannot reshape an array of size {size} into shape {shape}")
    return shape


def reshape(a, shape=None, order="C", *, newshape=None):
    if type(shape) is tuple and newshape is None and hasattr(a, "shape"):
        size = math.prod(a.shape)
        if all(type(s) is int and s >= 0 for s in shape) and math.prod(shape) == size:
            # the common case: an explicit shape, nothing to resolve
            return a if shape == tuple(a.shape) else P.reshape.bind(a, shape=shape, order=order)
    a = _arr(a)
    shape = _resolve_shape(newshape if shape is None else shape, math.prod(a.shape))
    if shape == tuple(a.shape):
        return a
    return P.reshape.bind(a, shape=shape, order=order)


def ravel(a, order="C"):
    return reshape(a, (-1,), order=order)


def transpose(a, axes=None):
    a = _arr(a)
    nd = len(a.shape)
    axes = tuple(reversed(range(nd))) if axes is None else tuple(
        normalize_axis("transpose", ax, nd) for ax in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"dnp.transpose: axes {axes} are not a permutation of 0..{nd - 1}")
    if axes == tuple(range(nd)):
        return a
    return P.transpose.bind(a, axes=axes)


def moveaxis(a, source, destination):
    a = _arr(a)
    nd = len(a.shape)
    source = normalize_axes("moveaxis", source, nd)
    destination = normalize_axes("moveaxis", destination, nd)
    if len(source) != len(destination):
        raise ValueError("dnp.moveaxis: source and destination must have the same length")
    order = [n for n in range(nd) if n not in source]
    for dest, src in sorted(zip(destination, source, strict=True)):
        order.insert(dest, src)
    return transpose(a, order)


def rollaxis(a, axis, start=0):
    """`np.rollaxis`: move `axis` to sit before position `start` (prefer moveaxis)."""
    a = _arr(a)
    nd = len(a.shape)
    axis = normalize_axis("rollaxis", axis, nd)
    start = operator.index(start)
    if not -nd <= start <= nd:
        raise AxisError(f"dnp.rollaxis: start {start} is out of bounds for an array of "
                        f"dimension {nd} (valid: {-nd}..{nd})")
    start %= nd + 1
    if axis < start:
        start -= 1
    if axis == start:
        return a
    order = [n for n in range(nd) if n != axis]
    order.insert(start, axis)
    return transpose(a, order)


def swapaxes(a, axis1, axis2):
    a = _arr(a)
    nd = len(a.shape)
    perm = list(range(nd))
    i, j = normalize_axis("swapaxes", axis1, nd), normalize_axis("swapaxes", axis2, nd)
    perm[i], perm[j] = j, i
    return transpose(a, perm)


def squeeze(a, axis=None):
    a = _arr(a)
    shape = tuple(a.shape)
    if axis is None:
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
    else:
        axes = normalize_axes("squeeze", axis, len(shape))
        bad = [ax for ax in axes if shape[ax] != 1]
        if bad:
            raise ValueError(f"dnp.squeeze: cannot squeeze axis {bad[0]} of shape {shape}: "
                             f"its size is not one")
    return reshape(a, tuple(n for i, n in enumerate(shape) if i not in axes))


def expand_dims(a, axis):
    a = _arr(a)
    axis = (axis,) if isinstance(axis, int) or hasattr(axis, "__index__") else tuple(axis)
    axes = normalize_axes("expand_dims", axis, len(a.shape) + len(axis))
    return P.expand_dims.bind(a, axis=axes)


def broadcast_shapes(*shapes) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"dnp.broadcast_shapes: shapes {shapes} cannot be broadcast "
                         f"together") from None


def broadcast_to(array, shape):
    array = _arr(array)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if tuple(array.shape) == shape:
        return array
    try:
        ok = np.broadcast_shapes(tuple(array.shape), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"dnp.broadcast_to: cannot broadcast shape {tuple(array.shape)} "
                         f"to {shape}")
    return P.broadcast_to.bind(array, shape=shape)


def broadcast_arrays(*args):
    args = _arrs(args, "broadcast_arrays")
    shape = broadcast_shapes(*(tuple(a.shape) for a in args))
    return tuple(broadcast_to(a, shape) for a in args)


def _atleast(n: int, arys):
    out = []
    for a in arys:
        a = _arr(a)
        s = tuple(a.shape)
        if len(s) < n:
            if n == 3 and len(s) == 2:
                s = s + (1,)
            elif n == 3 and len(s) == 1:
                s = (1,) + s + (1,)
            else:
                s = (1,) * (n - len(s)) + s
            a = reshape(a, s)
        out.append(a)
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arys):
    return _atleast(1, arys)


def atleast_2d(*arys):
    return _atleast(2, arys)


def atleast_3d(*arys):
    return _atleast(3, arys)


# -- joining and splitting ------------------------------------------------------------------
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    if out is not None:
        raise TypeError("dnp.concatenate does not support out=: diffkit arrays are immutable")
    arrays = _arrs(arrays, "concatenate")
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    nd = len(arrays[0].shape)
    if nd == 0:
        raise ValueError("dnp.concatenate: zero-dimensional arrays cannot be concatenated")
    axis = normalize_axis("concatenate", axis, nd)
    first = tuple(arrays[0].shape)
    for a in arrays[1:]:
        s = tuple(a.shape)
        if len(s) != nd or s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise ValueError(f"dnp.concatenate: shapes {first} and {s} differ outside "
                             f"axis {axis}")
    res = arrays[0] if len(arrays) == 1 else P.concatenate.bind(*arrays, axis=axis)
    if dtype is not None:
        res = _el.astype(res, dtype)
    return res


def stack(arrays, axis=0, out=None, dtype=None):
    arrays = _arrs(arrays, "stack")
    shape = tuple(arrays[0].shape)
    if any(tuple(a.shape) != shape for a in arrays):
        raise ValueError(f"dnp.stack: all input arrays must have the same shape, got "
                         f"{[tuple(a.shape) for a in arrays]}")
    axis = normalize_axis("stack", axis, len(shape) + 1)
    new = shape[:axis] + (1,) + shape[axis:]
    return concatenate([reshape(a, new) for a in arrays], axis, out=out, dtype=dtype)


def hstack(tup, dtype=None):
    arrs = [atleast_1d(a) for a in _arrs(tup, "hstack")]
    return concatenate(arrs, 0 if len(arrs[0].shape) == 1 else 1, dtype=dtype)


def vstack(tup, dtype=None):
    return concatenate([atleast_2d(a) for a in _arrs(tup, "vstack")], 0, dtype=dtype)


def dstack(tup):
    return concatenate([atleast_3d(a) for a in _arrs(tup, "dstack")], 2)


row_stack = vstack  # NumPy 2 keeps it as a deprecated alias of vstack


def column_stack(tup):
    arrs = [reshape(a, (-1, 1)) if len(a.shape) < 2 else a for a in _arrs(tup, "column_stack")]
    return concatenate(arrs, 1)


def _gather(a, axis: int, index):
    """`a[:, ..., index]` with `index` (a slice or an integer array) at `axis`: what
    `dnp.take` binds (the indexing module sits above this one)."""
    return _indexing_p.getitem.bind(a, idx=(slice(None),) * axis + (index,))


def _take_slice(a, axis: int, start: int, stop: int):
    return _gather(a, axis, slice(start, stop))


def array_split(ary, indices_or_sections, axis=0):
    ary = _arr(ary)
    axis = normalize_axis("array_split", axis, len(ary.shape))
    n = ary.shape[axis]
    if isinstance(indices_or_sections, int) or hasattr(indices_or_sections, "__index__"):
        sections = operator.index(indices_or_sections)
        if sections <= 0:
            raise ValueError("dnp.array_split: number of sections must be larger than 0")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        points = [0] + list(np.cumsum(sizes).tolist())
    else:
        points = [0] + [operator.index(i) for i in indices_or_sections] + [n]
    return [_take_slice(ary, axis, a, b) for a, b in zip(points[:-1], points[1:], strict=True)]


def split(ary, indices_or_sections, axis=0):
    ary = _arr(ary)
    if isinstance(indices_or_sections, int) or hasattr(indices_or_sections, "__index__"):
        n = ary.shape[normalize_axis("split", axis, len(ary.shape))]
        if n % operator.index(indices_or_sections):
            raise ValueError(f"dnp.split: an axis of length {n} does not split into "
                             f"{indices_or_sections} equal sections; use dnp.array_split")
    return array_split(ary, indices_or_sections, axis)


def _split_along(fn: str, ary, indices_or_sections, axis: int, min_nd: int):
    ary = _arr(ary)
    if len(ary.shape) < min_nd:
        raise ValueError(f"dnp.{fn} only works on arrays of {min_nd} or more dimensions, "
                         f"got shape {tuple(ary.shape)}")
    return split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    """Split along axis 1 (axis 0 for 1-D arrays), as `np.hsplit`."""
    ary = _arr(ary)
    axis = 1 if len(ary.shape) > 1 else 0
    return _split_along("hsplit", ary, indices_or_sections, axis, 1)


def vsplit(ary, indices_or_sections):
    return _split_along("vsplit", ary, indices_or_sections, 0, 2)


def dsplit(ary, indices_or_sections):
    return _split_along("dsplit", ary, indices_or_sections, 2, 3)


def append(arr, values, axis=None):
    """`np.append`: with axis None both are flattened first."""
    arr, values = _arrs([arr, values], "append")
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


# -- rearranging ----------------------------------------------------------------------------
def flip(m, axis=None):
    m = _arr(m)
    axes = normalize_axes("flip", axis, len(m.shape))
    return P.flip.bind(m, axis=axes) if axes else m


def fliplr(m):
    m = _arr(m)
    if len(m.shape) < 2:
        raise ValueError("dnp.fliplr: the input must have at least 2 dimensions")
    return flip(m, 1)


def flipud(m):
    m = _arr(m)
    if len(m.shape) < 1:
        raise ValueError("dnp.flipud: the input must have at least 1 dimension")
    return flip(m, 0)


def roll(a, shift, axis=None):
    a = _arr(a)
    if axis is None:
        if len(a.shape) == 1 and isinstance(shift, int):  # the common 1-D case: one primitive
            return P.roll.bind(a, shift=(shift,), axis=(0,))
        return reshape(roll(ravel(a), shift, 0), tuple(a.shape))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = _counts(shift, "dnp.roll", "shift")
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    elif len(axes) == 1:
        axes = axes * len(shifts)
    if len(shifts) != len(axes):
        raise ValueError("dnp.roll: shift and axis must have the same length")
    axes = tuple(normalize_axis("roll", ax, len(a.shape)) for ax in axes)
    return P.roll.bind(a, shift=tuple(operator.index(s) for s in shifts), axis=axes)


def _counts(v, fn: str, arg: str) -> tuple:
    """An integer or a sequence of them (Python, NumPy or 0-d/1-d arrays, traced ones
    included) as a tuple of ints; a traced float is refused naming `fn` and `arg`."""
    v = concrete(v, fn, arg, "it counts positions or copies (an integer)")
    if not isinstance(v, list | tuple) and getattr(v, "ndim", 0) == 0:
        return (operator.index(v),)
    return tuple(operator.index(e) for e in v)


def rot90(m, k=1, axes=(0, 1)):
    m = _arr(m)
    nd = len(m.shape)
    if len(axes) != 2:
        raise ValueError("dnp.rot90: len(axes) must be 2")
    a0, a1 = (normalize_axis("rot90", ax, nd) for ax in axes)
    if a0 == a1:
        raise ValueError("dnp.rot90: axes must be different")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(m, (a0, a1))
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return transpose(flip(m, a1), perm) if k == 1 else flip(transpose(m, perm), a1)


def tile(A, reps):
    """Like `np.tile`, as a broadcast: (1, a0, 1, a1, ...) -> (r0, a0, r1, a1, ...)."""
    A = _arr(A)
    reps = _counts(reps, "dnp.tile", "reps")
    d = max(len(reps), len(A.shape))
    shape = (1,) * (d - len(A.shape)) + tuple(A.shape)
    reps = (1,) * (d - len(reps)) + reps
    inter = tuple(x for s in shape for x in (1, s))
    target = tuple(x for r, s in zip(reps, shape, strict=True) for x in (r, s))
    out = broadcast_to(reshape(A, inter), target)
    return reshape(out, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a, repeats, axis=None):
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axis("repeat", axis, len(a.shape))
    n = a.shape[axis]
    repeats = concrete(repeats, "dnp.repeat", "repeats", "it counts copies (an integer)")
    if isinstance(repeats, int) or getattr(repeats, "shape", None) == ():
        r = int(repeats)
        shape = tuple(a.shape)
        out = broadcast_to(expand_dims(a, axis + 1), shape[: axis + 1] + (r,) + shape[axis + 1:])
        return reshape(out, shape[:axis] + (n * r,) + shape[axis + 1:])
    return _gather(a, axis, np.repeat(np.arange(n), np.asarray(repeats)))



def diff(a, n=1, axis=-1, prepend=None, append=None):
    a = _arr(a)
    axis = normalize_axis("diff", axis, len(a.shape))
    parts = [a]
    if prepend is not None:
        parts.insert(0, _diff_edge(prepend, a, axis))
    if append is not None:
        parts.append(_diff_edge(append, a, axis))
    a = concatenate(parts, axis)
    for _ in range(n):
        m = a.shape[axis]
        a = _take_slice(a, axis, 1, m) - _take_slice(a, axis, 0, m - 1)
    return a


def _diff_edge(v, a, axis):
    """A prepend/append value; a scalar becomes a slab of length one along `axis`."""
    v = _arrs([a, v], "diff")[1]
    if len(v.shape) == 0:
        shape = list(a.shape)
        shape[axis] = 1
        v = broadcast_to(v, tuple(shape))
    return v


def tril(m, k=0):
    m = _arr(m)
    if len(m.shape) < 2:
        m = broadcast_to(m, (m.shape[-1],) * 2)
    return P.tril.bind(m, k=operator.index(k))


def triu(m, k=0):
    m = _arr(m)
    if len(m.shape) < 2:
        m = broadcast_to(m, (m.shape[-1],) * 2)
    return P.triu.bind(m, k=operator.index(k))


def copy(a, order="K"):
    return P.copy.bind(_arr(a))


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError(f"dnp.meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    nd = len(xi)
    out = [reshape(x, (1,) * i + (-1,) + (1,) * (nd - i - 1)) for i, x in enumerate(xi)]
    if indexing == "xy" and nd > 1:
        out[0] = reshape(out[0], (1, -1) + (1,) * (nd - 2))
        out[1] = reshape(out[1], (-1, 1) + (1,) * (nd - 2))
    return tuple(out) if sparse else broadcast_arrays(*out)


def block(arrays):
    """Like `np.block`: the innermost lists join along the last axis, the next outer along
    the second last, and so on; arrays are first promoted to a common number of axes."""
    def depth(x, where):
        if isinstance(x, tuple):
            raise TypeError(f"dnp.block: {where} is a tuple; only lists may be nested")
        if not isinstance(x, list):
            return 0, len(_shape_of(x))
        if not x:
            raise ValueError(f"dnp.block: {where} is an empty list")
        found = [depth(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if len({d for d, _ in found}) != 1:
            raise ValueError(f"dnp.block: list depths are mismatched inside {where}")
        return found[0][0] + 1, max(nd for _, nd in found)

    total, max_nd = depth(arrays, "arrays")
    result_nd = max(total, max_nd)

    def join(x, level):
        if level == total:
            x = _arr(x)
            return reshape(x, (1,) * (result_nd - len(x.shape)) + tuple(x.shape))
        return concatenate([join(v, level + 1) for v in x], axis=-(total - level))

    return join(arrays, 0)
