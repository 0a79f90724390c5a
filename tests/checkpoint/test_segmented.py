"""Segmented (segment starts in the slowest tier, each segment exact) against the exact
two-level optimum of benchmarks/two_level_reference.py, at small n and, with the tables
shrunk so the repeated-segment extension is used, at larger n; planning at 1e8 steps."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import MultiLevel, StepCosts, Tier, validate
from diffkit.checkpoint import segmented as seg_module
from diffkit.checkpoint.segmented import Segmented

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "two_level_reference.py"
_spec = importlib.util.spec_from_file_location("two_level_reference", _PATH)
ref = sys.modules["two_level_reference"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

cost = st.sampled_from([0.1, 0.3, 1.0, 4.0, 50.0])


def _check(sg: Segmented, n: int) -> None:
    s = validate(sg, n)
    p = sg.predicted
    assert (s.forward_advances, s.saves, s.loads) == (p.forward_advances, p.writes, p.reads)
    t = sg.tiers
    assert p.time == pytest.approx(sg.costs.forward * s.forward_advances + sg.costs.reverse * n
                                   + sum(x.write * s.saves.get(x.name, 0)
                                         + x.read * s.loads.get(x.name, 0) for x in t))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 300), ram=st.integers(1, 3), w=cost, r=cost,
       reverse=st.sampled_from([1.0, 2.0]))
def test_equals_the_optimum_with_room_on_disk(n, ram, w, r, reverse):
    tiers = [Tier("ram", ram), Tier("disk", 10**6, w, r)]
    sg = Segmented.make(n, tiers, StepCosts(1.0, reverse))
    assert sg.predicted.time == pytest.approx(ref.optimal_time(n, ram, w, r, 1.0, reverse))
    _check(sg, n)


@pytest.mark.parametrize("ram,w,r", [(1, 4.0, 0.3), (1, 50.0, 50.0), (2, 2.0, 0.1),
                                     (3, 5.0, 5.0)])
def test_repeated_segments_beyond_the_tables_stay_within_1_001(monkeypatch, ram, w, r):
    """Tables for segments of ~110-160 steps (not ~1500), so n = 900 uses the extension."""
    monkeypatch.setattr(seg_module, "SEG_WORK", 2e5)
    tiers = [Tier("ram", ram), Tier("disk", 10**6, w, r)]
    sg = Segmented.make(900, tiers)
    assert 4 * sg._t.F.shape[-1] < 900
    opt = ref.optimal_time(900, ram, w, r)
    assert opt - 1e-9 <= sg.predicted.time <= 1.001 * opt
    _check(sg, 900)


def test_beats_multilevel_where_it_falls_short():
    """One RAM slot, w = r = 50: MultiLevel is 1.10x the optimum at any n."""
    tiers = [Tier("ram", 1), Tier("disk", 10**9, 50.0, 50.0)]
    for n in (10**4, 10**8):
        t = time.process_time()
        sg = Segmented.make(n, tiers)
        assert time.process_time() - t < 1.0
        assert MultiLevel(n, tiers).predicted.time > 1.09 * sg.predicted.time
    _check(Segmented.make(10**4, tiers), 10**4)


def test_three_tiers_and_too_few_slots():
    tiers = [Tier("ram", 1), Tier("host", 2, 0.2, 0.2), Tier("disk", 10**6, 4.0, 0.3)]
    sg = Segmented.make(500, tiers)
    _check(sg, 500)
    assert sg.predicted.writes.get("host", 0) > 0
    few = Segmented.make(500, [Tier("ram", 1), Tier("disk", 3, 1.0, 1.0)])
    assert few.segments == 2
    _check(few, 500)
    assert Segmented.make(500, [Tier("ram", 1), Tier("disk", 1, 1.0, 1.0)]) is None
    assert Segmented.make(1, tiers) is None


def test_too_few_disk_slots_for_every_segment_wanted():
    """20 disk slots where ~60 segments are wanted: every slot starts one (1.008x the optimum,
    MultiLevel 1.014x)."""
    tiers = [Tier("ram", 2), Tier("disk", 20, 4.0, 0.3)]
    sg = Segmented.make(400, tiers)
    assert sg.segments == 19
    _check(sg, 400)
    opt = ref.optimal_time(400, 2, 4.0, 0.3, c_d=20)
    assert opt - 1e-9 <= sg.predicted.time <= 1.01 * opt < MultiLevel(400, tiers).predicted.time
