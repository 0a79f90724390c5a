"""The stencil plugin's user functions: values against NumPy references, adjoints,
gradients against finite differences, broadcasting velocities, torch kernels, errors.
(The generic rule checks of its primitives run in tests/test_primitives.py.)"""

from __future__ import annotations

import diffkit_stencil as st
import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.cli import main as cli_main
from diffkit.testing import check_grads

from .conftest import HAS_TORCH

rng = np.random.default_rng(0)


def _shift(x, k, axis, bc):
    """x[i + k] along axis, by np.roll (periodic) or zero padding (dirichlet)."""
    out = np.roll(x, -k, axis)
    if bc == "dirichlet":
        idx = [slice(None)] * x.ndim
        idx[axis] = -1 if k == 1 else 0
        out[tuple(idx)] = 0
    return out


def _ref_laplace(x, dxs, bc):
    n = len(dxs)
    return sum((_shift(x, 1, ax, bc) - 2 * x + _shift(x, -1, ax, bc)) / h**2
               for ax, h in zip(range(x.ndim - n, x.ndim), dxs, strict=True))


def _matrix(f, shape):
    """The matrix of a linear map on arrays of `shape`, column by column."""
    n = int(np.prod(shape))
    return np.stack([f(np.eye(n)[k].reshape(shape)).ravel() for k in range(n)], axis=1)


@pytest.mark.parametrize("bc", ["periodic", "dirichlet"])
@pytest.mark.parametrize("fn,shape,dx", [
    (st.laplace1d, (2, 7), (0.5,)), (st.laplace2d, (5, 6), (0.5, 0.25)),
    (st.laplace2d, (5, 6), (0.3, 0.3)), (st.laplace3d, (3, 4, 5), (1.0, 0.5, 2.0)),
])
def test_laplace_matches_reference(fn, shape, dx, bc):
    x = rng.standard_normal(shape)
    dx_arg = dx if len(dx) > 1 else dx[0]
    np.testing.assert_allclose(fn(x, dx_arg, bc), _ref_laplace(x, dx, bc), rtol=1e-12)


@pytest.mark.parametrize("bc", ["periodic", "dirichlet"])
def test_laplace_self_adjoint_and_dirichlet_is_the_tridiagonal_matrix(bc):
    A = _matrix(lambda x: st.laplace2d(x, bc=bc), (3, 4))
    np.testing.assert_allclose(A, A.T)
    T = _matrix(lambda x: st.laplace1d(x, dx=0.5, bc=bc), (5,))
    want = (np.diag(-2 * np.ones(5)) + np.diag(np.ones(4), 1) + np.diag(np.ones(4), -1)) / 0.25
    if bc == "periodic":
        want[0, -1] = want[-1, 0] = 4.0
    np.testing.assert_allclose(T, want)


@pytest.mark.parametrize("bc", ["periodic", "dirichlet"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_differences_and_their_transposes(bc, axis):
    x = rng.standard_normal((4, 5))
    fwd = st.diff(x, axis, 0.5, bc, "forward")
    np.testing.assert_allclose(fwd, (_shift(x, 1, axis, bc) - x) / 0.5)
    back = st.diff(x, axis, 0.5, bc, "backward")
    np.testing.assert_allclose(back, (x - _shift(x, -1, axis, bc)) / 0.5)
    cen = st.gradient(x, axis, 0.5, bc)
    np.testing.assert_allclose(cen, (_shift(x, 1, axis, bc) - _shift(x, -1, axis, bc)) / 1.0)
    G = _matrix(lambda y: st.gradient(y, axis, bc=bc), (4, 5))
    np.testing.assert_allclose(G.T, -G)
    F = _matrix(lambda y: st.diff(y, axis, bc=bc), (4, 5))
    B = _matrix(lambda y: st.diff(y, axis, bc=bc, side="backward"), (4, 5))
    np.testing.assert_allclose(F.T, -B)


@pytest.mark.parametrize("bc", ["periodic", "dirichlet"])
def test_upwind_value_picks_the_side_by_the_velocity_sign(bc):
    c = rng.standard_normal(8)
    u = np.array([1.0, -2.0, 0.5, 0.0, -1.0, 3.0, -0.5, 1.5])
    back, fwd = (c - _shift(c, -1, 0, bc)), (_shift(c, 1, 0, bc) - c)
    want = np.where(u > 0, u * back, u * fwd)
    np.testing.assert_allclose(st.upwind(c, u, bc=bc), want)
    # scalar velocity broadcasts, and a Python float is accepted
    np.testing.assert_allclose(st.upwind(c, -2.0, bc=bc), -2.0 * fwd)


@pytest.mark.parametrize("bc", ["periodic", "dirichlet"])
def test_upwind_gradients_vs_finite_differences(bc):
    c = rng.standard_normal((4, 6))
    u = rng.uniform(0.3, 2.0, (4, 6)) * rng.choice([-1.0, 1.0], (4, 6))
    check_grads(lambda c, u: st.upwind(c, u, axis=0, dx=0.5, bc=bc), (c, u), order=2)
    check_grads(lambda c, u: st.upwind(c, u, dx=0.5, bc=bc), (c, np.array(0.7)), order=2)
    v = rng.uniform(0.3, 2.0, (4, 6)) * rng.choice([-1.0, 1.0], (4, 6))
    check_grads(lambda c, u, v: st.advect2d(c, u, v, dx=(0.5, 0.25), bc=bc), (c, u, v))


def test_upwind_velocity_gradient_at_zero_is_the_centred_difference():
    c = rng.standard_normal(6)
    g = dk.grad(lambda u: dnp.sum(st.upwind(c, u)))(np.zeros(6))
    np.testing.assert_allclose(g, st.gradient(c))


def test_advect2d_is_two_upwinds():
    c, u, v = rng.standard_normal((3, 5, 6))
    want = st.upwind(c, u, axis=0, dx=0.5) + st.upwind(c, v, axis=1, dx=0.25)
    np.testing.assert_allclose(st.advect2d(c, u, v, dx=(0.5, 0.25)), want)


def test_a_stencil_vjp_is_one_tape_node_per_call():
    x = rng.standard_normal((16, 16))
    f = lambda x: dnp.sum(st.laplace2d(st.laplace2d(x)) * x)
    g = dk.grad(f)(x)
    np.testing.assert_allclose(g, 2 * st.laplace2d(st.laplace2d(x)), rtol=1e-10)
    big = rng.standard_normal((64, 64))
    _, f_vjp = dk.vjp(lambda x: st.laplace2d(x), big)
    # linear: the tape keeps no array, only ~2 KB of bookkeeping
    assert f_vjp.tape.nbytes() < big.nbytes // 8


def test_heat_step_under_checkpointed_loop_matches_store_all():
    x0 = rng.standard_normal((12, 12))

    def step(x, i, kappa):
        return x + 0.1 * kappa * st.laplace2d(x, bc="dirichlet")

    def loss(x0, kappa, loop):
        return dnp.sum(loop(step, x0, 30, (kappa,)) ** 2)

    plain = lambda s, x, n, a: _plain_loop(s, x, n, a)
    want = dk.grad(loss, argnums=(0, 1))(x0, 0.9, plain)
    got = dk.grad(loss, argnums=(0, 1))(x0, 0.9, dk.checkpoint.loop)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


def _plain_loop(step, x, n, args):
    for i in range(n):
        x = step(x, i, *args)
    return x


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_torch_kernels_match_numpy():
    import torch

    c, u, v = rng.standard_normal((3, 5, 6))
    t = [torch.as_tensor(a) for a in (c, u, v)]
    pairs = [
        (st.laplace2d(c, 0.5, "dirichlet"), st.laplace2d(t[0], 0.5, "dirichlet")),
        (st.laplace1d(c), st.laplace1d(t[0])),
        (st.gradient(c, 0), st.gradient(t[0], 0)),
        (st.advect2d(c, u, v, bc="dirichlet"), st.advect2d(*t, bc="dirichlet")),
    ]
    for want, got in pairs:
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    g = dk.grad(lambda x: dnp.sum(st.upwind(x, t[1]) ** 2))(t[0])
    want = dk.grad(lambda x: dnp.sum(st.upwind(x, u) ** 2))(c)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-12)


def test_cli_check_stencil(capsys):
    assert cli_main(["check", "stencil"]) == 0
    assert "9 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("call,match", [
    (lambda: st.laplace2d(np.ones(4)), r"laplace2d needs an array with at least 2"),
    (lambda: st.laplace1d(np.ones(4), bc="neumann"), r"bc must be 'periodic' or 'dirichlet'"),
    (lambda: st.laplace2d(np.ones((3, 3)), dx=(1.0,)), r"dx has 1 spacings for 2 axes"),
    (lambda: st.laplace(np.ones((2, 2, 2, 2))), r"laplace takes 1D to 3D arrays"),
    (lambda: st.gradient(np.ones(4), axis=1), r"axis 1 is out of bounds .* shape \(4,\)"),
    (lambda: st.diff(np.ones(4), side="central"), r"side must be 'forward' or 'backward'"),
    (lambda: st.upwind(np.ones(4), np.ones(5)), r"velocity u of shape \(5,\) does not broadcast"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
