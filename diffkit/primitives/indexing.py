"""Indexing primitives: `x[idx]` and the functional updates behind `x.at[idx]`.

The index `idx` is a static parameter, a tuple whose entries are int | slice | None |
Ellipsis | integer array | boolean array (normalised by `diffkit.numpy._indexing`; arrays
are NumPy arrays or arrays of x's backend). Gathers transpose to scatter-adds, so repeated
indices accumulate their cotangents. Update kernels return a new array (never mutate x);
the value `v` is broadcast to the shape of `x[idx]` and cast to x's dtype.

`dynamic_getitem`, its transpose `dynamic_scatter`, `dynamic_index_set` and
`dynamic_index_add` take one integer entry of the index as an operand instead (`OPERAND`
marks its slot in `idx`): a step index traced into a program reads `obs[i]` as one equation
for every i, as `jnp` lowers `x[i]` to a gather (JAX's `dynamic_index_in_dim`). Unlike JAX
they never clamp: an index out of range raises IndexError as NumPy does, and a negative one
counts from the end. A `Window` slot is a slice `i:i + span` of constant length instead (JAX's
`dynamic_slice`), valid only inside its axis (`diffkit.numpy` guards that).
"""

from __future__ import annotations

import math

import numpy as np  # sample data only

from diffkit.core.primitive import Primitive
from diffkit.core.residuals import pass_cotangent
from diffkit.core.rules import linear, nondiff
from diffkit.core.tracer import Tracer
from diffkit.core.zeros import Zero
from diffkit.primitives.creation import arange, ones_like, zeros_like
from diffkit.primitives.sampling import cases
from diffkit.primitives.shape import reshape_to


def is_bool_array(i) -> bool:
    dt = getattr(i, "dtype", None)
    return dt is not None and (getattr(dt, "kind", None) == "b" or str(dt).endswith("bool"))


def has_int_array(idx: tuple) -> bool:
    """True if an integer array appears in `idx`: the only way an index can repeat."""
    return any(hasattr(i, "ndim") and not is_bool_array(i) for i in idx)


def _raw(x):
    """A value as data (no derivative; recorded by a program being traced)."""
    return x._value() if isinstance(x, Tracer) else x


def _winners(like, idx, i=None):
    """Mask over `x[idx]`: True where that write is the one a `set` kept (with repeated
    indices only one write per element survives; asking the kernel which one keeps the
    rule consistent with whatever order the backend uses). Computed on raw arrays: no
    derivative flows through it. With `i`, idx's OPERAND is i (dynamic_index_set)."""
    shape = tuple(like.shape)
    if i is None:
        get, put = lambda a: getitem.bind(a, idx=idx), lambda a, v: index_set.bind(a, v, idx=idx)
    else:
        get = lambda a: dynamic_getitem.bind(a, i, idx=idx, shape=shape)
        put = lambda a, v: dynamic_index_set.bind(a, v, i, idx=idx)
    sel = get(_raw(like))
    n = math.prod(sel.shape)
    ids = reshape_to(arange.bind(sel, start=1, stop=n + 1, step=1, dtype="int64"), sel.shape)
    return get(put(zeros_like.bind(sel, dtype="int64", shape=shape), ids)) == ids


def _scatter(t, ans, idx):
    """`t` added into zeros shaped like `ans` at `idx` (the transpose of a gather)."""
    return index_add.bind(zeros_like(ans), t, idx=idx)


getitem = linear(
    "getitem",
    lambda g, _ans, x, idx: _scatter(g, x, idx),
    saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=(3, 4)),), {"idx": (1, slice(None, None, -1))}),
        (lambda r: (r.normal(size=(5,)),), {"idx": (np.array([0, 3, 0, -1]),)}),
        (lambda r: (r.normal(size=(3, 4)),), {"idx": (np.array([True, False, True]),)}),
        (lambda r: (r.normal(size=(2, 3, 4)),),
         {"idx": (Ellipsis, None, np.array([[1], [2]]), np.array([0, 3]))}),
    ),
)

# -- x.at[idx].add(v): linear in (x, v) jointly ---------------------------------------------
index_add = Primitive(
    "index_add",
    jvp=(lambda t, ans, x, v, idx: t, lambda t, ans, x, v, idx: _scatter(t, ans, idx)),
    vjp=(pass_cotangent, lambda g, _ans, _x, _v, idx: getitem.bind(g, idx=idx)),
    saves_args=False, saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3, 3))),
         {"idx": (np.array([1, 3, 1]),)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3,))), {"idx": (slice(1, 3),)}),
    ),
)


# -- x.at[idx].set(v): out = x off idx, v on idx ----------------------------------------------
def _set_ct_v(g, _ans, _x, _v, idx):
    gv = getitem.bind(g, idx=idx)
    return gv * _winners(g, idx) if has_int_array(idx) else gv


index_set = Primitive(
    "index_set",
    jvp=(lambda t, ans, x, v, idx: index_set.bind(t, 0, idx=idx),
         lambda t, ans, x, v, idx: index_set.bind(zeros_like(ans), t, idx=idx)),
    vjp=(lambda g, _ans, _x, _v, idx: index_set.bind(g, 0, idx=idx), _set_ct_v),
    saves_args=False, saves_ans=False,
    subgradient="repeated indices: one write per element survives (the backend's choice, "
                "NumPy's is the last); only that element of v gets a cotangent",
    sample=cases(
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3, 3))),
         {"idx": (np.array([1, 3, 1]),)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=())), {"idx": (slice(None), 2)}),
    ),
)


# -- x.at[idx].multiply(v): out_p = x_p * prod of the v's written at p ------------------------
def _mul_factor(x, v, idx):
    return index_mul.bind(ones_like(x), v, idx=idx)


def _unique(like, idx) -> bool:
    return not has_int_array(idx) or bool(_winners(like, idx).all())


def _mul_dv(x, v, ans, idx):
    """d out[idx] / d v: x[idx] when no index repeats; else the product of the other
    factors, ans[idx] / v (v must be nonzero where an index repeats)."""
    if _unique(x, idx):
        return getitem.bind(x, idx=idx)
    return getitem.bind(ans, idx=idx) / v


index_mul = Primitive(
    "index_mul",
    jvp=(lambda t, ans, x, v, idx: t * _mul_factor(x, v, idx),
         lambda t, ans, x, v, idx: _scatter(t * _mul_dv(x, v, ans, idx), ans, idx)),
    vjp=(lambda g, _ans, x, v, idx: g * _mul_factor(x, v, idx),
         lambda g, ans, x, v, idx: getitem.bind(g, idx=idx) * _mul_dv(x, v, ans, idx)),
    sample=cases(
        (lambda r: (r.normal(size=(4, 3)), r.uniform(0.5, 2, size=(3, 3))),
         {"idx": (np.array([1, 3, 1]),)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3,))), {"idx": (slice(0, 2),)}),
    ),
)


# -- x.at[idx].min(v) / .max(v) ---------------------------------------------------------------
def _extremum_weights(ans, x, v, idx):
    """Share of the output each candidate gets: 1/k to each of the k values equal to the
    result (x_p and the v's written at p), the minimum-norm subgradient of a k-way tie."""
    out = _raw(ans)
    sel = getitem.bind(out, idx=idx)
    wx = (_raw(x) == out) * 1.0
    wv = (_raw(v) == sel) * 1.0
    count = wx + index_add.bind(zeros_like(wx), wv, idx=idx)
    return wx / count, wv / getitem.bind(count, idx=idx)


def _extremum_jvp(tangents, ans, x, v, idx):
    tx, tv = tangents
    wx, wv = _extremum_weights(ans, x, v, idx)
    out = None if isinstance(tx, Zero) else tx * wx
    if not isinstance(tv, Zero):
        s = _scatter(tv * wv, ans, idx)
        out = s if out is None else out + s
    return out


def _extremum_vjp(g, ans, x, v, idx):
    wx, wv = _extremum_weights(ans, x, v, idx)
    return g * wx, getitem.bind(g, idx=idx) * wv


_TIES = "ties between x and the written values split the derivative equally"
_MINMAX_SAMPLE = cases(
    (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3, 3))), {"idx": (np.array([1, 3, 1]),)}),
    (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3,))), {"idx": (slice(0, 2),)}),
)
index_min = Primitive("index_min", jvp=_extremum_jvp, vjp=_extremum_vjp, subgradient=_TIES,
                      sample=_MINMAX_SAMPLE)
index_max = Primitive("index_max", jvp=_extremum_jvp, vjp=_extremum_vjp, subgradient=_TIES,
                      sample=_MINMAX_SAMPLE)

# -- x[idx] with an integer operand: a traced index is data, not a constant -----------------
class Operand:
    """The slot, in the `idx` of a dynamic gather or scatter, of its integer operand `i`:
    where `x[i]` with a traced i takes i (printed `<arg>`)."""

    __slots__ = ()
    __repr__ = lambda self: "<arg>"
    __eq__ = lambda self, other: isinstance(other, Operand)
    __hash__ = lambda self: 0


OPERAND = Operand()


class Window:
    """The slot, in the `idx` of a dynamic gather or scatter, of a slice `i:i + span:step`
    whose start i is its operand (span, step > 0: the same length at every i, as JAX's
    `dynamic_slice`). It must lie inside its axis: there NumPy would return a shorter slice,
    and a program never clamps (JAX does), so `at` raises IndexError instead."""

    __slots__ = ("span", "step")

    def __init__(self, span: int, step: int = 1):
        self.span, self.step = span, step

    def __repr__(self):
        return f"<arg>:<arg>+{self.span}" + (f":{self.step}" if self.step != 1 else "")

    __eq__ = lambda self, other: (isinstance(other, Window) and other.span == self.span
                                  and other.step == self.step)
    __hash__ = lambda self: hash((self.span, self.step))

    def at(self, start: int, n: int) -> slice:
        """The slice from `start` in an axis of length n."""
        if not 0 <= start <= n - self.span:
            raise IndexError(
                f"the slice {start}:{start + self.span} runs outside an axis of length {n}: "
                f"a program's window is never shortened or clamped (the guard that retraces "
                f"the step there was not checked)")
        return slice(start, start + self.span, self.step)


def axis_of(idx: tuple, k: int, ndim: int) -> int:
    """The axis of an ndim-d x that entry k of the normal index `idx` indexes."""
    def taken(e) -> int:
        return 0 if e is None else e.ndim if is_bool_array(e) else 1

    rest = ndim - sum(taken(e) for e in idx if e is not Ellipsis)
    return sum(rest if e is Ellipsis else taken(e) for e in idx[:k])


def filled(idx: tuple, i, shape: tuple, scalar) -> tuple:
    """What kernels index with: `idx` with its slot holding i, an OPERAND as the integer
    `scalar(i)` (0-d: the Python int eager indexing uses, so out of range raises) or the
    array i, a Window as its slice of the axis it indexes in x of `shape`."""
    out = list(idx)
    for k, e in enumerate(idx):
        if type(e) is Operand:
            out[k] = scalar(i)
        elif type(e) is Window:
            out[k] = e.at(scalar(i), shape[axis_of(idx, k, len(shape))])
    return tuple(out)


# x[idx] with idx's OPERAND replaced by the integer (array) i, which has no derivative;
# `shape` is x's shape, so the transpose needs no x (a step reading obs[i] keeps no obs)
dynamic_getitem = linear(
    "dynamic_getitem",
    lambda g, _ans, _x, i, idx, shape: dynamic_scatter.bind(g, i, idx=idx, shape=shape), None,
    saves_ans=False, value_shaped=lambda args: is_bool_array(args[1]),  # x[mask]: its count
    sample=cases(
        (lambda r: (r.normal(size=(5, 3)), np.asarray(-2)),
         {"idx": (OPERAND, slice(None)), "shape": (5, 3)}),
        (lambda r: (r.normal(size=(3, 4)), np.array([0, 3, 0])),
         {"idx": (1, OPERAND), "shape": (3, 4)}),
        (lambda r: (r.normal(size=(2, 3, 4)), np.asarray(2)),
         {"idx": (slice(None, None, -1), None, OPERAND), "shape": (2, 3, 4)}),
        (lambda r: (r.normal(size=(3, 6)), np.asarray(1)),
         {"idx": (Ellipsis, Window(4, 2)), "shape": (3, 6)}),
    ),
)

# zeros of `shape` with v added at idx (its OPERAND replaced by i; repeats accumulate): the
# transpose of dynamic_getitem, a kernel of its own so that only the written part is touched
dynamic_scatter = linear(
    "dynamic_scatter",
    lambda g, _ans, _v, i, idx, shape: dynamic_getitem.bind(g, i, idx=idx, shape=shape), None,
    saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=(3,)), np.asarray(-2)),
         {"idx": (OPERAND, slice(None)), "shape": (5, 3)}),
        (lambda r: (r.normal(size=(3, 4)), np.array([0, 3, 0])),
         {"idx": (OPERAND,), "shape": (5, 4)}),
        (lambda r: (r.normal(size=(2, 4)), np.asarray(3)),
         {"idx": (Window(2),), "shape": (5, 4)}),
    ),
)

# x.at[idx].set(v) with idx's OPERAND replaced by i
def _dyn_set_ct_v(g, _ans, _x, _v, i, idx):
    gv = dynamic_getitem.bind(g, i, idx=idx, shape=tuple(g.shape))
    return gv * _winners(g, idx, i) if getattr(i, "ndim", 0) else gv  # an array may repeat


dynamic_index_set = Primitive(
    "dynamic_index_set",
    jvp=(lambda t, ans, x, v, i, idx: dynamic_index_set.bind(t, 0, i, idx=idx),
         lambda t, ans, x, v, i, idx: dynamic_index_set.bind(zeros_like(ans), t, i, idx=idx),
         None),
    vjp=(lambda g, _ans, _x, _v, i, idx: dynamic_index_set.bind(g, 0, i, idx=idx),
         _dyn_set_ct_v, None),
    saves_ans=False, subgradient=index_set.subgradient,
    sample=cases(
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3, 3)), np.array([1, 3, 1])),
         {"idx": (OPERAND,)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=()), np.asarray(-2)),
         {"idx": (slice(None), OPERAND)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(2, 3)), np.asarray(1)),
         {"idx": (Window(2),)}),
    ),
)

# x.at[idx].add(v) with idx's OPERAND replaced by i: linear in (x, v) jointly; repeats
# accumulate
dynamic_index_add = Primitive(
    "dynamic_index_add",
    jvp=(lambda t, ans, x, v, i, idx: t,
         lambda t, ans, x, v, i, idx: dynamic_scatter.bind(t, i, idx=idx,
                                                           shape=tuple(ans.shape)),
         None),
    vjp=(pass_cotangent,
         lambda g, _ans, _x, _v, i, idx: dynamic_getitem.bind(g, i, idx=idx,
                                                              shape=tuple(g.shape)),
         None),
    saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(3, 3)), np.array([1, 3, 1])),
         {"idx": (OPERAND,)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(4,)), np.asarray(-1)),
         {"idx": (slice(None), OPERAND)}),
        (lambda r: (r.normal(size=(4, 3)), r.normal(size=(4, 2)), np.asarray(0)),
         {"idx": (slice(None), Window(2))}),
    ),
)

# -- index arrays: integers carry no derivative ------------------------------------------------
_NONZERO_SAMPLE = cases((lambda r: (r.normal(size=(3, 4)) > 0,), {}))
argsort = nondiff("argsort", sample=cases((lambda r: (r.normal(size=(3, 4)),), {"axis": -1}),
                                          (lambda r: (r.normal(size=(3, 4)),), {"axis": None})))
nonzero = nondiff("nonzero", multiple_results=True, value_shaped=True, sample=_NONZERO_SAMPLE)
argwhere = nondiff("argwhere", value_shaped=True, sample=_NONZERO_SAMPLE)
flatnonzero = nondiff("flatnonzero", value_shaped=True, sample=_NONZERO_SAMPLE)

PRIMITIVES = (getitem, index_add, index_set, index_mul, index_min, index_max,
              dynamic_getitem, dynamic_scatter, dynamic_index_set, dynamic_index_add,
              argsort, nonzero, argwhere, flatnonzero)
