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
