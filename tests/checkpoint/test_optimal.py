"""Optimal (the exact multi-tier dynamic programme) against an exhaustive search, the two-level
reference of benchmarks/two_level_reference.py, and every other schedule."""

from __future__ import annotations

import heapq
import importlib.util
import sys
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import MultiLevel, Revolve, StepCosts, Tier, validate
from diffkit.checkpoint.optimal import Optimal, feasible
from diffkit.errors import ScheduleError

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "two_level_reference.py"
_spec = importlib.util.spec_from_file_location("two_level_reference", _PATH)
ref = sys.modules["two_level_reference"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def exhaustive(n: int, tiers: list[Tier], forward: float = 1.0) -> float:
    """Dijkstra over (current, held states per tier, steps left): every action sequence of
    the model (any order of saves, loads, discards and advances), without the VJP terms."""
    start = (0, tuple(frozenset() for _ in tiers), n)
    dist, tie, heap = {start: 0.0}, count(), [(0.0, 0, start)]
    while heap:
        d0, _, s = heapq.heappop(heap)
        if d0 > dist[s]:
            continue
        cur, held, k = s
        if k == 0:
            return d0
        moves = []
        if cur is not None and cur < k - 1:
            moves.append(((cur + 1, held, k), forward))
        if cur == k - 1:  # tape and reverse step k - 1; its stored copies are of no more use
            moves.append(((None, tuple(h - {cur} for h in held), k - 1), forward))
        for i, (t, h) in enumerate(zip(tiers, held, strict=True)):
            if cur is not None and cur not in h and len(h) < t.slots:
                moves.append(((cur, _swap(held, i, h | {cur}), k), t.write))
            for x in h:
                if x != cur:
                    moves.append(((x, held, k), t.read))
                moves.append(((cur, _swap(held, i, h - {x}), k), 0.0))
        for state, cost in moves:
            if d0 + cost < dist.get(state, float("inf")) - 1e-12:
                dist[state] = d0 + cost
                heapq.heappush(heap, (d0 + cost, next(tie), state))
    raise AssertionError("unreachable")


def _swap(held: tuple, i: int, new: frozenset) -> tuple:
    return held[:i] + (new,) + held[i + 1:]


def _check(opt: Optimal, n: int) -> None:
    """The stream replays within the slots, and its counts are the predicted time."""
    s = validate(opt, n)
    cost = opt.costs.forward * s.forward_advances + opt.costs.reverse * n + sum(
        t.write * s.saves.get(t.name, 0) + t.read * s.loads.get(t.name, 0) for t in opt.tiers)
    assert cost == pytest.approx(opt.predicted.time) == pytest.approx(opt.optimum)
    assert s.forward_advances == opt.predicted.forward_advances
    assert all(s.peak.get(t.name, 0) <= t.slots for t in opt.tiers)


cost = st.sampled_from([0.0, 0.3, 1.0, 2.5, 4.0])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), ram=st.integers(1, 2), disk=st.integers(0, 3),
       ram_costs=st.tuples(cost, cost), w=cost, r=cost)
def test_two_tiers_equal_exhaustive_search(n, ram, disk, ram_costs, w, r):
    tiers = [Tier("ram", ram, *ram_costs), Tier("disk", disk, w, r)]
    opt = Optimal(n, tiers, StepCosts(1.0, 0.0))
    assert opt.predicted.time == pytest.approx(exhaustive(n, tiers))
    _check(opt, n)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 5), slots=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       w=st.tuples(cost, cost), r=st.tuples(cost, cost))
def test_three_tiers_equal_exhaustive_search(n, slots, w, r):
    tiers = [Tier("gpu", 1), Tier("host", slots[0], w[0], r[0]),
             Tier("disk", slots[1], w[1], r[1])]
    opt = Optimal(n, tiers, StepCosts(1.0, 0.0))
    assert opt.predicted.time == pytest.approx(exhaustive(n, tiers))
    _check(opt, n)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 200), ram=st.integers(1, 4), disk=st.sampled_from([None, 0, 1, 2, 9]),
       w=cost, r=cost, reverse=st.sampled_from([1.0, 2.0]))
def test_two_tiers_equal_the_reference_dp(n, ram, disk, w, r, reverse):
    want = ref.optimal_time(n, ram, w, r, 1.0, reverse, disk)
    tiers = [Tier("ram", ram), Tier("disk", n if disk is None else disk, w, r)]
    opt = Optimal(n, tiers, StepCosts(1.0, reverse))
    assert opt.predicted.time == pytest.approx(want)
    _check(opt, n)
    for other in (MultiLevel(n, tiers, StepCosts(1.0, reverse)) if disk else None,
                  Revolve(n, ram)):
        if other is not None:
            t = other.predicted
            time = t.forward_advances + reverse * n + w * getattr(t, "writes", {}).get(
                "disk", 0) + r * getattr(t, "reads", {}).get("disk", 0)
            assert time >= opt.predicted.time - 1e-9


def test_issue_reproducer_beats_multilevel():
    """n=8, one RAM slot, two disk slots, w=4, r=0.3: MultiLevel 36.3, the optimum 34.6."""
    tiers = [Tier("ram", 1), Tier("disk", 2, 4.0, 0.3)]
    costs = StepCosts(1.0, 1.0)
    assert MultiLevel(8, tiers, costs).predicted.time == pytest.approx(36.3)
    opt = Optimal(8, tiers, costs)
    assert opt.predicted.time == pytest.approx(34.6)
    _check(opt, 8)


def test_no_usable_tier_and_bad_tiers():
    with pytest.raises(ScheduleError, match="no schedule reverses 3 steps"):
        Optimal(3, [Tier("ram", 0), Tier("disk", 0, 1.0, 1.0)])
    assert Optimal(1, [Tier("ram", 0)]).predicted.forward_advances == 1
    with pytest.raises(ScheduleError, match="distinct names"):
        Optimal(3, [Tier("ram", 1), Tier("ram", 2)])
    with pytest.raises(ScheduleError, match="tier 'disk' has slots=-1"):
        Optimal(3, [Tier("ram", 1), Tier("disk", -1)])
    with pytest.raises(ScheduleError, match="tier 'disk' costs write=inf"):
        Optimal(3, [Tier("ram", 1), Tier("disk", 1, float("inf"))])
    with pytest.raises(ScheduleError, match="n_steps >= 1"):
        Optimal(0, [Tier("ram", 1)])


def test_feasible_bounds_the_planning_work():
    assert feasible(200, [Tier("ram", 5), Tier("disk", 10**6, 1.0, 1.0)])
    assert not feasible(2000, [Tier("ram", 5), Tier("disk", 10**6, 1.0, 1.0)])
    assert not feasible(40, [Tier(f"t{i}", 40) for i in range(5)])
