"""Indexing with NumPy's rules, JAX's functional updates (`x.at[idx].set(v)`), and the
functions that gather or produce indices (take, take_along_axis, sort, nonzero, diagonal,
pad), and `cross` (products of components picked by index).

Indices carry no derivative: traced integer indices are unwrapped to their value, so Python
control flow on them works. Under a program being traced (a compiled loop step), an integer
index computed from traced values (`obs[i]`, `obs[n - 1 - i]`, `dnp.take(f, i % m)`,
`u[dnp.argsort(u)]`) is an operand of `dynamic_getitem` instead: one equation serves every
value, where a Python int would need one program per value. So is the start of a slice whose
length is the same at every value (`obs[i:i + 3]`, `obs[i - 1:i + 2]`: a `Window`), guarded
to lie inside its axis, where NumPy would shorten it.
"""

from __future__ import annotations

import operator

import numpy as np  # static bookkeeping on index arrays only

from diffkit.core.program import Eqn, Lit, NotProgrammable, Var
from diffkit.core.tracer import Tracer
from diffkit.numpy import _elementwise as _el
from diffkit.numpy._core import _arr, _has_tracer, asarray
from diffkit.numpy._creation import full, zeros
from diffkit.numpy._shape import (
    broadcast_arrays,
    broadcast_to,
    concatenate,
    moveaxis,
    normalize_axis,
    ravel,
    stack,
    transpose,
)
from diffkit.primitives import elementwise as E
from diffkit.primitives import indexing as P

__all__ = ["_getitem", "_at", "at", "take", "take_along_axis", "sort", "argsort", "nonzero",
           "argwhere", "flatnonzero", "diag", "diagonal", "pad", "cross"]


def _base(x):
    """An index or mask as data (no derivative; recorded by a program being traced)."""
    return x._value() if isinstance(x, Tracer) else x


def _entry(i):
    """One index entry in the form the primitives take: int | slice | None | Ellipsis |
    integer array | boolean array."""
    if i is None or i is Ellipsis:
        return i
    i = _base(i)
    if isinstance(i, Tracer) and _is_int(i.dtype):  # a program's value: an operand
        return i
    if isinstance(i, slice):
        if isinstance(_base(i.start), Tracer) and isinstance(_base(i.stop), Tracer):
            w = _window(i)
            if w is not None:
                return w
        return slice(*(None if v is None else operator.index(_base(v))
                       for v in (i.start, i.stop, i.step)))
    if isinstance(i, bool):
        return np.asarray(i)
    if isinstance(i, int):
        return i
    if isinstance(i, list | tuple):
        a = np.asarray(i)
        i = a.astype(np.intp) if a.size == 0 else a
    if not hasattr(i, "dtype"):
        try:
            return operator.index(i)
        except TypeError:
            raise IndexError(
                f"only integers, slices, None, Ellipsis and integer or boolean arrays are "
                f"valid indices; got {type(i).__name__}") from None
    if not P.is_bool_array(i) and not _is_int(i.dtype):
        raise IndexError(f"arrays used as indices must be of integer or boolean type, got "
                         f"dtype {i.dtype}")
    if tuple(i.shape) == () and not P.is_bool_array(i):
        return int(i)
    return i


class _Slice:
    """A normal index entry: the slice `start:stop:step` of traced integers whose length is
    the same at every value (both the same variable plus constants; `span` reaches from the
    first element to the last): a program takes its start as the operand of a `Window`."""

    __slots__ = ("start", "stop", "span", "step")

    def __init__(self, start, stop, span, step):
        self.start, self.stop, self.span, self.step = start, stop, span, step

    def static(self) -> slice:
        """The slice of its values (guarded: the program then holds for these only)."""
        return slice(operator.index(self.start), operator.index(self.stop), self.step)

    def slot(self, n: int):
        """The Window for an axis of length n, with an in-range guard recorded; None when
        the traced start puts it (partly) outside the axis (NumPy would shorten it)."""
        if not (self.start >= 0) & (self.start <= n - self.span):  # a guard: replaying
            return None  # the program at a start where it fails retraces the step
        return P.Window(self.span, self.step)


_DYNAMIC = (Tracer, _Slice)  # the entries a program takes as operands


def _window(s: slice) -> _Slice | None:
    """`s` (start and stop traced) as a _Slice when its length is provably constant and its
    step a positive int; None keeps guarding its values (a conservative fallback)."""
    start, stop, step = _base(s.start), _base(s.stop), 1 if s.step is None else s.step
    if (isinstance(step, Tracer) or operator.index(step) <= 0 or start._trace is not stop._trace
            or start.shape or stop.shape or not (_int64(start.dtype) and _int64(stop.dtype))):
        return None
    (a, c1), (b, c2) = _offset(start), _offset(stop)
    if a is not b or c2 <= c1:
        return None
    step = operator.index(step)
    reach = (c2 - c1 - 1) // step * step + 1  # to its last element: i:i+6:2 reads i:i+5:2
    return _Slice(start, stop, reach, step)


def _int64(dtype) -> bool:
    """Adds of small constants to int64 never wrap around (int8's would, and the length
    would change): every variable `_offset` reads through is int64."""
    return str(dtype) in ("int64", "torch.int64")


_SHIFTS = {E.add: 1, E.subtract: -1}  # the equations _offset reads through (a table: these
# functions bind neither, which docs/coverage.md's reach analysis would otherwise list)


def _offset(t) -> tuple:
    """(v, c) with the traced integer t = v + c, v a program variable and c an int, read off
    the adds and subtracts of integer constants that recorded t."""
    var, c, body = t.var, 0, t._trace.body
    k = len(body)
    while True:
        k -= 1
        while k >= 0 and not (type(body[k]) is Eqn and var in body[k].outs):
            k -= 1
        sign = _SHIFTS.get(body[k].prim) if k >= 0 else None
        if sign is None:
            return var, c
        a, b = body[k].ins
        if _int_lit(b) and type(a) is Var and _int64(a.dtype):
            var, c = a, c + sign * int(b.value)
        elif sign == 1 and _int_lit(a) and type(b) is Var and _int64(b.dtype):
            var, c = b, c + int(a.value)
        else:
            return var, c


def _int_lit(x) -> bool:
    v = getattr(x, "value", None)
    return type(x) is Lit and isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_int(dtype) -> bool:
    kind = getattr(dtype, "kind", None)
    return kind in ("i", "u") if kind is not None else "int" in str(dtype)


def _plain(i) -> bool:
    """An int, None, Ellipsis or a slice of ints/None: already in normal form."""
    if type(i) is slice:
        a, b, c = i.start, i.stop, i.step
        return ((a is None or type(a) is int) and (b is None or type(b) is int)
                and (c is None or type(c) is int))
    return type(i) is int or i is None or i is Ellipsis


def index_tuple(idx) -> tuple:
    """`idx` normalised for the indexing primitives (always a tuple)."""
    if type(idx) is not tuple:
        if _plain(idx):  # x[3], x[1:-1]: the common case, already normal
            return (idx,)
        idx = (idx,)
    elif all(_plain(i) for i in idx) and idx.count(Ellipsis) <= 1:
        return idx
    out = tuple(_entry(i) for i in idx)
    if sum(i is Ellipsis for i in out) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    return out


def _traced(idx: tuple) -> list[int]:
    """Positions of the traced integer entries and windows of a normal index (`_entry`)."""
    return [k for k, i in enumerate(idx) if isinstance(i, _DYNAMIC)]


def _slot(idx: tuple, k: int, shape: tuple):
    """(idx with entry k's slot, its operand), or (None, None) for a window partly outside
    its axis of x (`shape`) at the traced value: then `_static` guards its value."""
    e = idx[k]
    if isinstance(e, Tracer):
        return idx[:k] + (P.OPERAND,) + idx[k + 1:], e
    window = e.slot(shape[P.axis_of(idx, k, len(shape))])
    return (None, None) if window is None else (idx[:k] + (window,) + idx[k + 1:], e.start)


def _static(idx: tuple) -> tuple:
    """`idx` for the primitives without an operand: a traced 0-d integer becomes its Python
    value (a guard in a program being traced); a traced integer array cannot."""
    out = []
    for i in idx:
        if type(i) is _Slice:
            i = i.static()
        elif isinstance(i, Tracer):
            if i.shape:
                raise NotProgrammable(
                    "an index with two traced integer arrays (or a traced integer array in an "
                    "update other than .set and .add) cannot be a program operand")
            i = operator.index(i)
        out.append(i)
    return tuple(out)


def _gather(x, idx: tuple):
    """`x[idx]` for a normal index: a traced integer entry goes in as an operand."""
    for i in idx:
        if isinstance(i, _DYNAMIC):
            return _dynamic_gather(x, idx)
    return P.getitem.bind(x, idx=idx)


def _dynamic_gather(x, idx: tuple):
    ops = _traced(idx)
    if len(ops) == 1:
        shape = tuple(x.shape)
        slotted, i = _slot(idx, ops[0], shape)
        if slotted is None:
            return P.getitem.bind(x, idx=_static(idx))
        return P.dynamic_getitem.bind(x, i, idx=slotted, shape=shape)
    if all(not hasattr(i, "shape") or isinstance(i, Tracer) and not i.shape for i in idx):
        return _one_at_a_time(x, idx, ops)
    return P.getitem.bind(x, idx=_static(idx))


def _one_at_a_time(x, idx: tuple, ops: list[int]):
    """Basic indexing with several traced integers (`x[i, :, j]`): the other entries first,
    each traced one leaving an axis, then one operand per axis, last axis first."""
    first = tuple(slice(None) if k in ops else i for k, i in enumerate(idx))
    whole = all(i is Ellipsis or type(i) is slice and i == slice(None) for i in first)
    y = x if whole else P.getitem.bind(x, idx=first)
    rest = len(x.shape) - sum(i is not None and i is not Ellipsis for i in idx)
    axes, axis = [], 0
    for k, i in enumerate(idx):
        if k in ops:
            axes.append((axis, i))
        axis += rest if i is Ellipsis else not isinstance(i, int)
    for axis, i in reversed(axes):
        one, shape = (slice(None),) * axis + (i,), tuple(y.shape)
        slotted, i = _slot(one, axis, shape)
        y = (P.getitem.bind(y, idx=_static(one)) if slotted is None else
             P.dynamic_getitem.bind(y, i, idx=slotted, shape=shape))
    return y


def _getitem(x, idx):
    """`x[idx]` with NumPy's rules (basic, advanced and boolean indexing)."""
    idx = index_tuple(idx)
    if not idx or (len(idx) == 1 and idx[0] is Ellipsis):
        return x
    for i in idx:
        if isinstance(i, _DYNAMIC):
            return _dynamic_gather(x, idx)
    return P.getitem.bind(x, idx=idx)


class _IndexUpdateRef:
    """`x.at[idx]`: the functional updates of JAX, returning new arrays."""

    __slots__ = ("x", "idx")

    def __init__(self, x, idx):
        self.x = x
        self.idx = index_tuple(idx)

    def get(self):
        return _gather(self.x, self.idx)

    def set(self, values):
        """`x` with `x[idx] = values`. With repeated indices one write per element survives
        (the backend's choice; NumPy keeps the last), and only it receives a gradient."""
        return self._update(P.index_set, P.dynamic_index_set, values)

    def add(self, values):
        """`x` with `values` added at `idx`; repeated indices accumulate."""
        return self._update(P.index_add, P.dynamic_index_add, values)

    def _update(self, prim, dynamic, values):
        """`prim`, or `dynamic` with the traced integer entry of idx as its operand."""
        ops = _traced(self.idx)
        if len(ops) == 1:
            slotted, i = _slot(self.idx, ops[0], tuple(self.x.shape))
            if slotted is not None:
                return dynamic.bind(self.x, values, i, idx=slotted)
        return prim.bind(self.x, values, idx=_static(self.idx) if ops else self.idx)

    def subtract(self, values):
        return self.add(-values)

    def multiply(self, values):
        """`x` with `x[idx]` multiplied by `values`; repeated indices multiply again (the
        gradient in `values` then divides by them: they must be nonzero there)."""
        return P.index_mul.bind(self.x, values, idx=_static(self.idx))

    mul = multiply

    def divide(self, values):
        return self.multiply(_el.divide(1.0, values))

    def min(self, values):
        """`x` with `x[idx] = minimum(x[idx], values)`, repeated indices included."""
        return P.index_min.bind(self.x, values, idx=_static(self.idx))

    def max(self, values):
        """`x` with `x[idx] = maximum(x[idx], values)`, repeated indices included."""
        return P.index_max.bind(self.x, values, idx=_static(self.idx))


class _IndexUpdateHelper:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return _IndexUpdateRef(self.x, idx)


def _at(x):
    """What `Tracer.at` returns."""
    return _IndexUpdateHelper(x)


def at(x):
    """JAX's `x.at` for any array: `dnp.at(x)[idx].set(v)` returns an updated copy and
    works the same on plain NumPy/torch arrays and on traced values (whose `x.at[idx]`
    is this). `x` itself is never modified.

    >>> import numpy as np, diffkit.numpy as dnp
    >>> dnp.at(np.zeros(3))[[0, 0, 2]].add(1.0)
    array([2., 0., 1.])
    """
    return _IndexUpdateHelper(x)


# -- gathers --------------------------------------------------------------------------------
def take(a, indices, axis=None, out=None, mode=None):
    """Like `np.take`; mode 'raise' (default), 'wrap' or 'clip'."""
    if out is not None:
        raise TypeError("dnp.take does not support out=: diffkit arrays are immutable")
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axis("take", axis, len(a.shape))
    idx = _entry(indices if not isinstance(indices, slice) else np.asarray(indices))
    n = a.shape[axis]
    if mode == "wrap":
        idx = idx % n
    elif mode == "clip":
        idx = idx * (idx > 0)
        idx = idx - (idx - (n - 1)) * (idx > n - 1)
    elif mode not in (None, "raise"):
        raise ValueError(f"dnp.take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    return _gather(a, (slice(None),) * axis + (idx,))


def take_along_axis(arr, indices, axis=-1):
    """Like `np.take_along_axis` (the gather that `sort` differentiates through)."""
    arr = _arr(arr)
    indices = _entry(indices)
    if axis is None:
        arr, axis = ravel(arr), 0
    nd = len(arr.shape)
    if len(indices.shape) != nd:
        raise ValueError(f"dnp.take_along_axis: indices must have {nd} dimensions like the "
                         f"array, got {len(indices.shape)}")
    axis = normalize_axis("take_along_axis", axis, nd)
    idx = tuple(
        indices if d == axis else np.arange(n).reshape((1,) * d + (n,) + (1,) * (nd - d - 1))
        for d, n in enumerate(arr.shape))
    return _gather(arr, idx)


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Indices that sort `a` (always a stable sort); no derivative."""
    a = _arr(a)
    if axis is not None:
        axis = normalize_axis("argsort", axis, len(a.shape))
    return P.argsort.bind(a, axis=axis)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Sorted `a`; the gradient follows the (stable) permutation, so tied values each keep
    their own cotangent."""
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    return take_along_axis(a, _base(argsort(a, axis)), axis)


def nonzero(a):
    return P.nonzero.bind(_base(_arr(a)))


def argwhere(a):
    return P.argwhere.bind(_base(_arr(a)))


def flatnonzero(a):
    return P.flatnonzero.bind(_base(_arr(a)))


# -- diagonals ------------------------------------------------------------------------------
def _diag_indices(n1: int, n2: int, offset: int):
    length = max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))
    i = np.arange(length)
    return (i, i + offset) if offset >= 0 else (i - offset, i)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """Like `np.diagonal`: the diagonal becomes the last axis."""
    a = _arr(a)
    nd = len(a.shape)
    if nd < 2:
        raise ValueError("dnp.diagonal: the array must have at least 2 dimensions")
    a1, a2 = normalize_axis("diagonal", axis1, nd), normalize_axis("diagonal", axis2, nd)
    if a1 == a2:
        raise ValueError("dnp.diagonal: axis1 and axis2 cannot be the same")
    moved = transpose(a, [d for d in range(nd) if d not in (a1, a2)] + [a1, a2])
    rows, cols = _diag_indices(a.shape[a1], a.shape[a2], operator.index(offset))
    return P.getitem.bind(moved, idx=(Ellipsis, rows, cols))


def diag(v, k=0):
    """Like `np.diag`: the k-th diagonal of a 2-D array, or a 2-D array with a 1-D array
    on its k-th diagonal."""
    v = _arr(v)
    k = operator.index(k)
    if len(v.shape) == 2:
        return diagonal(v, k)
    if len(v.shape) != 1:
        raise ValueError(f"dnp.diag: input must be 1-d or 2-d, got shape {tuple(v.shape)}")
    n = v.shape[0] + abs(k)
    rows, cols = _diag_indices(n, n, k)
    return P.index_add.bind(zeros((n, n), dtype=v.dtype, like=v), v, idx=(rows, cols))


# -- padding --------------------------------------------------------------------------------
def pad(array, pad_width, mode="constant", **kwargs):
    """Like `np.pad` for modes constant (with `constant_values`), edge, reflect, symmetric
    and wrap: padding copies existing elements (a gather along each axis) or constants."""
    array = _arr(array)
    nd = len(array.shape)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (nd, 2))
    if (widths < 0).any():
        raise ValueError(f"dnp.pad: pad widths must be non-negative, got {pad_width!r}")
    if mode == "empty":
        mode = "constant"
    if mode == "constant":
        values = _pad_values(kwargs.pop("constant_values", 0), nd, array)
    elif mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise NotImplementedError(
            f"dnp.pad: mode {mode!r} is not supported (supported: constant, edge, reflect, "
            f"symmetric, wrap)")
    if kwargs:
        raise TypeError(f"dnp.pad: unsupported keyword(s) {sorted(kwargs)} for mode {mode!r}")
    out = array
    for ax, (before, after) in enumerate(widths.tolist()):
        if before == after == 0:
            continue
        if mode == "constant":
            shape = list(out.shape)
            parts = []
            for width, value in ((before, values[ax, 0]), (after, values[ax, 1])):
                shape[ax] = width
                value = value if isinstance(value, Tracer) else value.item()
                parts.append(full(tuple(shape), value, dtype=out.dtype, like=out))
            out = concatenate([parts[0], out, parts[1]], ax)
        else:
            idx = np.pad(np.arange(out.shape[ax]), (before, after), mode=mode)
            out = take(out, idx, ax)
    return out


def _pad_values(values, nd: int, like):
    """`constant_values` as one (before, after) pair per axis, broadcast as NumPy does;
    traced values stay traced, so the padding carries their derivative."""
    if _has_tracer([values]):
        return broadcast_to(asarray(values, like=like), (nd, 2))
    return np.broadcast_to(np.asarray(values), (nd, 2))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Like `np.cross`: the cross product of vectors of 3 (or 2) components along `axisa` /
    `axisb`, broadcast over the other axes; 2-vectors give the z component only when both
    are 2-vectors (NumPy's rule), and a 2-vector with a 3-vector has a zero z."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(_arr(a), axisa, -1), moveaxis(_arr(b), axisb, -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"dnp.cross: incompatible dimensions for cross product (dimension "
                         f"must be 2 or 3), got {na} and {nb}")
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    z = a0 * b1 - a1 * b0
    if na == nb == 2:
        return z
    a2 = a[..., 2] if na == 3 else None
    b2 = b[..., 2] if nb == 3 else None
    x = (a1 * b2 if b2 is not None else 0) - (a2 * b1 if a2 is not None else 0)
    y = (a2 * b0 if a2 is not None else 0) - (a0 * b2 if b2 is not None else 0)
    x, y, z = broadcast_arrays(x, y, z)
    return moveaxis(stack([x, y, z], axis=-1), -1, axisc)
