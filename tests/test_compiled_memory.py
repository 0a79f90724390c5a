"""Memory of compiled loop steps (issue 15): tracing is charged only when it happens, a guard's
new outcome mid-sweep whose programs need more re-plans the sweep, the programs hold fewer bytes
than the eager tape, nothing of a trace outlives it, and every promise is checked against the
tracemalloc peak, never against the plan's own figure. The loss is `sum(u)`, which allocates
nothing state-sized but its cotangent: the peak is the loop's (and the u0 the call makes)."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.compiled import _MeasuredTrace
from diffkit.core.program import Eqn
from diffkit.core.program_passes import order_for_memory, peak_bytes
from diffkit.testing import to_numpy

SIZE, STEPS = 192, 12
NU, DT = 0.01, 1e-5


def burgers2d(u, i, nu):
    """2-D viscous Burgers on a periodic unit square (benchmarks/bench_compiled.py's step)."""
    h = 1.0 / u.shape[0]
    ux, uy = dnp.roll(u, -1, 0), dnp.roll(u, -1, 1)
    vx, vy = dnp.roll(u, 1, 0), dnp.roll(u, 1, 1)
    lap = (ux + vx + uy + vy - 4 * u) / (h * h)
    adv = u * ((ux - vx) + (uy - vy)) / (2 * h)
    return u + DT * (nu * lap - adv)


def late_branch(u, i, nu):
    """A branch first taken at step 7: a second program, traced mid-sweep."""
    v = burgers2d(u, i, nu)
    if i >= 7:
        return v * 0.999
    return v


def initial():
    g = np.arange(SIZE) / SIZE
    return 0.5 * np.sin(2 * np.pi * g)[:, None] * np.cos(2 * np.pi * g)[None, :] + 0.2


def late_value_branch(u, i, nu):
    """A branch decided on a value, first taken at step 7: its trace needs values."""
    v = burgers2d(u, i, nu)
    if i >= 7 and dnp.max(v) > 0:
        return v * 0.999
    return v


def grad(step, budget, compile):
    def J(u0, nu):
        return dnp.sum(dk.checkpoint.loop(step, u0, STEPS, (nu,), budget, compile=compile))

    return lambda: dk.grad(J, argnums=(0, 1))(initial(), NU)


def measured_peak(f) -> int:
    f()  # warm: imports and caches are not the loop's
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        got = f()
        return tracemalloc.get_traced_memory()[1] - base, got
    finally:
        tracemalloc.stop()


def states(k: float) -> dict:
    return {"budget": {"memory": int(k * initial().nbytes)}}


def check_gradient(got, step):
    want = grad(step, {"budget": {"memory": "1GiB"}}, False)()
    scale = max(float(np.max(np.abs(w))) for w in want)  # d/dnu nearly cancels (a sum of
    for g, w in zip(got, want, strict=True):  # terms of both signs): judged on u0's scale
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * scale)


def test_a_tight_budget_runs_compiled_within_its_measured_peak():
    budget = states(17)  # refused compiled before tracing was charged only when it happens
    peak, got = measured_peak(grad(burgers2d, budget, "auto"))
    rep = dk.checkpoint.last_report()
    assert rep.compiled.startswith("compiled"), rep.compiled
    assert peak <= budget["budget"]["memory"]
    check_gradient(got, burgers2d)


def test_the_compiled_working_set_is_no_larger_than_the_eager_one():
    budget = {**states(17), "schedule": "revolve"}  # too tight for the programs' buffers
    grad(burgers2d, budget, "auto")()
    compiled = dk.checkpoint.last_report()
    grad(burgers2d, budget, False)()
    eager = dk.checkpoint.last_report()
    assert compiled.compiled.startswith("compiled")
    assert compiled.work_bytes < 3.01 * initial().nbytes  # a reversed step keeps its residuals
    assert compiled.reverse_bytes <= eager.reverse_bytes  # tracing is not part of it


def test_a_new_branch_mid_sweep_is_traced_beside_the_snapshots_and_planned_for():
    """Step 7's branch is traced by shapes beside the held snapshots; its programs hold more
    than step 0's, so the sweep is planned again for both branches."""
    budget = {**states(8), "schedule": "revolve"}
    peak, got = measured_peak(grad(late_branch, budget, "auto"))
    rep = dk.checkpoint.last_report()
    assert rep.replans == 1 and rep.compiled.startswith("compiled: 2 program set(s)")
    assert peak <= budget["budget"]["memory"]
    check_gradient(got, late_branch)


@pytest.mark.parametrize("k", [17, 40])
def test_a_new_branch_that_needs_values_to_trace_is_planned_again_within_the_budget(k):
    """Tracing step 7's branch needs its values: beside the snapshots there is no room
    (states(17): the sweep is planned again, eagerly) or there is (40: compiled)."""
    budget = states(k)
    peak, got = measured_peak(grad(late_value_branch, budget, "auto"))
    rep = dk.checkpoint.last_report()
    if k == 17:
        assert rep.replans >= 1 and rep.compiled.startswith("eager (not compiled: tracing it")
    else:
        assert rep.compiled.startswith("compiled: 2 program set(s)")
    assert peak <= budget["budget"]["memory"]
    check_gradient(got, late_value_branch)


def test_nothing_of_a_trace_waits_for_the_cycle_collector():
    """A trace, its values and the programs' buffers are freed by reference counting: a
    cycle would keep them (states of memory) until the next collection."""
    f = grad(late_branch, {"budget": {"memory": "1GiB"}}, "auto")
    f()
    gc.collect()
    gc.disable()
    try:
        f()
        assert not [o for o in gc.get_objects() if type(o) is _MeasuredTrace]
    finally:
        gc.enable()


def test_ordering_for_memory_keeps_every_result_and_lowers_the_peak():
    program = dk.make_program(burgers2d)(initial(), NU, 0)
    program = getattr(program, "program", program)
    ordered = order_for_memory(program)
    assert sorted(map(id, ordered.body)) == sorted(map(id, program.body))
    done = {v.n for v in ordered.ins}
    for e in ordered.body:  # every equation after what it reads
        assert all(v.n in done for v in e.ins if hasattr(v, "n"))
        done.update(o.n for o in e.outs) if type(e) is Eqn else None
    assert peak_bytes(ordered) < peak_bytes(program)


@pytest.mark.parametrize("compile", ["auto", False])
def test_argument_cotangents_are_summed_in_place_without_touching_a_passed_term(
        compile, to_backend):
    """u + k passes the incoming cotangent through as k's term (the same array as u's):
    summing k's terms in place must never write into it."""
    w = to_backend(np.linspace(-1.0, 1.0, 64))

    def J(u0, k):
        u = dk.checkpoint.loop(lambda u, i, k: u + k, u0, 9, (k,),
                               {"budget": {"memory": "1GiB"}, "schedule": "revolve"},
                               compile=compile)
        return dnp.sum(u * w)

    gu, gk = dk.grad(J, argnums=(0, 1))(to_backend(np.zeros(64)), to_backend(np.ones(64)))
    np.testing.assert_array_equal(to_numpy(gu), to_numpy(w))
    np.testing.assert_allclose(to_numpy(gk), 9 * to_numpy(w), rtol=1e-14)
