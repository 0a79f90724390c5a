"""The memory promise of checkpointed loops: the measured peak stays within the budget, the
report counts the bytes actually held, and a step that outgrows its plan is refused.

tracemalloc sees NumPy's arrays but not torch's CPU tensors: on torch the tests check the
loop's own exact accounting (`last_report().peak_held`, from `tree_nbytes` and
`tape.nbytes()` as snapshots and tapes come and go) instead of a traced peak.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.core.reverse import VJPTrace
from diffkit.errors import BudgetError

STATE = np.sin(np.linspace(0.0, 6.0, 1000))  # 8 KB: the state


def heat(u, i, r):
    return u + r * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))


def burgers(u, i, nu):
    lap = dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)
    flux = 0.5 * u * u
    return u + nu * lap - 0.05 * (dnp.roll(flux, -1) - dnp.roll(flux, 1))


def traced_peak(fn, warmup: int = 2) -> int:
    """tracemalloc peak of `fn()` once warm: run under tracing `warmup` times first, so
    that what CPython allocates once (code caches, free lists) is not charged to it."""
    tracemalloc.start()
    try:
        for _ in range(warmup):
            fn()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("step, states", [
    (heat, 18), (heat, 24), (heat, 40),
    pytest.param(burgers, 18, marks=pytest.mark.slow),  # ~20000 advances, three times
    (burgers, 24), (burgers, 40),
])
def test_whole_gradient_peak_stays_within_tight_budgets(step, states):
    """The whole `grad` call (snapshots, tapes, cotangents, the measurement step, the
    schedule) stays within budget.memory: it was 1.12-1.19x over with an 8 KB state."""
    budget = {"budget": {"memory": states * STATE.nbytes}}

    def run():
        J = lambda u, a: dnp.sum(dk.checkpoint.loop(step, u, 200, (a,), budget=budget))
        return dk.grad(J, argnums=(0, 1))(STATE, 0.1)

    peak = traced_peak(run)
    rep = dk.checkpoint.last_report()
    assert type(rep.plan.schedule).__name__ != "StoreAll"
    assert rep.advances > 200  # recomputation happened
    assert peak <= budget["budget"]["memory"], (peak, rep.plan.peak_bytes)
    assert rep.peak_bytes <= rep.plan.peak_bytes <= budget["budget"]["memory"]


def _step_keeping_more_at_0(x, i):
    """Keeps x for its VJP at step 0 only (x * x); later steps keep nothing (x * 2)."""
    return x * x if i == 0 else x * 2.0


def test_report_counts_the_bytes_held_not_the_plan(to_backend):
    """Store-all keeps every tape: done = step 0's tape + (n - 1) smaller ones, counted
    exactly, where the plan assumed n tapes of step 0's size."""
    x0, n = to_backend(np.linspace(0.5, 1.0, 4096)), 30
    J = lambda x: dnp.sum(dk.checkpoint.loop(_step_keeping_more_at_0, x, n,  # eager tapes
                                             budget={"budget": {"memory": "1GiB"}},
                                             compile=False))
    dk.grad(J)(x0)
    rep = dk.checkpoint.last_report()
    assert type(rep.plan.schedule).__name__ == "StoreAll"

    def tape_bytes(i):
        trace = VJPTrace()
        out = _step_keeping_more_at_0(trace.leaf(x0), i)
        assert out is not None
        return trace.nbytes()

    assert rep.peak_held == tape_bytes(0) + (n - 1) * tape_bytes(1)
    assert rep.peak_held < rep.plan.peak_bytes - rep.reverse_bytes == n * tape_bytes(0)
    assert rep.held_bytes == 0  # every tape released by the end
    assert "peak snapshots + tapes" in str(rep)


def test_snapshot_bytes_are_counted_as_saved_and_discarded(to_backend):
    u0 = to_backend(STATE)
    budget = {"budget": {"memory": 24 * STATE.nbytes}, "schedule": "revolve"}
    dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(heat, u, 200, (0.25,), budget=budget)))(u0)
    rep = dk.checkpoint.last_report()
    slots = rep.peak_snapshots["ram"]
    assert slots == rep.plan.slots["ram"] > 1
    # at the deepest point every slot holds a state while one step's tape is reversed (the
    # slot of state 0 holds the caller's u0: no new bytes)
    assert rep.peak_held == (slots - 1) * rep.state_bytes + rep.work_bytes
    assert rep.held_bytes == 0
    assert rep.peak_bytes <= budget["budget"]["memory"]


def _doubling(u, i):
    return dnp.concatenate([u, u])


def test_a_growing_state_is_refused_naming_the_step_and_sizes(to_backend):
    """1024x in 10 steps under 64 KiB reached 48 MB while the report said 65 KB."""
    u0 = to_backend(np.ones(64))
    budget = {"budget": {"memory": "64KiB"}}
    with pytest.raises(BudgetError, match=r"larger state at step 0: 1,216 bytes where state0 "
                                          r"has 704.*keep the state's shapes fixed"):
        dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(_doubling, u, 10, budget=budget)))(u0)
    with pytest.raises(BudgetError, match="larger state at step 0"):
        dk.grad(lambda u: dnp.sum(dk.checkpoint.while_loop(
            lambda u, i: i < 10, _doubling, u, budget=budget)))(u0)


def test_a_state_growing_later_in_the_forward_sweep_is_refused(to_backend):
    def step(u, i):
        return dnp.concatenate([u, u[:1]]) if i == 7 else u * 0.5

    with pytest.raises(BudgetError, match="larger state at step 7"):
        dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(step, u, 20, budget={
            "budget": {"memory": "256KiB"}, "schedule": "revolve"})))(to_backend(np.ones(64)))


def test_a_tape_outgrowing_step_0s_is_planned_again(to_backend):
    """Later steps keeping more than step 0 (an observation every k steps) make the forward
    sweep start again with a plan for the larger tape: same gradient, within the budget."""
    x0 = to_backend(np.linspace(0.5, 1.0, 4096))

    def step(x, i, a):
        return a * (x * 0.5 if i == 0 else x * x)

    def J(x, budget):
        return dnp.sum(dk.checkpoint.loop(step, x, 30, (1.0,), budget=budget))

    want = dk.grad(J)(x0, {"budget": {"memory": "1GiB"}})
    need = dk.checkpoint.last_report().plan.peak_bytes  # store-all with step 0's small tapes
    got = dk.grad(J)(x0, {"budget": {"memory": need}})
    report = dk.checkpoint.last_report()
    assert report.replans == 1 and "re-planned" in str(report)
    assert report.peak_bytes <= need
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


def test_a_tape_growing_with_every_step_is_refused_naming_the_step(to_backend):
    """A tape that keeps growing with i cannot be planned for: an error naming the step,
    never a silent excess."""
    x0 = to_backend(np.linspace(0.5, 1.0, 4096))

    def step(x, i, a):
        for _ in range(i // 5):
            x = x * a  # keeps x for the derivative in a: the tape grows by a state
        return x * 0.5

    def J(x, a, budget):
        return dnp.sum(dk.checkpoint.loop(step, x, 30, (a,), budget=budget))

    dk.grad(J, argnums=(0, 1))(x0, 1.0, {"budget": {"memory": "1GiB"}})
    need = dk.checkpoint.last_report().plan.peak_bytes  # store-all with step 0's tapes
    with pytest.raises(BudgetError, match=r"step \d+('s tape keeps [\d,]+ bytes, more than the "
                                          r"step tape measured on step 0| took a new branch "
                                          r"whose programs need a [\d,]+-byte working set).*"
                                          r"does more work at some i"):
        dk.grad(J, argnums=(0, 1))(x0, 1.0, {"budget": {"memory": need * 6 // 10}})


def burgers_2d(u, i, nu):
    """u_t + u u_x + u u_y = nu (u_xx + u_yy), periodic, explicit Euler (benchmarks/)."""
    dx, dt = 2 * np.pi / u.shape[0], 1e-4
    ux = (dnp.roll(u, -1, axis=1) - dnp.roll(u, 1, axis=1)) / (2 * dx)
    uy = (dnp.roll(u, -1, axis=0) - dnp.roll(u, 1, axis=0)) / (2 * dx)
    lap = (dnp.roll(u, -1, axis=0) + dnp.roll(u, 1, axis=0) + dnp.roll(u, -1, axis=1)
           + dnp.roll(u, 1, axis=1) - 4 * u) / dx**2
    return u + dt * (nu * lap - u * ux - u * uy)


def test_2d_burgers_step_plans_with_its_live_cotangents_not_all_of_them():
    """One taped 2-D step has 25 traced values; the plan counted a cotangent for each (28
    states of working set). Replaying the backward pass's order bounds the cotangents alive
    at once by 8 states (tracemalloc: 6), and the plan's minimum by ~20 states."""
    u0 = np.random.default_rng(0).standard_normal((128, 128))
    state = u0.nbytes + 112
    trace = VJPTrace()
    burgers_2d(trace.leaf(u0), 0, 0.01)
    assert trace.cotangent_nbytes() <= 8.05 * state
    assert trace.nbytes() <= 3.2 * state  # u, u_x, u_y (what the products read) + nodes

    J = lambda u, b: dnp.sum(dk.checkpoint.loop(burgers_2d, u, 20, (0.01,), budget=b))
    dk.grad(J)(u0, {"budget": {"memory": 20 * state}})
    assert type(dk.checkpoint.last_report().plan.schedule).__name__ in ("Revolve", "Mixed")
