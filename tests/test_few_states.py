"""A 2-D stencil loop differentiated in a budget of 4 states (issue 15), everything the loop
allocates counted and checked against the tracemalloc peak: the step is traced by shapes, its
programs fused (numba) with the backward recomputing the residuals, the reverse sweep holds
neither the loop's output nor its incoming cotangent, and state 0's snapshot is the caller's
u0. Default settings: 'auto' compiles, and fuses because the budget needs it."""

from __future__ import annotations

import importlib.util
import weakref

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.planner import plan
from diffkit.errors import BudgetError
from tests.test_compiled_memory import burgers2d  # benchmarks/bench_compiled.py's step
from tests.test_compiled_memory import measured_peak as measured

needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                 reason="fusion needs numba")
SIZE, STEPS, NU = 256, 16, 0.01
G = np.arange(SIZE) / SIZE
U0 = 0.5 * np.sin(2 * np.pi * G)[:, None] * np.cos(2 * np.pi * G)[None, :] + 0.2


def grad(states: float, compile="auto"):
    budget = {"budget": {"memory": int(states * U0.nbytes)}}

    def J(u0, nu):
        return dnp.sum(dk.checkpoint.loop(burgers2d, u0, STEPS, (nu,), budget,
                                          compile=compile))

    return lambda: dk.grad(J, argnums=(0, 1))(U0, NU)


@needs_numba
def test_a_2d_burgers_gradient_runs_in_4_states_within_its_measured_peak():
    peak, got = measured(grad(4))
    rep = dk.checkpoint.last_report()
    assert rep.compiled.startswith("compiled") and rep.compiled.endswith("fused")
    assert repr(rep.plan.schedule) == f"Revolve(n_steps={STEPS}, snapshots=1, tier='ram')"
    assert rep.work_bytes < 1.01 * U0.nbytes  # the tape: the state alone
    assert peak <= 4 * U0.nbytes, peak / U0.nbytes
    assert rep.plan.peak_bytes <= 4 * U0.nbytes
    want = grad(1000, compile=False)()
    scale = max(float(np.max(np.abs(w))) for w in want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * scale)


def test_unfused_programs_need_more_and_say_how_much():
    with dk.checkpoint.fuse_steps(False), pytest.raises(
            BudgetError, match=r"cannot hold one saved state plus one step's working set: at "
                               r"least [\d,]+ bytes"):
        grad(4)()


def test_the_loop_output_is_not_held_by_the_reverse_sweep(to_backend):
    """The loop's tape node keeps zero-memory stand-ins of its output: once the caller's
    loss has used it, the output is freed before the sweep reverses the steps."""
    seen = {}

    def step(u, i, nu):
        if "out" in seen:  # a step run by the reverse sweep (taped, or recomputed)
            seen.setdefault("alive", seen["out"]() is not None)
        return burgers2d(u, i, nu)

    def J(u0, nu):
        u = dk.checkpoint.loop(step, u0, 6, (nu,), {"budget": {"memory": "1GiB"},
                                                    "schedule": "revolve"}, compile=False)
        seen["out"] = weakref.ref(u.primal)
        return dnp.sum(u * 1.5)

    dk.grad(J, argnums=(0, 1))(to_backend(U0), NU)
    assert seen["alive"] is False


def test_a_plan_counts_no_bytes_for_the_callers_state0():
    """Revolve with one slot (state 0's, the caller's) needs a tape and the working set."""
    state, tape, work = 1000, 1000, 2000
    with pytest.raises(BudgetError, match="cannot hold one saved state"):
        plan(10, state, {"budget": {"memory": tape + work - 1}}, tape, work, state0_held=True)
    p = plan(10, state, {"budget": {"memory": tape + work}}, tape, work, state0_held=True)
    assert p.slots == {"ram": 1} and p.peak_bytes == tape + work
    assert plan(10, state, {"budget": {"memory": tape + work + state}}, tape,
                work).peak_bytes == state + tape + work
