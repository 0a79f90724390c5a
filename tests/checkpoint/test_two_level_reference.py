"""The two-level optimal-cost reference (benchmarks/two_level_reference.py) on known answers.

Known answers: free disk = store everything; unusable disk = Revolve's closed form; tiny
chains = an exhaustive shortest-path search over every action sequence. Its traced schedules
replay under ``validate`` at the cost and within the slots the tables claim.
"""

from __future__ import annotations

import heapq
import importlib.util
import sys
from itertools import count
from pathlib import Path

import pytest

from diffkit.checkpoint import MultiLevel, StepCosts, Tier, predict, validate

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "two_level_reference.py"
_spec = importlib.util.spec_from_file_location("two_level_reference", _PATH)
ref = sys.modules["two_level_reference"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


@pytest.mark.parametrize("u_f,u_b", [(1.0, 2.0), (1.5, 1.0)])
def test_free_disk_is_store_everything(u_f, u_b):
    t = ref.tables(60, 4, 0.0, 0.0, u_f)
    for n in (1, 2, 7, 60):
        for c in (1, 2, 4):
            # n - 1 first-sweep advances, n tapings, n reverse steps
            assert t.time(n, c, u_b) == pytest.approx((2 * n - 1) * u_f + n * u_b)


@pytest.mark.parametrize("c_d", [None, 0, 3])
def test_unusable_disk_is_revolve(c_d):
    t = ref.tables(300, 6, 1e9, 1e9, 1.0, c_d)
    for n in (1, 2, 3, 10, 57, 300):
        for c in range(1, 7):
            assert t.time(n, c, 2.0, c_d) == predict(n, c).forward_advances + 2.0 * n


def _exhaustive(n: int, c: int, c_d: int, w: float, r: float) -> float:
    """Dijkstra over (current, RAM set, disk set, steps left): every schedule of the model."""
    start = (0, frozenset(), frozenset(), n)
    dist, tie, heap = {start: 0.0}, count(), [(0.0, 0, start)]
    while heap:
        d0, _, s = heapq.heappop(heap)
        if d0 > dist[s]:
            continue
        cur, ram, disk, k = s
        if k == 0:
            return d0
        moves = []
        if cur is not None and cur < k - 1:
            moves.append(((cur + 1, ram, disk, k), 1.0))
        if cur == k - 1:  # tape and reverse step k - 1
            moves.append(((None, ram - {cur}, disk - {cur}, k - 1), 1.0))
        if cur is not None and cur not in ram and len(ram) < c:
            moves.append(((cur, ram | {cur}, disk, k), 0.0))
        if cur is not None and cur not in disk and len(disk) < c_d:
            moves.append(((cur, ram, disk | {cur}, k), w))
        for tier, read in ((ram, 0.0), (disk, r)):
            for x in tier:
                if x != cur:
                    moves.append(((x, ram, disk, k), read))
                drop = (ram - {x}, disk) if tier is ram else (ram, disk - {x})
                moves.append(((cur, *drop, k), 0.0))
        for state, cost in moves:
            if d0 + cost < dist.get(state, float("inf")) - 1e-12:
                dist[state] = d0 + cost
                heapq.heappush(heap, (d0 + cost, next(tie), state))
    raise AssertionError("unreachable")


@pytest.mark.parametrize("w,r", [(0.5, 0.5), (2.0, 1.0), (0.2, 3.0)])
def test_matches_exhaustive_search(w, r):
    for c_d in (0, 1, 2, None):
        t = ref.tables(6, 2, w, r, 1.0, c_d)
        for n in range(1, 7):
            for c in (1, 2):
                want = _exhaustive(n, c, n if c_d is None else c_d, w, r)
                assert t.time(n, c, 0.0, c_d) == pytest.approx(want), (n, c, c_d)


@pytest.mark.parametrize("n,c,c_d,w,r", [(40, 2, None, 2.0, 2.0), (30, 1, None, 0.5, 0.5),
                                         (35, 3, 2, 1.0, 3.0), (25, 1, 2, 0.5, 0.5),
                                         (25, 2, 1, 0.3, 0.3), (20, 2, 0, 1.0, 1.0)])
def test_traced_schedule_replays_at_table_cost(n, c, c_d, w, r):
    t = ref.tables(n, c, w, r, 1.0, c_d)
    s = validate(ref.schedule(t), n)
    cost = s.forward_advances + w * s.saves.get("disk", 0) + r * s.loads.get("disk", 0)
    assert cost == pytest.approx(t.time(n, c, 0.0))
    assert s.peak.get("ram", 0) <= c and (c_d is None or s.peak.get("disk", 0) <= c_d)


def test_multilevel_never_beats_the_optimum():
    for w in (0.5, 3.0):
        t = ref.tables(120, 5, w, w, 1.0, 4)
        for n in (10, 50, 120):
            for c in (2, 5):
                ml = MultiLevel(n, [Tier("ram", c), Tier("disk", 4, w, w)], StepCosts(1.0, 2.0))
                assert ml.predicted.time >= t.time(n, c, 2.0) - 1e-9


def test_bad_arguments():
    with pytest.raises(ValueError, match="need n >= 1 and c_m >= 1"):
        ref.tables(10, 0, 1.0, 1.0)
