"""Indexing (`x[idx]`), functional updates (`x.at[idx]`), gathers and index functions."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads, to_numpy

rng = np.random.default_rng(1)
A = rng.normal(size=(3, 4, 5))
MASK = A[:, :, 0] > 0

INDICES = {
    "int": 1,
    "neg-int": -1,
    "slice": slice(1, None),
    "neg-step": (slice(None, None, -1), slice(3, 0, -2)),
    "ellipsis": (Ellipsis, 2),
    "newaxis": (None, 0, None, slice(1, 3)),
    "int-array": np.array([2, 0, 2]),
    "list": [0, 0, 1],
    "2d-array": (np.array([[0, 1], [2, 2]]), slice(None), 4),
    "adjacent-adv": (slice(None), np.array([1, 3]), np.array([0, 4])),
    "separated-adv": (np.array([1, 2]), slice(None), np.array([0, 4])),
    "adv-broadcast": (np.array([[0], [2]]), np.array([1, 2, 1])),
    "adv-ellipsis": (Ellipsis, np.array([4, 0, 4])),
    "bool-mask": MASK,
    "bool-1d": (slice(None), np.array([True, False, True, True])),
    "bool-and-int": (np.array([True, False, True]), 1),
    "np-int": (np.int64(2), np.intp(1)),
    "0d-array": np.array(1),
    "empty-list": [],
    "int-then-adv": (1, slice(None), np.array([0, 4])),  # NumPy: adv axes first, (2, 4)
    "adv-int-newaxis": (np.array([0, 2]), None, slice(None), 3),
    "int-mask": (1, np.array([True, False, True, False])),
}


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_getitem_matches_numpy(idx):
    got = dnp._getitem(A, idx)
    want = A[idx]
    assert np.shape(got) == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_getitem_gradients(idx):
    check_grads(lambda x: x[idx], (A,), order=2)


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_every_backend_indexes_as_numpy_does(backend, to_backend, idx):
    """Values, tangents, cotangents and updates of `x[idx]` on each backend equal NumPy's
    (torch places the axes of `z[1, :, [0, 2]]` differently on its own)."""
    x = to_backend(A)
    want = A[idx]
    _, t = dk.jvp(lambda x: x[idx], (x,), (x,))
    np.testing.assert_array_equal(to_numpy(t), want)
    np.testing.assert_array_equal(to_numpy(dnp.at(x)[idx].get()), want)
    w = rng.normal(size=want.shape)
    g = dk.grad(lambda x: dnp.sum(x[idx] * w))(x)
    np.testing.assert_allclose(to_numpy(g), dk.grad(lambda x: dnp.sum(x[idx] * w))(A))
    added = np.array(A, copy=True)
    np.add.at(added, idx, 1.0)
    np.testing.assert_allclose(to_numpy(dnp.at(x)[idx].add(1.0)), added)


def test_repeated_indices_accumulate():
    g = dk.grad(lambda x: dnp.sum(x[np.array([0, 2, 0, 0])] * np.array([1.0, 2, 3, 4])))(
        np.zeros(3))
    np.testing.assert_array_equal(g, [8.0, 0.0, 2.0])


def test_traced_integer_index_is_unwrapped():
    def f(x):
        i = dnp.astype(x[2], "int64")  # a traced integer: it carries no derivative
        return x[i] * 2.0 + x[i:][0]

    np.testing.assert_array_equal(dk.grad(f)(np.array([1.0, 2.0, 1.0])), [0.0, 3.0, 0.0])


def test_index_errors():
    with pytest.raises(IndexError, match="integer or boolean type, got dtype float64"):
        dnp._getitem(A, np.array([0.5]))
    with pytest.raises(IndexError, match="single ellipsis"):
        dnp._getitem(A, (Ellipsis, 0, Ellipsis))
    with pytest.raises(IndexError, match="valid indices; got str"):
        dnp._getitem(A, "a")

    def mutate(x):
        x[0] = 1.0
        return x

    with pytest.raises(TypeError, match=r"x\.at\[idx\]\.set"):
        dk.grad(lambda x: dnp.sum(mutate(x)))(np.ones(3))


# -- .at[idx] --------------------------------------------------------------------------------
X = rng.normal(size=(4, 3))
UPDATES = {  # name: (dnp method, numpy in-place equivalent)
    "set": ("set", lambda out, i, v: out.__setitem__(i, v)),
    "add": ("add", lambda out, i, v: np.add.at(out, i, v)),
    "multiply": ("multiply", lambda out, i, v: np.multiply.at(out, i, v)),
    "divide": ("divide", lambda out, i, v: np.divide.at(out, i, v)),
    "min": ("min", lambda out, i, v: np.minimum.at(out, i, v)),
    "max": ("max", lambda out, i, v: np.maximum.at(out, i, v)),
}
AT_INDICES = {
    "row": (1, rng.uniform(0.5, 2, (3,))),
    "slice": ((slice(None), slice(0, 2)), rng.uniform(0.5, 2, (4, 2))),
    "scalar-value": ((2, 1), 1.7),
    "broadcast-value": (np.array([0, 3]), rng.uniform(0.5, 2, (1, 3))),
    "repeated": (np.array([1, 3, 1]), rng.uniform(0.5, 2, (3, 3))),
    "repeated-2d": ((np.array([0, 0, 2]), np.array([1, 1, 2])), rng.uniform(0.5, 2, (3,))),
    "mask": (X > 0, 1.25),
}


@pytest.mark.parametrize("op", list(UPDATES))
@pytest.mark.parametrize("case", list(AT_INDICES))
def test_at_matches_numpy(op, case):
    method, ref = UPDATES[op]
    idx, v = AT_INDICES[case]
    want = X.copy()
    ref(want, idx, v)
    got = getattr(dnp.at(X)[idx], method)(v)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert X is not got and not np.shares_memory(X, got)


@pytest.mark.parametrize("op", list(UPDATES))
@pytest.mark.parametrize("case", list(AT_INDICES))
def test_at_gradients(op, case):
    method, _ = UPDATES[op]
    idx, v = AT_INDICES[case]
    if isinstance(v, float):
        check_grads(lambda x: getattr(dnp.at(x)[idx], method)(v), (X,), order=2)
    else:
        check_grads(lambda x, v: getattr(dnp.at(x)[idx], method)(v), (X, v), order=2)


def test_at_set_repeated_last_write_wins_and_gets_the_gradient():
    x = np.zeros(3)
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(dnp.at(x)[[0, 0, 2]].set(v), [2.0, 0.0, 3.0])
    g = dk.grad(lambda v: dnp.sum(dnp.at(x)[np.array([0, 0, 2])].set(v)))(v)
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0])
    gx = dk.grad(lambda x: dnp.sum(x.at[np.array([0, 0, 2])].set(v) * 3.0))(x)
    np.testing.assert_array_equal(gx, [0.0, 3.0, 0.0])


def test_at_add_repeated_accumulates_gradient():
    w = np.array([1.0, 10.0, 100.0])
    g = dk.grad(lambda v: dnp.sum(dnp.at(np.zeros(3))[np.array([2, 2, 0])].add(v) * w))(
        np.ones(3))
    np.testing.assert_array_equal(g, [100.0, 100.0, 1.0])


def test_at_min_tie_splits_the_gradient():
    gx, gv = dk.grad(lambda x, v: dnp.sum(x.at[0].min(v)), argnums=(0, 1))(
        np.array([1.0, 5.0]), 1.0)
    np.testing.assert_array_equal(gx, [0.5, 1.0])
    assert float(gv) == 0.5


def test_at_get():
    np.testing.assert_array_equal(dnp.at(X)[1:, 0].get(), X[1:, 0])


# -- gathers and index functions ---------------------------------------------------------------
GATHERS = [
    ("take", lambda x: dnp.take(x, [3, 0, 3]), lambda x: np.take(x, [3, 0, 3])),
    ("take-axis", lambda x: dnp.take(x, np.array([[1, 0], [4, 4]]), axis=-1),
     lambda x: np.take(x, np.array([[1, 0], [4, 4]]), axis=-1)),
    ("take-int", lambda x: dnp.take(x, 2, axis=1), lambda x: np.take(x, 2, axis=1)),
    ("take-wrap", lambda x: dnp.take(x, [7, -9], axis=2, mode="wrap"),
     lambda x: np.take(x, [7, -9], axis=2, mode="wrap")),
    ("take-clip", lambda x: dnp.take(x, [7, -9, 1], axis=1, mode="clip"),
     lambda x: np.take(x, [7, -9, 1], axis=1, mode="clip")),
    ("take_along_axis", lambda x: dnp.take_along_axis(x, dnp.argsort(x, 1), 1),
     lambda x: np.take_along_axis(x, np.argsort(x, 1), 1)),
    ("take_along_axis-bcast", lambda x: dnp.take_along_axis(x, np.array([[[0]], [[4]], [[2]]]), 2),
     lambda x: np.take_along_axis(x, np.array([[[0]], [[4]], [[2]]]), 2)),
    ("sort", dnp.sort, np.sort),
    ("sort-axis0", lambda x: dnp.sort(x, axis=0), lambda x: np.sort(x, axis=0)),
    ("sort-None", lambda x: dnp.sort(x, axis=None), lambda x: np.sort(x, axis=None)),
    ("diagonal", dnp.diagonal, np.diagonal),
    ("diagonal-offset", lambda x: dnp.diagonal(x, -1, 2, 1), lambda x: np.diagonal(x, -1, 2, 1)),
    ("diagonal-big-offset", lambda x: dnp.diagonal(x, 3, 1, 2),
     lambda x: np.diagonal(x, 3, 1, 2)),
    ("diag-2d", lambda x: dnp.diag(x[0], 1), lambda x: np.diag(x[0], 1)),
    ("diag-1d", lambda x: dnp.diag(x[0, 0], -2), lambda x: np.diag(x[0, 0], -2)),
]


@pytest.mark.parametrize("name,f,ref", GATHERS, ids=[g[0] for g in GATHERS])
def test_gathers_match_numpy(name, f, ref):
    np.testing.assert_array_equal(f(A), ref(A))


@pytest.mark.parametrize("name,f,ref", GATHERS, ids=[g[0] for g in GATHERS])
def test_gather_gradients(name, f, ref):
    check_grads(f, (A,), order=2)


def test_sort_gradient_is_the_permutation():
    x = np.array([3.0, 1.0, 2.0, 1.0])
    g = dk.grad(lambda x: dnp.sum(dnp.sort(x) * np.arange(4.0)))(x)
    np.testing.assert_array_equal(g, [3.0, 0.0, 2.0, 1.0])  # stable: first 1.0 sorts first


def test_index_functions():
    x = np.array([[0.0, 1.5], [-2.0, 0.0]])
    for got, want in zip(dnp.nonzero(x), np.nonzero(x), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dnp.argwhere(x), np.argwhere(x))
    np.testing.assert_array_equal(dnp.flatnonzero(x), np.flatnonzero(x))
    np.testing.assert_array_equal(dnp.argsort(A, axis=None), np.argsort(A, axis=None,
                                                                         kind="stable"))

    def f(x):  # nondiff inside a transform: concrete index arrays come out
        rows, cols = dnp.nonzero(x > 0)
        return dnp.sum(x[rows, cols])

    np.testing.assert_array_equal(dk.grad(f)(x), [[0.0, 1.0], [0.0, 0.0]])


def test_gather_errors():
    with pytest.raises(ValueError, match=r"dnp\.take: mode must be"):
        dnp.take(A, [0], mode="bogus")
    with pytest.raises(IndexError, match=r"dnp\.take: axis 3 is out of bounds"):
        dnp.take(A, [0], axis=3)
    with pytest.raises(ValueError, match=r"dnp\.diag: input must be 1-d or 2-d"):
        dnp.diag(A)
    with pytest.raises(ValueError, match=r"dnp\.take_along_axis: indices must have 3"):
        dnp.take_along_axis(A, np.array([0]), 0)


@pytest.mark.parametrize("idx", [INDICES[k] for k in (
    "neg-step", "newaxis", "list", "separated-adv", "adv-ellipsis", "bool-mask")],
    ids=["neg-step", "newaxis", "list", "separated-adv", "adv-ellipsis", "bool-mask"])
def test_backends_agree(backend, to_backend, idx):
    x = to_backend(A)
    np.testing.assert_array_equal(to_numpy(dnp._getitem(x, idx)), A[idx])
    check_grads(lambda x: dnp._getitem(x, idx), (x,), order=1)  # x[idx] is torch's on a tensor
    for method in ("set", "add", "multiply", "max"):
        got = getattr(dnp.at(x)[idx], method)(to_backend(np.array(1.5)))
        want = getattr(dnp.at(A)[idx], method)(1.5)
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12)
        check_grads(lambda x, v, m=method: getattr(dnp.at(x)[idx], m)(v),
                    (x, to_backend(np.array(1.5))), order=1)


@pytest.mark.parametrize("sa, sb, kw", [
    ((3,), (3,), {}), ((4, 3), (3,), {}), ((5, 2), (5, 3), {}), ((3, 4), (3, 4), {"axis": 0}),
    ((3, 5), (5, 3), {"axisa": 0, "axisc": 0}),
])
@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
def test_cross_matches_numpy_with_gradients(backend, to_backend, sa, sb, kw):
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    got = dnp.cross(to_backend(a), to_backend(b), **kw)
    np.testing.assert_allclose(to_numpy(got), np.cross(a, b, **kw), rtol=1e-12)
    check_grads(lambda a, b: dnp.cross(a, b, **kw), (a, b), order=2)
    g = dk.grad(lambda a: dnp.sum(dnp.cross(a, to_backend(b), **kw) ** 2))(to_backend(a))
    np.testing.assert_allclose(to_numpy(g), dk.grad(
        lambda a: dnp.sum(dnp.cross(a, b, **kw) ** 2))(a), rtol=1e-10)


def test_cross_of_2_vectors_is_the_z_component_and_bad_sizes_are_named():
    assert float(dnp.cross(np.array([1.0, 0.0]), np.array([0.0, 1.0]))) == 1.0
    with pytest.raises(ValueError, match=r"dnp.cross: incompatible dimensions .* got 4 and 3"):
        dnp.cross(np.ones(4), np.ones(3))
