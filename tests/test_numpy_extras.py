"""The rest of NumPy that real code uses (issue 13 item 4): each function's values, shapes
and dtypes equal NumPy's on NumPy arrays and on tensors; gradients against finite
differences (`check_grads`) on both backends."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads

rng = np.random.default_rng(0)
M = rng.normal(size=(4, 6))
T3 = rng.normal(size=(2, 4, 6))
X = np.cumsum(rng.uniform(0.5, 1.5, 4))
Y = np.cumsum(rng.uniform(0.5, 1.5, 6))


def _np(x):
    return dk.asarray(x, backend="numpy") if not isinstance(x, np.ndarray) else x


def _same(got, want, rtol=1e-12, atol=1e-12):
    """got (any backend, maybe a tuple/list) equals NumPy's want: values, shapes, dtypes."""
    if isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _same(g, w, rtol, atol)
        return
    g, w = _np(got), np.asarray(want)
    assert g.shape == w.shape, (g.shape, w.shape)
    assert g.dtype == w.dtype, (g.dtype, w.dtype)
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


SHAPE_CASES = [  # (id, f(xp, *arrays), arrays): xp is numpy or diffkit.numpy
    ("append-flat", lambda xp, a: xp.append(a, a[1]), (M,)),
    ("append-axis", lambda xp, a: xp.append(a[:1], a[1:], axis=1), (T3,)),
    ("hsplit", lambda xp, a: xp.hsplit(a, 3), (M,)),
    ("hsplit-1d", lambda xp, a: xp.hsplit(a[0], [1, 4]), (M,)),
    ("vsplit", lambda xp, a: xp.vsplit(a, [1, 3]), (M,)),
    ("dsplit", lambda xp, a: xp.dsplit(a, 2), (T3,)),
    ("array_split", lambda xp, a: xp.array_split(a, 4, axis=1), (M,)),
    ("row_stack", lambda xp, a: xp.vstack([a, a[:1]]), (M,)),
    ("hstack", lambda xp, a: xp.hstack([a, a]), (M,)),
    ("dstack", lambda xp, a: xp.dstack([a, a]), (M,)),
    ("column_stack", lambda xp, a: xp.column_stack([a[0], a[1]]), (M,)),
    ("rollaxis", lambda xp, a: xp.rollaxis(a, 2, 0), (T3,)),
    ("rollaxis-end", lambda xp, a: xp.rollaxis(a, 0, 3), (T3,)),
    ("gradient", lambda xp, a: xp.gradient(a), (M,)),
    ("gradient-spacing", lambda xp, a: xp.gradient(a, 0.5, axis=1), (M,)),
    ("gradient-coords", lambda xp, a, x, y: xp.gradient(a, x, y), (M, X, Y)),
    ("gradient-coords-2", lambda xp, a, x, y: xp.gradient(a, x, y, edge_order=2), (M, X, Y)),
    ("gradient-2", lambda xp, a: xp.gradient(a, 2.0, edge_order=2, axis=0), (M,)),
]




@pytest.mark.parametrize("name,f,args", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_functions_match_numpy(name, f, args, backend, to_backend):
    _same(f(dnp, *to_backend(args)), f(np, *args))


@pytest.mark.parametrize("name,f,args", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_functions_gradients(name, f, args, backend, to_backend):
    check_grads(lambda *a: f(dnp, *a), to_backend(args), order=1)


def test_gradient_in_the_coordinates(backend, to_backend):
    check_grads(lambda x, y: dnp.gradient(M, x, y, edge_order=2), to_backend((X, Y)), order=2)


def test_shape_errors():
    with pytest.raises(ValueError, match="vsplit only works on arrays of 2 or more"):
        dnp.vsplit(np.zeros(4), 2)
    with pytest.raises(ValueError, match="dsplit only works on arrays of 3 or more"):
        dnp.dsplit(M, 2)
    with pytest.raises(dnp.AxisError, match="rollaxis: start 5 is out of bounds"):
        dnp.rollaxis(T3, 0, 5)
    with pytest.raises(ValueError, match="gradient: axis 0 of length 2 is too short for "
                                         "edge_order=2"):
        dnp.gradient(np.zeros(2), edge_order=2)
    with pytest.raises(ValueError, match="coordinate array must be 1-D of length 4"):
        dnp.gradient(M, X[:3], Y)


A1 = rng.normal(size=7)
SORTED = np.sort(rng.normal(size=6))
INTS = rng.integers(0, 4, size=(3, 4)).astype(float)
W7 = rng.uniform(0.5, 2.0, size=7)
H50 = rng.normal(size=50)
XS = np.linspace(-2.0, 2.0, 9) + 0.01
VALUE_CASES = [  # (id, f(xp, *arrays), arrays, differentiable)
    ("searchsorted", lambda xp, a, v: xp.searchsorted(a, v), (SORTED, M), False),
    ("searchsorted-right", lambda xp, a: xp.searchsorted(a, a[2], side="right"), (SORTED,),
     False),
    # finite differences split ties (the output's length changes): gradients on distinct values
    ("unique", lambda xp, a: xp.unique(a), (INTS,), False),
    ("unique-distinct", lambda xp, a: xp.unique(a, return_counts=True), (M,), True),
    ("unique-all", lambda xp, a: xp.unique(a, True, True, True), (INTS,), False),
    ("unique-axis", lambda xp, a: xp.unique(a[:, :2], True, True, True, axis=0), (INTS,),
     False),
    ("partition-kth", lambda xp, a: xp.partition(a, 2, axis=1)[:, 2], (M,), True),
    ("partition-kths", lambda xp, a: xp.partition(a, [0, 3])[[0, 3]], (A1,), True),
    ("cov", lambda xp, a: xp.cov(a), (M,), True),
    ("cov-1d", lambda xp, a: xp.cov(a[0]), (M,), True),
    ("cov-y-cols", lambda xp, a, b: xp.cov(a, b, rowvar=False), (M[:, :2], M[:, 3]), True),
    ("cov-bias-ddof", lambda xp, a: (xp.cov(a, bias=True), xp.cov(a, ddof=3)), (M,), True),
    ("cov-weights", lambda xp, a, w: xp.cov(a, fweights=np.arange(1, 8), aweights=w),
     (M[:, :7] if M.shape[1] >= 7 else rng.normal(size=(3, 7)), W7), True),
    ("corrcoef", lambda xp, a: xp.corrcoef(a), (M,), True),
    ("corrcoef-xy", lambda xp, a, b: xp.corrcoef(a, b), (M[0], M[1]), True),
    ("histogram", lambda xp, a: xp.histogram(a), (H50,), True),
    ("histogram-edges", lambda xp, a: xp.histogram(a, [-1.0, 0.0, 0.5, 2.0]), (H50,), False),
    ("histogram-range-density", lambda xp, a: xp.histogram(a, 5, (-1, 1), density=True),
     (H50,), False),
    ("histogram-weights", lambda xp, a, w: xp.histogram(a, 4, weights=w), (H50, H50 ** 2),
     True),
    ("select", lambda xp, x: xp.select([x < 0, x > 1], [x ** 2, x], -1.0), (XS,), True),
    ("select-weak-default", lambda xp, x: xp.select([x > 0], [x], 0),
     (XS.astype(np.float32),), False),
    ("piecewise", lambda xp, x: xp.piecewise(x, [x < 0, x >= 0],
                                             [lambda v: v ** 2, lambda v: v ** 3]), (XS,), True),
    ("piecewise-otherwise", lambda xp, x: xp.piecewise(x, x < 0, [lambda v: -v, 5.0]),
     (XS,), True),
    ("iscomplex", lambda xp, x: (xp.iscomplex(x), xp.isreal(x)), (XS,), False),
    ("iscomplex-c", lambda xp, x: (xp.iscomplex(x + 1j * (x > 0)), xp.isreal(x + 0j)), (XS,),
     False),
    ("real_if_close", lambda xp, x: xp.real_if_close(x + 1e-16j), (XS,), True),
    ("real_if_close-not", lambda xp, x: xp.real_if_close(x + 1e-3j), (XS,), True),
    ("pad-maximum", lambda xp, a: xp.pad(a, 2, "maximum"), (M,), True),
    ("pad-minimum", lambda xp, a: xp.pad(a, ((1, 2), (0, 3)), "minimum", stat_length=2),
     (M,), True),
    ("pad-mean", lambda xp, a: xp.pad(a, 2, "mean", stat_length=((1, 2), (3, 1))), (M,), True),
    ("pad-median", lambda xp, a: xp.pad(a, (1, 2), "median"), (M,), True),
    ("pad-linear_ramp", lambda xp, a: xp.pad(a, ((1, 2), (3, 1)), "linear_ramp",
                                             end_values=((1, 4), (2, 3))), (M,), True),
    ("pad-mean-int", lambda xp, a: xp.pad(a, 2, "mean"), ((M * 10).astype(int),), False),
    ("r_", lambda xp, a: xp.r_[1:4, a, 0, -1:1:5j], (A1,), True),
    ("r_-directive", lambda xp, a: xp.r_["0,2,0", a[:3], a[3:6]], (A1,), True),
    ("c_", lambda xp, a, b: xp.c_[a, b], (A1, A1[::-1].copy()), True),
    ("c_-scalars", lambda xp, a: xp.c_[a[None, :3], 0, 0, a[None, 3:6]], (A1,), True),
    ("c_-2d", lambda xp, a: xp.c_[a, a[:, :2]], (M,), True),
]


@pytest.mark.parametrize("name,f,args,_diff", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_match_numpy(name, f, args, _diff, backend, to_backend):
    _same(f(dnp, *to_backend(args)), f(np, *args))


@pytest.mark.parametrize("name,f,args,_diff", [c for c in VALUE_CASES if c[3]],
                         ids=[c[0] for c in VALUE_CASES if c[3]])
def test_gradients(name, f, args, _diff, backend, to_backend):
    def floats(*a):  # the differentiable outputs only
        out = f(dnp, *a)
        leaves = out if isinstance(out, tuple) else (out,)
        return tuple(v for v in leaves if "int" not in str(v.dtype))

    check_grads(floats, to_backend(args), order=1)


def test_piecewise_keeps_nan_of_unused_branch_out_of_the_gradient(backend, to_backend):
    x = to_backend(np.array([-1.0, 4.0]))
    g = dk.grad(lambda x: dnp.sum(dnp.piecewise(x, [x < 0, x >= 0], [0.0, dnp.sqrt])))(x)
    np.testing.assert_allclose(_np(g), [0.0, 0.25])


def test_histogram_edges_follow_min_and_max(backend, to_backend):
    a = to_backend(np.array([0.0, 1.0, 3.0]))
    j = dk.jacfwd(lambda a: dnp.histogram(a, 3)[1])(a)
    np.testing.assert_allclose(_np(j), [[1, 0, 0], [2 / 3, 0, 1 / 3], [1 / 3, 0, 2 / 3],
                                        [0, 0, 1]])


def test_unique_gradient_goes_to_first_occurrence():
    g = dk.grad(lambda a: dnp.sum(dnp.unique(a) * np.array([1.0, 10.0])))(
        np.array([2.0, 1.0, 2.0]))
    np.testing.assert_allclose(g, [10.0, 1.0, 0.0])


def test_errors():
    with pytest.raises(ValueError, match="searchsorted: a must be 1-D"):
        dnp.searchsorted(M, 0.0)
    with pytest.raises(ValueError, match=r"partition: kth\(=7\) out of bounds \(7\)"):
        dnp.partition(A1, 7)
    with pytest.raises(NotImplementedError, match="bin estimator 'auto' is not supported"):
        dnp.histogram(H50, "auto")
    with pytest.raises(ValueError, match="`bins` must increase monotonically"):
        dnp.histogram(H50, [1.0, 0.0])
    with pytest.raises(ValueError, match="select: list of cases must be same length"):
        dnp.select([XS > 0], [XS, XS])
    with pytest.raises(ValueError, match="piecewise: with 2 condition"):
        dnp.piecewise(XS, [XS > 0, XS < 0], [1.0])
    with pytest.raises(ValueError, match="stat_length of 0"):
        dnp.pad(M, 1, "mean", stat_length=0)
    with pytest.raises(NotImplementedError, match="matrix directives"):
        dnp.r_["r", 1, 2]
    with pytest.raises(RuntimeError, match="incompatible numbers of samples and aweights"):
        dnp.cov(M, aweights=W7[:3])
