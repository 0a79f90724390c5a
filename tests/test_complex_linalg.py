"""Derivatives of cholesky, eigh, svd and qr for complex input (JAX's convention).

Each case is checked by `check_grads`: the JVP against central differences along a random
complex direction (real and imaginary parts at once), the VJP against the JVP, on every
backend. Eigen- and singular vectors have a free phase each, so those losses are
phase-invariant (|v|^2, U diag(s) V^H, U V^H, projectors); the raw outputs get the
dot-product test alone. Expected gradients for a few cases were compared with JAX 0.10.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import RuleError
from diffkit.testing import check_grads, to_numpy

L = dnp.linalg
rng = np.random.default_rng(7)


def cplx(*shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def hermitian_pd(*shape):
    x = cplx(*shape)
    return x @ np.conj(np.swapaxes(x, -1, -2)) + shape[-1] * np.eye(shape[-1])


H = hermitian_pd(3, 3)
HB = hermitian_pd(2, 3, 3)
SQ = cplx(3, 3)
TALL = cplx(4, 3)
WIDE = cplx(2, 4)
W = rng.normal(size=(3, 3))


def _abs2(xs):
    return [dnp.abs(x) ** 2 for x in xs]


def _svd(a):
    return L.svd(a, full_matrices=False)


def _projector(v):
    return v @ dnp.conj(dnp.swapaxes(v, -1, -2))


# (id, function, argument, order): phase-invariant functions of complex matrices
CASES = [
    ("cholesky", L.cholesky, H, 2),
    ("cholesky-batch", L.cholesky, HB, 1),
    ("cholesky-upper", lambda a: L.cholesky(a, upper=True), H, 1),
    ("eigvalsh", L.eigvalsh, H, 2),
    ("eigvalsh-U", lambda a: L.eigvalsh(a, "U"), HB, 1),
    ("eigh-abs2", lambda a: _abs2(L.eigh(a)), H, 2),
    ("eigh-projector-U", lambda a: _projector(L.eigh(a, "U")[1][..., :2]), HB, 1),
    ("svdvals", L.svdvals, SQ, 2),
    ("svd-abs2", lambda a: _abs2(_svd(a)), SQ, 2),
    ("svd-abs2-tall", lambda a: _abs2(_svd(a)), TALL, 1),
    ("svd-abs2-wide", lambda a: _abs2(_svd(a)), WIDE, 1),
    ("svd-rebuild", lambda a: (lambda u, s, vh: (u * s) @ vh)(*_svd(a)), SQ, 2),
    ("svd-polar-tall", lambda a: (lambda u, s, vh: u @ vh)(*_svd(a)), TALL, 1),
    ("svd-polar-wide", lambda a: (lambda u, s, vh: u @ vh)(*_svd(a)), WIDE, 1),
    ("qr", lambda a: tuple(L.qr(a)), SQ, 2),
    ("qr-tall", lambda a: tuple(L.qr(a)), TALL, 1),
    ("det-rank-2", L.det, cplx(3, 2) @ cplx(2, 3), 1),  # its adjugate comes from the SVD
]


@pytest.mark.parametrize("name,f,a,order", CASES, ids=[c[0] for c in CASES])
def test_complex_decomposition_derivatives(name, f, a, order, to_backend):
    check_grads(f, (to_backend(a),), order=order)


@pytest.mark.parametrize("name,f,a", [
    ("eigh", lambda a: tuple(L.eigh(a)), H),
    ("svd", lambda a: tuple(_svd(a)), SQ),
    ("svd-tall", lambda a: tuple(_svd(a)), TALL),
    ("svd-wide", lambda a: tuple(_svd(a)), WIDE),
], ids=["eigh", "svd", "svd-tall", "svd-wide"])
def test_raw_vectors_vjp_is_the_transpose_of_the_jvp(name, f, a, to_backend):
    check_grads(f, (to_backend(a),), order=1, modes=("rev",))


def test_phase_follows_jax(to_backend):
    # JAX's gauge: Im diag(V^H dV) = 0 for eigh and for svd's V; svd's U takes the rest
    t = to_backend(cplx(3, 3))
    (_, v), (_, dv) = dk.jvp(L.eigh, (to_backend(H),), (t,))
    v, dv = to_numpy(v), to_numpy(dv)
    np.testing.assert_allclose(np.diag(v.conj().T @ dv).imag, 0, atol=1e-12)
    (u, s, vh), (du, _, dvh) = dk.jvp(_svd, (to_backend(SQ),), (t,))
    u, s, vh, du, dvh = (to_numpy(x) for x in (u, s, vh, du, dvh))
    np.testing.assert_allclose(np.diag(vh @ dvh.conj().T).imag, 0, atol=1e-12)
    p = u.conj().T @ to_numpy(t) @ vh.conj().T
    np.testing.assert_allclose(np.diag(u.conj().T @ du).imag, np.diag(p).imag / s, atol=1e-12)


def test_unread_triangle_and_imaginary_diagonal_get_no_cotangent(to_backend):
    # the kernels read the lower triangle and ignore its diagonal's imaginary part
    g = to_numpy(dk.grad(lambda a: dnp.sum(dnp.abs(L.cholesky(a)) ** 2 * W))(to_backend(H)))
    np.testing.assert_array_equal(np.triu(g, 1), 0)
    np.testing.assert_array_equal(np.diag(g).imag, 0)
    g = to_numpy(dk.grad(lambda a: dnp.sum(L.eigvalsh(a, "U") * W[0]))(to_backend(H)))
    np.testing.assert_array_equal(np.tril(g, -1), 0)
    v = np.linalg.eigh(H, "U")[1]  # d w_i = v_i^H dA v_i: the diagonal gets sum_i c_i |v_i|^2
    np.testing.assert_allclose(np.diag(g), np.abs(v) ** 2 @ W[0], atol=1e-12)


def test_gradient_of_a_real_loss_is_jax_conjugate_convention():
    # f(a) = sum(svdvals(a)) = nuclear norm: JAX's grad is conj(U V^H) (df/dx - i df/dy)
    u, _, vh = np.linalg.svd(SQ)
    np.testing.assert_allclose(dk.grad(lambda a: dnp.sum(L.svdvals(a)))(SQ),
                               np.conj(u @ vh), atol=1e-12)


def test_second_derivative_of_det_at_a_singular_complex_matrix_is_refused(to_backend):
    a = to_backend(cplx(3, 2) @ cplx(2, 3))
    with pytest.raises(RuleError, match="second derivative of det at a .near-.singular complex"):
        dk.jacfwd(dk.grad(lambda x: dnp.real(L.det(x))))(a)
