"""diffkit.numpy.linalg: results equal NumPy's; gradients agree with finite differences
(`check_grads`: JVP vs central differences, VJP vs JVP, second order where cheap)."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import RuleError
from diffkit.testing import check_grads

L = dnp.linalg
rng = np.random.default_rng(0)


def wellcond(*shape):
    return rng.normal(size=shape) + shape[-1] * np.eye(shape[-1])


def spd(*shape):
    x = rng.normal(size=shape)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def cplx(*shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


A = wellcond(3, 3)
AB = wellcond(2, 3, 3)
S = spd(3, 3)
SB = spd(2, 3, 3)
TALL = rng.normal(size=(5, 3))
WIDE = rng.normal(size=(2, 4))
B = rng.normal(size=(3, 2))
V = rng.normal(size=3)
AC = cplx(3, 3) + 3 * np.eye(3)
BC = cplx(3, 2)

# (id, diffkit function, numpy function, args)
VALUES = [
    ("inv", L.inv, np.linalg.inv, (A,)),
    ("inv-batched", L.inv, np.linalg.inv, (AB,)),
    ("inv-complex", L.inv, np.linalg.inv, (AC,)),
    ("solve-vector", L.solve, np.linalg.solve, (A, V)),
    ("solve-matrix", L.solve, np.linalg.solve, (A, B)),
    ("solve-broadcast", L.solve, np.linalg.solve, (AB, B)),
    ("solve-complex", L.solve, np.linalg.solve, (AC, BC)),
    ("det", L.det, np.linalg.det, (AB,)),
    ("det-complex", L.det, np.linalg.det, (AC,)),
    ("slogdet", lambda a: tuple(L.slogdet(a)), lambda a: tuple(np.linalg.slogdet(a)), (-AB,)),
    ("cholesky", L.cholesky, np.linalg.cholesky, (SB,)),
    ("cholesky-upper", lambda a: L.cholesky(a, upper=True),
     lambda a: np.linalg.cholesky(a, upper=True), (S,)),
    ("eigvalsh", L.eigvalsh, np.linalg.eigvalsh, (SB,)),
    ("eigvalsh-U", lambda a: L.eigvalsh(a, "U"), lambda a: np.linalg.eigvalsh(a, "U"), (A,)),
    ("svdvals", L.svdvals, np.linalg.svdvals, (TALL,)),
    ("svd-nouv", lambda a: L.svd(a, compute_uv=False),
     lambda a: np.linalg.svd(a, compute_uv=False), (WIDE,)),
    ("qr-r", lambda a: L.qr(a, "r"), lambda a: np.linalg.qr(a, "r"), (TALL,)),
    ("pinv", L.pinv, np.linalg.pinv, (TALL,)),
    ("pinv-rank-deficient", L.pinv, np.linalg.pinv, (np.outer(V, V),)),
    ("matrix_rank", L.matrix_rank, np.linalg.matrix_rank, (np.outer(V, V),)),
    ("matrix_rank-tol", lambda a: L.matrix_rank(a, tol=0.5),
     lambda a: np.linalg.matrix_rank(a, tol=0.5), (A,)),
    ("matrix_power-0", lambda a: L.matrix_power(a, 0), lambda a: np.linalg.matrix_power(a, 0),
     (AB,)),
    ("matrix_power-5", lambda a: L.matrix_power(a, 5), lambda a: np.linalg.matrix_power(a, 5),
     (A,)),
    ("matrix_power--2", lambda a: L.matrix_power(a, -2),
     lambda a: np.linalg.matrix_power(a, -2), (A,)),
    ("multi_dot", lambda *m: L.multi_dot(m), lambda *m: np.linalg.multi_dot(m), (V, A, B)),
] + [
    (f"cond-{p}", lambda a, p=p: L.cond(a, p), lambda a, p=p: np.linalg.cond(a, p), (A,))
    for p in (None, 2, -2, 1, -1, np.inf, -np.inf, "fro", "nuc")
]


@pytest.mark.parametrize("name,f,ref,args", VALUES, ids=[c[0] for c in VALUES])
def test_values_match_numpy(name, f, ref, args):
    got, want = f(*args), ref(*args)
    if isinstance(want, tuple):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x", [AB, TALL, WIDE])
def test_decompositions_reconstruct(x):
    u, s, vh = L.svd(x, full_matrices=False)
    np.testing.assert_allclose((u * s[..., None, :]) @ vh, x, atol=1e-12)
    w, v = L.eigh(S)
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, S, atol=1e-12)
    if x.shape[-2] >= x.shape[-1]:
        q, r = L.qr(x)
        np.testing.assert_allclose(q @ r, x, atol=1e-12)


@pytest.mark.parametrize("ord", [None, 1, 2, np.inf, -np.inf, 0, 3, -1.5])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True)])
def test_vector_norms_match_numpy(ord, axis, keepdims):
    x = rng.normal(size=(3, 4)) if axis is not None else V
    np.testing.assert_allclose(L.norm(x, ord, axis, keepdims),
                               np.linalg.norm(x, ord, axis, keepdims), rtol=1e-12)


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf])
@pytest.mark.parametrize("axis,keepdims", [(None, False), ((2, 0), True), ((0, 1), False)])
def test_matrix_norms_match_numpy(ord, axis, keepdims):
    x = A if axis is None else rng.normal(size=(3, 2, 4))
    np.testing.assert_allclose(L.norm(x, ord, axis, keepdims),
                               np.linalg.norm(x, ord, axis, keepdims), rtol=1e-12)


def test_vector_and_matrix_norm_functions():
    x = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(L.vector_norm(x, ord=1, keepdims=True),
                               np.linalg.vector_norm(x, ord=1, keepdims=True))
    np.testing.assert_allclose(L.matrix_norm(x, ord="nuc"), np.linalg.matrix_norm(x, ord="nuc"))
    np.testing.assert_allclose(L.norm(x), np.linalg.norm(x))


def test_lstsq_matches_numpy():
    for a, b in [(TALL, rng.normal(size=5)), (TALL, rng.normal(size=(5, 2))),
                 (WIDE, rng.normal(size=2)), (np.outer(V, V), V)]:
        got, want = L.lstsq(a, b), np.linalg.lstsq(a, b)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-10)
        assert got[2] == want[2]


# -- gradients ---------------------------------------------------------------------------------
def _eigvec_projector(a):  # sign-invariant: v v^T of the top eigenvector
    v = L.eigh(a)[1][..., :, -1]
    return v[..., :, None] * v[..., None, :]


def _svd_gauge_free(a):  # |u_i^T a v_i| products and reconstructions do not see the signs
    u, s, vh = L.svd(a, full_matrices=False)
    return (u * s[..., None, :]) @ vh, (u * dnp.sqrt(s)[..., None, :]) @ dnp.swapaxes(u, -1, -2)


GRADS = [
    ("inv", L.inv, (AB,), 2),
    ("solve", L.solve, (AB, B), 2),
    ("solve-vector", L.solve, (A, V), 2),
    ("det", L.det, (AB,), 2),
    ("slogdet", lambda a: L.slogdet(a)[1], (-AB,), 2),
    ("cholesky", L.cholesky, (SB,), 2),
    ("cholesky-upper", lambda a: L.cholesky(a, upper=True), (S,), 1),
    ("eigvalsh", lambda a: L.eigvalsh(a) * np.arange(1.0, 4.0), (SB,), 2),
    ("eigvalsh-U-nonsymmetric", lambda a: L.eigvalsh(a, "U"), (A,), 1),
    ("eigh-projector", _eigvec_projector, (SB,), 1),
    ("svdvals-tall", L.svdvals, (TALL,), 2),
    ("svdvals-wide", L.svdvals, (WIDE,), 1),
    ("svd-gauge-free-tall", _svd_gauge_free, (TALL,), 1),
    ("svd-gauge-free-wide", _svd_gauge_free, (WIDE,), 1),
    ("qr", lambda a: tuple(L.qr(a)), (TALL,), 2),
    ("pinv", L.pinv, (WIDE,), 2),
    ("lstsq-tall", lambda a, b: L.lstsq(a, b)[0], (TALL, rng.normal(size=5)), 2),
    ("lstsq-wide", lambda a, b: L.lstsq(a, b)[0], (WIDE, rng.normal(size=(2, 3))), 1),
    ("lstsq-residuals", lambda a, b: L.lstsq(a, b)[1], (TALL, rng.normal(size=5)), 1),
    ("matrix_power-3", lambda a: L.matrix_power(a, 3), (A,), 2),
    ("matrix_power--2", lambda a: L.matrix_power(a, -2), (A,), 1),
    ("cond", L.cond, (A,), 1),
    ("cond-1", lambda a: L.cond(a, 1), (A,), 1),
    ("norm-2-axis", lambda x: L.norm(x, axis=1, keepdims=True), (TALL,), 2),
    ("norm-nuc", lambda x: L.norm(x, "nuc"), (TALL,), 1),
    ("norm-3", lambda x: L.norm(x, 3), (V,), 2),
    # complex input, JAX's convention (transpose without conjugation)
    ("inv-complex", L.inv, (AC,), 2),
    ("solve-complex", L.solve, (AC, BC), 2),
    ("det-complex", L.det, (AC,), 2),
    ("slogdet-complex", lambda a: L.slogdet(a)[1], (AC,), 1),
    ("pinv-complex", L.pinv, (AC[:, :2],), 1),
    ("norm-complex", L.norm, (BC,), 2),
]


@pytest.mark.parametrize("name,f,args,order", GRADS, ids=[c[0] for c in GRADS])
def test_gradients(name, f, args, order):
    check_grads(f, args, order=order)


def test_norm_gradient_at_zero_is_zero():
    np.testing.assert_array_equal(dk.grad(L.norm)(np.zeros(3)), np.zeros(3))
    np.testing.assert_array_equal(
        dk.grad(lambda x: dnp.sum(L.norm(x, axis=0)))(np.zeros((2, 2))), np.zeros((2, 2)))


def test_complex_det_gradient_follows_jax():
    # f = |det a|^2: JAX's grad is 2 df/da (Wirtinger, as grad(|z|^2) = 2 conj(z)),
    # = 2 conj(det a) det a inv(a)^T
    d = np.linalg.det(AC)
    want = 2 * np.abs(d) ** 2 * np.linalg.inv(AC).T
    got = dk.grad(lambda a: dnp.abs(L.det(a)) ** 2)(AC)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_eigvalsh_gradient_at_repeated_eigenvalues():
    # eigenvalues alone are differentiable at a degenerate spectrum: d tr(a) = I
    np.testing.assert_allclose(dk.grad(lambda a: dnp.sum(L.eigvalsh(a)))(np.eye(3)), np.eye(3))


def test_eigenspace_projector_gradient_at_a_degenerate_spectrum():
    # P = projector onto the repeated eigenvalue's 2-D eigenspace: smooth in a, though
    # its eigenvectors are not; compare with finite differences along symmetric directions
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    a = q @ np.diag([1.0, 1.0, 3.0]) @ q.T
    c = rng.normal(size=(3, 3))

    def loss(m):
        v = L.eigh(m)[1][:, :2]
        return dnp.sum((v @ dnp.swapaxes(v, 0, 1)) * c)

    d = rng.normal(size=(3, 3))
    d = np.tril(d) + np.tril(d, -1).T
    h = 1e-6
    fd = (loss(a + h * d) - loss(a - h * d)) / (2 * h)
    np.testing.assert_allclose(np.sum(dk.grad(loss)(a) * d), fd, rtol=1e-6)
    np.testing.assert_allclose(dk.jvp(loss, (a,), (d,))[1], fd, rtol=1e-6)


def test_values_only_derivatives_at_repeated_values_are_finite():
    with np.errstate(all="raise"):
        assert np.isfinite(dk.jvp(L.eigvalsh, (np.eye(3),), (np.ones((3, 3)),))[1]).all()
        assert np.isfinite(dk.jvp(L.svdvals, (np.eye(3),), (np.ones((3, 3)),))[1]).all()


def test_cholesky_cotangent_on_the_read_triangle():
    g = dk.grad(lambda a: dnp.sum(L.cholesky(a)))(S)
    np.testing.assert_array_equal(np.triu(g, 1), 0)


# -- errors ------------------------------------------------------------------------------------
def test_svd_full_matrices_derivative_error():
    with pytest.raises(RuleError, match="full_matrices=True.*non-square 5x3"):
        dk.jvp(lambda a: L.svd(a)[0], (TALL,), (TALL,))


def test_qr_wide_derivative_error():
    with pytest.raises(RuleError, match="square and tall matrices; got 2x4"):
        dk.jvp(lambda a: L.qr(a)[1], (WIDE,), (WIDE,))


@pytest.mark.parametrize("call,match", [
    (lambda: L.norm(V, "fro"), "Invalid norm order 'fro' for vectors"),
    (lambda: L.norm(A, 3), "Invalid norm order 3 for matrices"),
    (lambda: L.norm(AB, 2), "Improper number of dimensions"),
    (lambda: L.eigh(S, "X"), "UPLO argument must be 'L' or 'U'"),
    (lambda: L.qr(A, "raw"), "qr mode must be"),
    (lambda: L.multi_dot([A]), "at least two arrays"),
    (lambda: L.lstsq(AB, V), "2-D a"),
])
def test_argument_errors(call, match):
    with pytest.raises((ValueError, NotImplementedError), match=match):
        call()


def _cofactors(a):
    """The gradient of det: the cofactor matrix adj(a)^T, from minors (no inverse)."""
    n = a.shape[-1]
    c = np.empty_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, -2), j, -1)
            c[..., i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return c


RANK1 = np.array([[1.0, 2.0], [2.0, 4.0]])
RANK2 = rng.normal(size=(3, 2)) @ rng.normal(size=(2, 3))


@pytest.mark.parametrize("a", [RANK1, RANK2, np.stack([RANK2, A]), np.zeros((3, 3))],
                         ids=["2x2-rank1", "3x3-rank2", "batch-singular-and-regular", "zero"])
def test_det_gradient_at_singular_matrix_is_the_adjugate(a, backend, to_backend):
    # it was inv(a) * det(a): LinAlgError / inf on NumPy, 0 or an error on torch
    got = dk.grad(lambda x: dnp.sum(L.det(x)))(to_backend(a))
    np.testing.assert_allclose(dk.asarray(got, backend="numpy"), _cofactors(a), atol=1e-12)
    _, t = dk.jvp(L.det, (to_backend(a),), (to_backend(np.ones_like(a)),))
    np.testing.assert_allclose(dk.asarray(t, backend="numpy"), _cofactors(a).sum((-2, -1)),
                               atol=1e-12)


def test_det_second_order_at_singular_matrix(backend, to_backend):
    check_grads(L.det, (to_backend(RANK2),), order=2)
    check_grads(L.det, (to_backend(RANK2[:, :2] @ cplx(2, 3)),), order=1)


NONSYM = rng.normal(size=(3, 3))  # a complex pair of eigenvalues and a real one


@pytest.mark.parametrize("a", [NONSYM, S, AC, np.stack([NONSYM, A])],
                         ids=["complex-pair", "real-spectrum", "complex-input", "batch"])
def test_eig_values_match_numpy(a, backend, to_backend):
    w, v = L.eig(to_backend(a))
    want_w, want_v = np.linalg.eig(a)
    for got, want in ((w, want_w), (v, want_v), (L.eigvals(to_backend(a)), want_w)):
        got = dk.asarray(got, backend="numpy")
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("a,order", [(NONSYM, 2), (S, 2), (AC, 1)],
                         ids=["complex-pair", "real-spectrum", "complex-input"])
def test_eig_gradients(a, order, backend, to_backend):
    # the vectors themselves: their derivative keeps LAPACK's normalization (unit norm,
    # largest entry real), so it matches finite differences of NumPy's eig
    check_grads(lambda x: tuple(L.eig(x)), (to_backend(a),), order=order)


def test_eigvals_gradient_is_the_left_right_formula():
    # d w_i = u_i^T da v_i with u_i^T the rows of V^-1 (left vectors, u_i^T v_i = 1); for a
    # real a the gradient of Re(w_i) is Re(u_i v_i^T)
    _, v = np.linalg.eig(NONSYM)
    u = np.linalg.inv(v).T
    g = dk.grad(lambda x: dnp.real(L.eigvals(x)[2]))(NONSYM)
    np.testing.assert_allclose(g, np.real(np.outer(u[:, 2], v[:, 2])), atol=1e-12)


def _complete_qr_invariants(a):
    q, r = L.qr(a, "complete")
    n = a.shape[-1]
    q2 = q[..., n:]
    return q[..., :n], r, q2 @ dnp.swapaxes(q2, -1, -2)


@pytest.mark.parametrize("a", [TALL, rng.normal(size=(2, 4, 2))], ids=["5x3", "batch-4x2"])
def test_qr_complete_tall(a, backend, to_backend):
    q, r = L.qr(to_backend(a), "complete")
    want_q, want_r = np.linalg.qr(a, "complete")
    np.testing.assert_allclose(dk.asarray(q, backend="numpy"), want_q, atol=1e-12)
    np.testing.assert_allclose(dk.asarray(r, backend="numpy"), want_r, atol=1e-12)
    # Q1 and R exactly; the complement through its projector (rotations inside it are free)
    check_grads(_complete_qr_invariants, (to_backend(a),), order=1)
