"""Mixed (tapes or states): every schedule replays under `validate` within its bytes, its
advance count is the exhaustive optimum on tiny loops, never above Revolve's with the same
bytes, and a loop run with `schedule: mixed` gives store-all's gradient within its budget."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import Revolve, validate
from diffkit.checkpoint.actions import Advance, Discard, Forward, Load, Reverse, Save
from diffkit.checkpoint.budget import load_budget
from diffkit.checkpoint.mixed import Mixed, units
from diffkit.checkpoint.planner import candidates, plan
from diffkit.errors import BudgetError, ScheduleError


def exhaustive(n: int, s: int, t: int, memory: int) -> float:
    """The least forward advances of any action sequence (Dijkstra over every machine
    configuration: current state, states saved, tapes kept, next step to reverse), where
    RAM states (s bytes) and kept tapes (t bytes), plus the tape a tape-less Reverse makes,
    never exceed `memory`."""
    start = (0, frozenset(), frozenset(), n - 1)
    best, heap = {start: 0}, [(0, 0, start)]
    tie = 0
    while heap:
        cost, _, node = heapq.heappop(heap)
        if cost > best[node]:
            continue
        cur, saved, taped, nxt = node
        if nxt < 0:
            return cost
        held = len(saved) * s + len(taped) * t
        moves = [(0, (None, saved, taped, nxt - 1))] if nxt in taped else []
        if cur is not None and cur < n:
            moves.append((1, (cur + 1, saved, taped, nxt)))  # advance one step
            if cur not in saved and held + s <= memory:
                moves.append((0, (cur, saved | {cur}, taped, nxt)))
            if cur not in taped and held + t <= memory:
                moves.append((1, (cur + 1, saved, taped | {cur}, nxt)))
        if cur == nxt and nxt not in taped and held + t <= memory:
            moves.append((1, (None, saved, taped, nxt - 1)))  # tape and reverse at once
        moves += [(0, (x, saved, taped, nxt)) for x in saved]
        moves += [(0, (cur, saved - {x}, taped, nxt)) for x in saved]
        for c, nd in moves:
            nd = (nd[0], nd[1], nd[2] & frozenset(range(nd[3] + 1)), nd[3])  # done tapes go
            if cost + c < best.get(nd, float("inf")):
                best[nd] = cost + c
                tie += 1
                heapq.heappush(heap, (cost + c, tie, nd))
    return float("inf")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), s=st.integers(1, 4), t=st.integers(1, 4), extra=st.integers(0, 9))
def test_mixed_is_the_exhaustive_optimum_on_tiny_loops(n, s, t, extra):
    memory = s + t + extra
    mixed = Mixed(n, s, t, memory)
    assert mixed.predicted.forward_advances == exhaustive(n, s, t, memory)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120), s=st.integers(1, 5), t=st.integers(1, 12),
       extra=st.integers(0, 40))
def test_every_schedule_replays_within_its_bytes_as_predicted(n, s, t, extra):
    memory = s + t + extra
    mixed = Mixed(n, s, t, memory)
    got = validate(mixed, n, memory=memory)  # also within the peak it claims (the default)
    assert validate(mixed, n).peak_bytes == mixed.peak_bytes <= memory
    assert got.forward_advances == mixed.predicted.forward_advances
    assert got.saves == mixed.predicted.writes and got.loads == mixed.predicted.reads
    assert got.peak.get("ram", 0) == mixed.slots["ram"] and got.peak_tapes == mixed.tapes
    slots = (memory - t) // s  # Revolve with the same bytes: its slots plus one step's tape
    assert mixed.predicted.forward_advances <= Revolve(n, slots).predicted.forward_advances


@pytest.mark.parametrize("n, state, tape, memory", [
    (60, 4, 13, 25), (300, 3, 13, 25), (100, 1, 7, 13), (40, 5, 9, 17)])
def test_a_tape_too_large_to_keep_gives_revolve(n, state, tape, memory):
    """With no room to keep a tape beside the one being made (tape > memory - tape), no
    tape is kept (but the last step's, taped on the forward sweep) and the count is
    Revolve's with the planner's slots: (memory - tape) // state."""
    mixed = Mixed(n, state, tape, memory)
    assert not any(isinstance(a, Forward) and a.step != n - 1 for a in mixed.actions())
    slots = (memory - tape) // state
    assert mixed.predicted.forward_advances == Revolve(n, slots).predicted.forward_advances


def test_tapes_cut_advances_against_revolve():
    """A tape the size of a state saves recomputation: n=1000, 12 states of memory."""
    mixed, revolve = Mixed(1000, 100, 100, 1200), Revolve(1000, 11)
    assert mixed.predicted.forward_advances == 3730 < revolve.predicted.forward_advances == 4545


def test_units_round_sizes_up_and_memory_down():
    assert units(8, 24, 100) == (8, 1, 3, 12)  # exact: gcd
    unit, s, t, m = units(1000, 1377, 10_000)  # gcd 1: ~RESOLUTION units a tape
    assert unit == 44 and s * unit >= 1000 and t * unit >= 1377 and m * unit <= 10_000


def test_bad_arguments_are_refused():
    with pytest.raises(ScheduleError, match="n_steps >= 1"):
        Mixed(0, 1, 1, 4)
    with pytest.raises(ScheduleError, match="state_bytes and tape_bytes >= 1"):
        Mixed(3, 0, 1, 4)
    with pytest.raises(ScheduleError, match="at least one state plus one tape"):
        Mixed(5, 4, 4, 7)


def test_validate_refuses_a_schedule_over_its_bytes():
    acts = [Save(0), Forward(0), Reverse(1), Reverse(0), Discard(0)]
    with pytest.raises(ScheduleError, match=r"action #2 Reverse\(1\): 1 RAM states of 4 bytes "
                                            r"and 2 tapes of 3 bytes hold 10 bytes, more than "
                                            r"the 9 allowed"):
        validate(acts, 2, sizes=(4, 3), memory=9)
    assert validate(acts, 2, sizes=(4, 3)).peak_bytes == 10
    assert validate([Save(0), Advance(0, 1), Reverse(1), Load(0), Reverse(0), Discard(0)],
                    2).peak_bytes is None


STATE = np.sin(np.linspace(0.0, 6.0, 1000))  # 8 KB


def heat(u, i, r):
    return u + r * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))


def _loss(budget, n=120):
    return lambda u, r: dnp.sum(dk.checkpoint.loop(heat, u, n, (r,), budget=budget) ** 2)


@pytest.mark.parametrize("compile", [False, None])
def test_loop_with_schedule_mixed_gives_store_all_gradient_as_predicted(to_backend, compile):
    budget = {"budget": {"memory": 24 * STATE.nbytes}, "schedule": "mixed"}
    u0 = to_backend(STATE)
    want = dk.grad(_loss({"budget": {"memory": "64MiB"}, "schedule": "store_all"}),
                   argnums=(0, 1))(u0, 0.1)
    J = lambda u, r: dnp.sum(dk.checkpoint.loop(heat, u, 120, (r,), budget=budget,  # noqa: E731
                                                 compile=compile) ** 2)
    got = dk.grad(J, argnums=(0, 1))(u0, 0.1)
    rep = dk.checkpoint.last_report()
    sched = rep.plan.schedule
    assert isinstance(sched, Mixed)
    assert any(isinstance(a, Forward) and a.step < 119 for a in sched.actions())  # tapes kept
    assert rep.advances == rep.plan.forward_advances > 120 and rep.reversed == 120
    assert rep.peak_bytes <= rep.plan.peak_bytes <= budget["budget"]["memory"]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)


def test_scan_with_schedule_mixed_gives_store_all_gradient(to_backend):
    """A scan's step outputs y_i are made again by the tapes Mixed takes in the reverse
    sweep: the gradient through carry, xs, args and ys is store-all's."""
    def step(u, x, i, r):
        u = heat(u, i, r) + 0.01 * x
        return u, dnp.sum(u * u) * x

    def loss(budget):
        def f(u, xs, r):
            c, ys = dk.checkpoint.scan(step, u, xs, (r,), budget=budget)
            return dnp.sum(c ** 2) + dnp.sum(ys)
        return f

    u0, xs = to_backend(STATE), to_backend(np.cos(np.linspace(0.0, 3.0, 80)))
    want = dk.grad(loss({"budget": {"memory": "64MiB"}, "schedule": "store_all"}),
                   argnums=(0, 1, 2))(u0, xs, 0.1)
    got = dk.grad(loss({"budget": {"memory": 24 * STATE.nbytes}, "schedule": "mixed"}),
                  argnums=(0, 1, 2))(u0, xs, 0.1)
    rep = dk.checkpoint.last_report()
    assert isinstance(rep.plan.schedule, Mixed) and rep.advances == rep.plan.forward_advances
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)


def test_loop_with_schedule_mixed_stays_within_the_budget_traced():
    """The whole gradient (snapshots, kept tapes, cotangents, the schedule's choices, and
    planning: the DP's tables, not cached here) stays within budget.memory as tracemalloc
    sees it (NumPy; see tests/test_loop_memory.py). Planning at 32 units a state took
    ~500 KB of tables here: it plans at 8 units instead."""
    import tracemalloc

    from diffkit.checkpoint.mixed import _solve

    budget = {"budget": {"memory": 24 * STATE.nbytes}, "schedule": "mixed"}
    run = lambda: dk.grad(_loss(budget), argnums=(0, 1))(STATE, 0.1)  # noqa: E731
    tracemalloc.start()
    try:
        run(), run()
        _solve.cache_clear()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    rep = dk.checkpoint.last_report()
    assert isinstance(rep.plan.schedule, Mixed)
    assert peak <= budget["budget"]["memory"], (peak, rep.plan.peak_bytes)


def test_auto_runs_mixed_on_a_loop_where_it_beats_revolve():
    """Heat, 120 steps, 24 states of memory, tapes of ~1.6 states: auto runs Mixed (322
    advances measured, as predicted) where Revolve would run 402."""
    def run(schedule):
        budget = {"budget": {"memory": 24 * STATE.nbytes}, "schedule": schedule}
        dk.grad(_loss(budget), argnums=(0, 1))(STATE, 0.1)
        return dk.checkpoint.last_report()

    auto, revolve = run("auto"), run("revolve")
    assert isinstance(auto.plan.schedule, Mixed)
    assert auto.advances == auto.plan.forward_advances < revolve.advances
    assert auto.plan.time < revolve.plan.time


def test_planner_offers_mixed_and_auto_takes_it_when_faster():
    state, tape = 8 * 2**20, 8 * 2**20
    budget = load_budget({"budget": {"memory": "100MiB"}})
    options = candidates(1000, state, budget, tape)
    assert options["mixed"].forward_advances == 3730 < options["revolve"].forward_advances
    assert options["mixed"].peak_bytes <= budget.memory
    assert isinstance(plan(1000, state, budget, tape).schedule, Mixed)
    # a tape that cannot be kept beside the one being made: Mixed ties Revolve, which wins
    assert type(plan(1000, state, budget, 60 * 2**20).schedule).__name__ == "Revolve"
    # store-all fits: Mixed is not even planned
    assert "mixed" not in candidates(10, state, budget, tape)


def test_planner_rounds_odd_sizes_to_coarser_units_to_stay_fast():
    """A tape of 8 MiB + 1234 bytes has no useful gcd with the state: 32 units a state would
    make the DP too large at 400 MiB, so the planner solves it with 2 units a state (sizes
    rounded up, never over the budget) and finds the exact 8 MiB plan's count."""
    state, budget = 8 * 2**20, load_budget({"budget": {"memory": "400MiB"}})
    exact = candidates(1000, state, budget, state)["mixed"]
    odd = candidates(1000, state, budget, state + 1234)["mixed"]
    assert odd.schedule.unit > 2**20 and odd.forward_advances == exact.forward_advances == 1979
    assert validate(odd.schedule, 1000).peak_bytes + odd.schedule.nbytes <= budget.memory


def test_schedule_mixed_is_validated_and_refused_when_too_large():
    with pytest.raises(BudgetError, match=r"schedule 'bogus' is unknown; accepted: .*mixed"):
        load_budget({"budget": {"memory": "1GiB"}, "schedule": "bogus"})
    budget = {"budget": {"memory": "1GiB"}, "schedule": "mixed"}
    with pytest.raises(BudgetError, match=r"schedule 'mixed' does not fit: its dynamic "
                                          r"programme over 100,000 steps.* too large to plan"):
        plan(100_000, 8 * 2**20, budget, 8 * 2**20)
    with pytest.raises(BudgetError, match="the number of steps is unknown"):
        plan(None, 8 * 2**20, budget, 8 * 2**20)
