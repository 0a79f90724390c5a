"""diffkit.scipy.linalg: values, shapes and dtypes equal SciPy's on NumPy arrays and
tensors; gradients against finite differences (`check_grads`) on both backends."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.scipy import linalg as D
from diffkit.testing import check_grads

sl = pytest.importorskip("scipy.linalg")  # reference values, and the NumPy kernels

rng = np.random.default_rng(0)
N = 4
A = rng.normal(size=(N, N)) + N * np.eye(N)
B = rng.normal(size=(N, 2))
BV = rng.normal(size=N)
SPD = A @ A.T
SYM = A + A.T
AB = rng.normal(size=(4, 6))  # (l, u) = (1, 2) band storage
AB[2] += 5.0  # the main diagonal, dominant
BB = rng.normal(size=6)
SA, SB, SQ = rng.normal(size=(3, 3)), rng.normal(size=(2, 2)), rng.normal(size=(3, 2))
SA += 3 * np.eye(3)
SB += 3 * np.eye(2)


def _np(x):
    return dk.asarray(x, backend="numpy")


def _same(got, want, rtol=1e-10, atol=1e-12):
    if isinstance(want, tuple | list):
        for g, w in zip(got, want, strict=True):
            _same(g, w, rtol, atol)
        return
    if isinstance(want, bool):
        assert got == want
        return
    g, w = _np(got), np.asarray(want)
    assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


CASES = [  # (id, f(module, *arrays), arrays, gradient order or 0)
    ("solve_triangular", lambda m, a, b: m.solve_triangular(a, b), (A, B), 2),
    ("solve_triangular-lower-T", lambda m, a, b: m.solve_triangular(a, b, trans="T",
                                                                     lower=True), (A, BV), 1),
    ("solve_triangular-unit-C", lambda m, a, b: m.solve_triangular(a, b, trans=2,
                                                                    unit_diagonal=True),
     (A, B), 1),
    ("cho_factor", lambda m, a: m.cho_factor(a)[0], (SPD,), 2),
    ("cho_factor-lower", lambda m, a: m.cho_factor(a, lower=True), (SPD,), 1),
    ("cho_solve", lambda m, a, b: m.cho_solve(m.cho_factor(a), b), (SPD, B), 2),
    ("cho_solve-lower", lambda m, a, b: m.cho_solve(m.cho_factor(a, True), b), (SPD, BV), 1),
    ("lu_factor", lambda m, a: m.lu_factor(a), (rng.normal(size=(N, N)),), 2),
    ("lu_solve", lambda m, a, b: m.lu_solve(m.lu_factor(a), b), (A, B), 2),
    ("lu_solve-T", lambda m, a, b: m.lu_solve(m.lu_factor(a), b, trans=1), (A, BV), 1),
    ("solve_banded", lambda m, ab, b: m.solve_banded((1, 2), ab, b), (AB, BB), 2),
    ("solve_sylvester", lambda m, a, b, q: m.solve_sylvester(a, b, q), (SA, SB, SQ), 2),
    ("expm-small", lambda m, a: m.expm(a), (0.01 * rng.normal(size=(3, 3)),), 2),
    ("expm-pade9", lambda m, a: m.expm(a), (0.4 * rng.normal(size=(3, 3)),), 1),
    ("expm-scaled", lambda m, a: m.expm(a), (3.0 * rng.normal(size=(4, 4)),), 1),
    ("sqrtm", lambda m, a: m.sqrtm(a), (SPD,), 2),
    ("sqrtm-complex", lambda m, a: m.sqrtm(a), (A + 1j * rng.normal(size=(N, N)),), 1),
    ("block_diag", lambda m, a, b: m.block_diag(a, b, b[:, 0], 2.0), (A, B), 1),
    ("eigh", lambda m, a: m.eigh(a, eigvals_only=True), (SYM,), 2),
    ("eigh-upper", lambda m, a: m.eigh(a, lower=False)[0], (SYM,), 1),
    ("eigh-subset", lambda m, a: m.eigh(a, eigvals_only=True, subset_by_index=[1, 2]),
     (SYM,), 1),
    ("eigh-generalized", lambda m, a, b: m.eigh(a, b, eigvals_only=True), (SYM, SPD), 2),
    ("eigh-type2", lambda m, a, b: m.eigh(a, b, type=2, eigvals_only=True), (SYM, SPD), 1),
    ("eigh-type3-lower", lambda m, a, b: m.eigh(a, b, type=3, lower=False)[0], (SYM, SPD), 1),
]


@pytest.mark.parametrize("name,f,args,_order", CASES, ids=[c[0] for c in CASES])
def test_values_match_scipy(name, f, args, _order, backend, to_backend):
    _same(f(D, *to_backend(args)), f(sl, *args))


@pytest.mark.parametrize("name,f,args,order", [c for c in CASES if c[3]],
                         ids=[c[0] for c in CASES if c[3]])
def test_gradients(name, f, args, order, backend, to_backend):
    def floats(*a):
        out = f(D, *a)
        out = out if isinstance(out, tuple) else (out,)
        return tuple(v for v in out if not isinstance(v, bool) and "int" not in str(v.dtype))

    check_grads(floats, to_backend(args), order=order)



def test_eigh_vectors_are_b_orthonormal_and_match_scipy_up_to_sign(backend, to_backend):
    w, v = D.eigh(*to_backend((SYM, SPD)))
    want_w, want_v = sl.eigh(SYM, SPD)
    np.testing.assert_allclose(_np(w), want_w, rtol=1e-10)
    np.testing.assert_allclose(np.abs(_np(v)), np.abs(want_v), rtol=1e-8)
    np.testing.assert_allclose(_np(v).T @ SPD @ _np(v), np.eye(N), atol=1e-10)


def test_solve_triangular_reads_one_triangle(backend, to_backend):
    g = dk.grad(lambda a: dnp.sum(D.solve_triangular(a, B, lower=True)))(to_backend(A))
    assert np.all(np.triu(_np(g), 1) == 0)


def test_expm_matches_scipy_on_a_batch_and_a_large_norm(backend, to_backend):
    a = rng.normal(size=(2, 3, 3)) * np.array([0.1, 20.0])[:, None, None]
    np.testing.assert_allclose(_np(D.expm(to_backend(a))), np.stack([sl.expm(x) for x in a]),
                               rtol=1e-11)


def test_errors():
    with pytest.raises(ValueError, match="trans must be 0/'N', 1/'T' or 2/'C'"):
        D.solve_triangular(A, B, trans=4)
    with pytest.raises(ValueError, match=r"l\+u\+1 \(3\) does not equal ab.shape\[0\] \(4\)"):
        D.solve_banded((1, 1), AB, BB)
    with pytest.raises(ValueError, match=r"q must have shape \(3, 2\)"):
        D.solve_sylvester(SA, SB, SQ.T)
    with pytest.raises(ValueError, match="expm: expected a square matrix"):
        D.expm(B)
    with pytest.raises(ValueError, match="eigh: type must be 1, 2 or 3"):
        D.eigh(SYM, SPD, type=4)
    with pytest.raises(ValueError, match="block_diag: arguments must have 2 or fewer"):
        D.block_diag(np.ones((2, 2, 2)))


@pytest.mark.parametrize("call", [lambda: D.lu_factor(A), lambda: D.sqrtm(SPD),
                                  lambda: D.solve_sylvester(SA, SB, SQ)],
                         ids=["lu_factor", "sqrtm", "solve_sylvester"])
def test_numpy_kernels_without_scipy_say_what_to_install(call, monkeypatch):
    import sys

    from diffkit.errors import MissingKernelError

    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy now raises ImportError
    monkeypatch.setitem(sys.modules, "scipy.linalg", None)
    with pytest.raises(MissingKernelError, match=r"needs SciPy.*pip install 'diffkit\[scipy\]'"):
        call()
