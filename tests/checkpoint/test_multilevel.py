"""MultiLevel when the disk slots bind: Revolve over segments, against the one-checkpoint-per-
segment plan (``partition_dp``, what MultiLevel did before) and the two-level optimum."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import MultiLevel, StepCosts, Tier, validate
from diffkit.checkpoint.multilevel import _time, _water_fill, partition_dp

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "two_level_reference.py"
if "two_level_reference" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("two_level_reference", _PATH)
    sys.modules["two_level_reference"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["two_level_reference"])
ref = sys.modules["two_level_reference"]


def _check(ml: MultiLevel, n: int, ram: int, disk: int, w: float, r: float, rev: float):
    s = validate(ml, n)
    p = ml.predicted
    assert s.forward_advances == p.forward_advances
    assert s.saves.get("disk", 0) == p.writes["disk"]
    assert s.loads.get("disk", 0) == p.reads["disk"]
    assert s.peak.get("disk", 0) <= disk and s.peak.get("ram", 0) <= ram
    time = s.forward_advances + rev * n + w * s.saves.get("disk", 0) + r * s.loads.get("disk", 0)
    assert time == pytest.approx(p.time)
    return s


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), ram=st.integers(1, 6), disk=st.integers(0, 4),
       w=st.sampled_from([0.0, 0.5, 2.0]), r=st.sampled_from([0.0, 0.5, 3.0]),
       rev=st.sampled_from([0.5, 2.0]))
def test_binding_disk_is_valid_and_predicted(n, ram, disk, w, r, rev):
    tiers = [Tier("ram", ram), Tier("disk", disk, w, r)]
    ml = MultiLevel(n, tiers, StepCosts(1.0, rev))
    _check(ml, n, ram, disk, w, r, rev)
    assert ml.predicted.time <= partition_dp(n, *tiers, StepCosts(1.0, rev)) + 1e-9


def test_segments_beyond_disk_slots_reuse_them():
    # n=300, 2 RAM slots, 2 disk slots: one checkpoint per segment costs 3632, the optimum 2555
    ml = MultiLevel(300, [Tier("ram", 2), Tier("disk", 2, 0.5, 0.5)])
    s = _check(ml, 300, 2, 2, 0.5, 0.5, 2.0)
    assert len(ml.lengths) > 3 and s.saves["disk"] > 2 and s.loads["disk"] > s.saves["disk"]
    assert ml.predicted.time == pytest.approx(2555.0)
    assert ml.predicted.time < 0.75 * partition_dp(300, ml.ram, ml.disk, ml.costs)


def test_unbound_disk_plan_is_unchanged():
    # disk slots to spare: the first sweep writes every segment start once, lengths water-filled
    for n, ram, disk, w in ((400, 10, 40, 5.0), (200, 5, 40, 2.0), (77, 1, 77, 0.0)):
        ml = MultiLevel(n, [Tier("ram", ram), Tier("disk", disk, w, w)])
        m = len(ml.lengths) - 1
        assert m < disk and ml.lengths == _water_fill(n, m, ram)
        assert ml.predicted.writes["disk"] == ml.predicted.reads["disk"] == m
        assert ml.predicted.time == pytest.approx(partition_dp(n, ml.ram, ml.disk, ml.costs))


@pytest.mark.parametrize("w,r", [(0.5, 0.5), (3.0, 3.0), (0.2, 2.0)])
def test_close_to_the_two_level_optimum(w, r):
    # one checkpoint per segment was up to 3.8x off on this grid (c_m = 1, c_d = 2)
    for disk in (1, 2, 4):
        t = ref.tables(150, 5, w, r, 1.0, disk)
        for n in (7, 30, 64, 150):
            for ram in (1, 2, 3, 5):
                ml = MultiLevel(n, [Tier("ram", ram), Tier("disk", disk, w, r)])
                opt = t.time(n, ram, 2.0, disk)
                assert opt - 1e-9 <= ml.predicted.time <= 1.001 * opt


def test_long_chain_is_planned_fast_and_streams_lazily():
    n, ram, disk = 10**6, Tier("ram", 2), Tier("disk", 10, 0.5, 0.5)
    ml = MultiLevel(n, [ram, disk])
    per_segment = min(_time(_water_fill(n, m, 2), ram, disk, ml.costs) for m in range(11))
    assert len(ml.lengths) > 10 and ml.predicted.time < per_segment / 20
    stream = ml.actions()
    assert [type(next(stream)).__name__ for _ in range(2)] == ["Save", "Advance"]
    _check(MultiLevel(20_000, [Tier("ram", 2), Tier("disk", 3, 0.5, 0.5)]), 20_000, 2, 3,
           0.5, 0.5, 2.0)


def test_planning_with_a_disk_of_millions_of_slots_scans_few_counts():
    """The segment count is searched geometrically, not one by one (which took minutes)."""
    from diffkit.checkpoint import plan

    p = plan(200_000, 8 * 1024, {"budget": {"memory": "1MiB",
                                            "disk": {"path": "/tmp", "size": "20GiB"}},
                                 "schedule": "multilevel"})
    assert p.slots["disk"] > 0  # of 2.6 million disk slots
    assert p.forward_advances <= 3 * 200_000
