"""Online checkpointing: offline optimum for n <= C(s+2, 2), within 5% up to C(s+3, 3), valid."""

from __future__ import annotations

from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import Online, Reverse, Save, predict, validate
from diffkit.errors import ScheduleError


@pytest.mark.parametrize("s", [1, 2, 3, 5, 8, 13, 21, 30])
def test_offline_optimum_for_repetition_two(s):
    sched = Online(s)
    for n in range(1, comb(s + 2, 2) + 1):
        assert sched.count(n) == predict(n, s).forward_advances, n


def _costs_along_the_run(s: int, n_max: int) -> list[int]:
    """Forward advances of stopping after n = 1 .. n_max steps, from one live run."""
    sched, costs = Online(s), []
    for i in range(n_max):
        sched.forward_step(i)
        ends = [*sched.points[1:], i]
        costs.append(i + 1 + sum(predict(b - a, s - j).forward_advances
                                 for j, (a, b) in enumerate(zip(sched.points, ends)) if b > a))
    return costs


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5, 7, 10, 16, 30])
def test_within_five_percent_of_the_offline_optimum_for_repetition_three(s):
    costs = _costs_along_the_run(s, comb(s + 3, 3))
    ratios = [c / predict(n, s).forward_advances for n, c in enumerate(costs, 1)]
    assert max(ratios[: comb(s + 2, 2)]) == 1.0
    assert max(ratios) <= 1.05, (max(ratios), ratios.index(max(ratios)) + 1)
    for n in (comb(s + 2, 2) + 1, len(costs) // 2 + 1, len(costs)):
        assert Online(s).count(n) == costs[n - 1]


@settings(max_examples=50, deadline=None)
@given(s=st.integers(1, 10), n=st.integers(1, 700))
def test_stream_is_valid_and_counted(s, n):
    summary = validate(Online(s), n)
    assert summary.forward_advances == Online(s).count(n)
    assert summary.peak.get("ram", 0) <= s


def test_live_protocol_matches_the_replay_stream():
    sched, n = Online(4), 40
    live = [a for i in range(n) for a in sched.forward_step(i)]
    live += list(sched.reverse(n))
    replay = [a for a in Online(4).actions(n) if type(a).__name__ != "Advance"]
    assert [a for a in live if type(a).__name__ != "Advance"] == replay
    assert live[0] == Save(0) and Reverse(n - 1) in live


def test_protocol_misuse():
    sched = Online(3)
    sched.forward_step(0)
    with pytest.raises(ScheduleError, match=r"forward_step\(2\) called out of order: expected "
                                            r"step 1"):
        sched.forward_step(2)
    with pytest.raises(ScheduleError, match=r"Online.reverse\(5\) after 1 forward steps"):
        list(sched.reverse(5))
    with pytest.raises(ScheduleError, match="Online needs snapshots >= 1"):
        Online(0)


def _search_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "online_search.py"
    spec = importlib.util.spec_from_file_location("online_search", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("s", [2, 3, 4, 5])
def test_small_s_tables_reach_the_best_online_ratio(s, monkeypatch):
    """The stored moves reach the least worst ratio of any online schedule on n <= N (the
    search's, re-run here for s <= 3), and beat the greedy rule alone."""
    from diffkit.checkpoint import online

    n_max = online.TABLE_RANGE[s]
    best = {2: 1.075, 3: 88 / 85, 4: 1.0215827338129497, 5: 1.015625}[s]
    if s <= 3:
        worst, moves = _search_module().search(s, n_max)
        assert moves == online.TABLES[s] and worst == pytest.approx(best)
    ratio = max(c / predict(n, s).forward_advances
                for n, c in enumerate(_costs_along_the_run(s, n_max), 1))
    assert ratio == pytest.approx(best)
    monkeypatch.setattr(online, "TABLES", {})
    greedy = max(c / predict(n, s).forward_advances
                 for n, c in enumerate(_costs_along_the_run(s, n_max), 1))
    assert greedy > ratio + 0.005
