"""A fused compiled step's backward recomputes the residuals that elementwise equations make
from its inputs (`program_passes.rematerialize`): its tape keeps the state alone, and the
gradients are the unfused programs'."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.compiled import CompiledStep
from diffkit.checkpoint.executor import LoopIO
from diffkit.core import pytree
from diffkit.core.program_passes import rematerialize
from diffkit.core.program_run import compile_program

needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                 reason="fusion needs numba")
U0 = 0.5 * np.sin(np.linspace(0.0, 6.0, 64 * 64)).reshape(64, 64) + 0.2


def burgers(u, i, nu):
    e, w = dnp.roll(u, -1, axis=0), dnp.roll(u, 1, axis=0)
    n, s = dnp.roll(u, -1, axis=1), dnp.roll(u, 1, axis=1)
    lap = (e + w + n + s - 4 * u) * 64.0
    return u + 1e-4 * (nu * lap - u * (e - w + n - s))


def _entry(step, fuse, u=U0):
    with dk.checkpoint.fuse_steps(fuse):
        cs = CompiledStep(LoopIO(), step, pytree.structure(u), pytree.structure((0.01,)), 1,
                          [0, 1], True)
        cs.taped([u, 0.01], 0)
    return cs.entries[0]


def test_the_backward_recomputes_elementwise_residuals_bitwise():
    """On the unfused programs: the same cotangents, bit for bit, from the inputs alone."""
    e = _entry(burgers, False)
    fwd, _, bwd, _ = e.programs
    again = rematerialize(fwd, bwd, e.residuals)
    assert again is not None
    rfwd, rbwd, kept, recomputed = again
    assert {v.n for v in kept} <= {v.n for v in fwd.ins} and len(recomputed) > 5
    index, ct = np.asarray(0), np.cos(U0)
    res = compile_program(fwd)(U0, 0.01, index)[1:]
    want = compile_program(bwd)(*res, ct)
    rres = compile_program(rfwd)(U0, 0.01, index)[1:]
    got = compile_program(rbwd)(*rres, ct)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_residual_made_by_a_reduction_is_kept():
    """Only equations shaped as the residual are recomputed: a sum's result stays kept."""
    def step(u, i, k):
        return u * dnp.sum(u * u) * k

    e = _entry(step, False)
    fwd, _, bwd, _ = e.programs
    again = rematerialize(fwd, bwd, e.residuals)
    kept = {v.describe() for v in (e.residuals if again is None else again[2])}
    assert "float64[]" in kept


@needs_numba
def test_fused_steps_tape_their_state_alone_and_give_the_unfused_gradient():
    fused, plain = _entry(burgers, True), _entry(burgers, False)
    assert fused.kept_nbytes < U0.nbytes + 2048 < 2 * U0.nbytes < plain.kept_nbytes

    def grad(fuse):
        def loss(u0, nu):
            u = dk.checkpoint.loop(burgers, u0, 12, (nu,), {"budget": {"memory": "1GiB"}},
                                   compile=True)
            return dnp.sum(u * u)
        with dk.checkpoint.fuse_steps(fuse):
            return dk.grad(loss, argnums=(0, 1))(U0, 0.01)

    got = grad(True)
    assert dk.checkpoint.last_report().compiled.endswith("fused")
    want = grad(False)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_unfused_steps_keep_their_residuals():
    """Recomputing unfused would cost a temporary per equation in the backward: not done."""
    e = _entry(burgers, False)
    assert e.kept_nbytes > 2 * U0.nbytes
