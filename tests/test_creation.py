"""Array creation: NumPy's results and dtypes, `like=` picking the backend, and the
derivatives that do flow (traced fill values, linspace end points)."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads, to_numpy

CASES = [
    ("zeros", lambda m: m.zeros((2, 3))),
    ("zeros-int", lambda m: m.zeros(4, dtype=np.int32)),
    ("ones", lambda m: m.ones((3,), dtype=np.float32)),
    ("empty", lambda m: m.empty((2, 2)) * 0),
    ("full", lambda m: m.full((2, 2), 7)),
    ("full-float", lambda m: m.full(3, 1.5, dtype=np.float32)),
    ("full-array", lambda m: m.full((2, 3), np.array([1.0, 2.0, 3.0]))),
    ("eye", lambda m: m.eye(3)),
    ("eye-rect", lambda m: m.eye(3, 5, k=2, dtype=np.int64)),
    ("eye-neg-k", lambda m: m.eye(4, 2, k=-1)),
    ("identity", lambda m: m.identity(3, dtype=np.float32)),
    ("tri", lambda m: m.tri(3, 4, 1)),
    ("arange", lambda m: m.arange(5)),
    ("arange-float", lambda m: m.arange(1.0, 2.0, 0.25)),
    ("arange-neg", lambda m: m.arange(5, 0, -2, dtype=np.float64)),
    ("linspace", lambda m: m.linspace(0.0, 1.0, 7)),
    ("linspace-open", lambda m: m.linspace(2, 3, 4, endpoint=False)),
    ("linspace-array", lambda m: m.linspace(np.array([0.0, 1.0]), 5.0, 3, axis=1)),
    ("zeros_like", lambda m: m.zeros_like(np.ones((2, 3)), dtype=np.int32)),
    ("ones_like-shape", lambda m: m.ones_like(np.ones(3), shape=(2, 2))),
    ("full_like", lambda m: m.full_like(np.ones(3, dtype=np.float32), 2.5)),
    ("empty_like", lambda m: m.empty_like(np.ones((2, 1))) * 0),
]


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_matches_numpy(name, make):
    got, want = make(dnp), make(np)
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_linspace_retstep():
    got, step = dnp.linspace(0.0, 2.0, 5, retstep=True)
    want, wstep = np.linspace(0.0, 2.0, 5, retstep=True)
    np.testing.assert_array_equal(got, want)
    assert step == wstep


def test_like_picks_the_backend(backend, to_backend):
    x = to_backend(np.ones((2, 2), dtype=np.float32))
    for out in (dnp.zeros((2, 3), like=x), dnp.eye(3, dtype=x.dtype, like=x),
                dnp.arange(4, like=x), dnp.full(2, 3.0, like=x), dnp.linspace(0, 1, 3, like=x)):
        assert type(out) is type(x)
        assert getattr(out, "device", None) == getattr(x, "device", None)
    eye = dnp.eye(3, dtype=x.dtype, like=x)
    assert eye.dtype == x.dtype
    np.testing.assert_array_equal(to_numpy(eye), np.eye(3))


def test_like_may_be_traced():
    def f(x):
        return dnp.sum(dnp.ones(x.shape, like=x) * x) + dnp.sum(dnp.eye(2, like=x))

    np.testing.assert_array_equal(dk.grad(f)(np.array([1.0, 2.0])), [1.0, 1.0])


def test_traced_fill_value_is_differentiable():
    check_grads(lambda v: dnp.full((2, 3), v), (np.array(1.5),), order=2)
    check_grads(lambda v: dnp.full_like(np.zeros(3), v), (np.array(0.5),), order=2)
    assert float(dk.grad(lambda v: dnp.sum(dnp.full((2, 3), v)))(1.0)) == 6.0


@pytest.mark.parametrize("endpoint", [True, False])
def test_linspace_is_differentiable_in_its_ends(endpoint):
    def f(a, b):
        return dnp.linspace(a, b, 5, endpoint=endpoint)

    a, b = np.array(0.5), np.array([2.0, 3.0])
    np.testing.assert_allclose(f(dk.stop_gradient(a), b),
                               np.linspace(0.5, b, 5, endpoint=endpoint))
    check_grads(f, (a, b), order=2)
    out, t = dk.jvp(lambda a: dnp.linspace(a, 1.0, 3), (np.array(0.0),), (np.array(1.0),))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(t, [1.0, 0.5, 0.0])


def test_creation_errors():
    with pytest.raises(ValueError, match=r"dnp\.arange: step must not be zero"):
        dnp.arange(0, 3, 0)
    with pytest.raises(ValueError, match=r"dnp\.linspace: num must be non-negative"):
        dnp.linspace(0, 1, -1)
    with pytest.raises(TypeError):
        dnp.zeros((2, 1.5))


def test_numpys_constants_and_dtype_names_are_in_dnp(backend, to_backend):
    """dnp.pi, e, inf, nan, euler_gamma, newaxis and the dtype names (issue 12), the dtype
    names working as dtype= and in astype on every backend."""
    for name in ("pi", "e", "inf", "nan", "euler_gamma", "newaxis"):
        want = getattr(np, name)
        assert (getattr(dnp, name) is want or getattr(dnp, name) == want
                or (np.isnan(want) and np.isnan(getattr(dnp, name))))
    x = to_backend(np.arange(3.0))
    assert to_numpy(x[:, dnp.newaxis]).shape == (3, 1)
    for name in ("float32", "float64", "int32", "int64", "complex64", "complex128", "bool_"):
        dt = getattr(dnp, name)
        assert dt is getattr(np, name)
        assert to_numpy(dnp.zeros(2, dtype=dt, like=x)).dtype == np.dtype(dt)
        assert to_numpy(dnp.astype(x, dt)).dtype == np.dtype(dt)
    assert dnp.dtype("float32") == np.float32
