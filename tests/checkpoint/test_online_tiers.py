"""OnlineTiered: while loops with a disk tier -- valid for every length and slot count, close to
the offline two-level optimum on long loops, and a while_loop's gradient equal to unrolled."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import Tier, plan, validate
from diffkit.checkpoint.online_tiers import OnlineTiered
from diffkit.errors import ScheduleError
from diffkit.testing import to_numpy

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "two_level_reference.py"
_spec = importlib.util.spec_from_file_location("two_level_reference", _PATH)
ref = sys.modules["two_level_reference"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


@settings(max_examples=20, deadline=None)
@given(ram=st.integers(1, 3), slots=st.integers(1, 6), n=st.integers(1, 300),
       w=st.sampled_from([0.3, 2.0, 50.0]), r=st.sampled_from([0.3, 2.0, 50.0]))
def test_valid_for_any_length_within_its_slots(ram, slots, n, w, r):
    sched = OnlineTiered(ram, Tier("disk", slots, w, r))
    s = validate(sched, n)  # the slots are the limits validate checks
    assert s.peak.get("ram", 0) <= ram and s.peak.get("disk", 0) <= slots


def _cost(sched: OnlineTiered, n: int, w: float, r: float) -> float:
    s = validate(sched, n)
    return s.forward_advances + 2.0 * n + w * s.saves.get("disk", 0) + r * s.loads.get("disk", 0)


@pytest.mark.parametrize("ram,w,r", [(1, 4.0, 0.3), (2, 2.0, 2.0), (1, 50.0, 50.0),
                                     (3, 0.5, 0.5)])
def test_long_loops_near_the_offline_optimum(ram, w, r):
    """Beyond 4x the first segment the online plan is within 1.06x of the offline optimum
    (state 0 on disk at step 1 is its price on very short loops: up to 8x at n=2, w=r=50)."""
    sched = OnlineTiered(ram, Tier("disk", 10**6, w, r))
    t = ref.tables(800, ram, w, r)
    for n in range(4 * sched.first, 801, 37):
        assert _cost(sched, n, w, r) <= 1.06 * t.time(n, ram, 2.0), n


def test_a_full_disk_thins_out_and_doubles_the_period():
    sched = OnlineTiered(2, Tier("disk", 4, 1.0, 1.0))
    for i in range(200):
        sched.forward_step(i)
    assert len(sched.disk) <= 4 and sched.step_length > sched.period
    with pytest.raises(ScheduleError, match=r"forward_step\(5\) called out of order"):
        sched.forward_step(5)
    with pytest.raises(ScheduleError, match=r"reverse\(7\) after 200 forward steps"):
        list(sched.reverse(7))


def test_bad_arguments():
    with pytest.raises(ScheduleError, match="ram >= 1 slot"):
        OnlineTiered(0, Tier("disk", 3))
    with pytest.raises(ScheduleError, match="tier 'disk' needs >= 1 slot"):
        OnlineTiered(2, Tier("disk", 0))


def test_planner_gives_while_loops_the_disk(tmp_path):
    tables = OnlineTiered(3, Tier("disk", 1000, 0.5, 0.5)).nbytes
    budget = {"budget": {"memory": 4 * 10**6 + tables, "disk": {"path": str(tmp_path),
                                                               "size": 10**9}}}
    p = plan(None, 10**6, budget)
    assert isinstance(p.schedule, OnlineTiered) and p.slots == {"ram": 3, "disk": 1000}
    assert p.peak_bytes == 4 * 10**6 + tables  # the segment tables counted in
    tight = plan(None, 10**6, {**budget, "budget": {**budget["budget"], "memory": 4 * 10**6}})
    assert isinstance(tight.schedule, OnlineTiered) and tight.slots["ram"] == 2  # room made
    assert tight.peak_bytes <= 4 * 10**6
    least = plan(None, 10**6, {**budget, "budget": {**budget["budget"], "memory": 2 * 10**6}})
    assert type(least.schedule).__name__ == "Online"  # one slot and no room: RAM only


def test_while_loop_with_a_disk_tier_matches_unrolled(tmp_path, to_backend):
    def cond(state, i, tol):
        return dnp.max(dnp.abs(state)) > tol

    def step(state, i, tol):
        return state * 0.97 - 0.001 * dnp.sin(state)

    budget = {"budget": {"memory": "2MiB", "disk": {"path": str(tmp_path), "size": "16MiB"}},
              "costs": {"disk_write": 0.01, "disk_read": 0.01}}

    def J(x0):
        return dnp.sum(dk.checkpoint.while_loop(cond, step, x0, (1e-2,), budget=budget) ** 2)

    def unrolled(x):
        i = 0
        while cond(x, i, 1e-2):
            x, i = step(x, i, 1e-2), i + 1
        return dnp.sum(x ** 2)

    x0 = to_backend(np.linspace(-0.8, 0.8, 4096))  # 32 KiB states, ~50 in RAM
    g = dk.grad(J)(x0)
    rep = dk.checkpoint.last_report()
    assert isinstance(rep.plan.schedule, OnlineTiered) and rep.reversed == rep.n_steps > 100
    assert rep.disk_written > 0 and rep.disk_read > 0
    np.testing.assert_allclose(to_numpy(g), to_numpy(dk.grad(unrolled)(x0)), rtol=1e-12)
    assert os.listdir(tmp_path) == []
