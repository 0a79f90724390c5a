"""Planner choices, predicted bytes, MultiLevel optimality, and the plan CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import MultiLevel, Online, Revolve, StepCosts, Tier, plan, validate
from diffkit.checkpoint.cli_plan import add_plan_parser, run_plan
from diffkit.checkpoint.multilevel import partition_dp
from diffkit.errors import BudgetError, ScheduleError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MiB = 2**20


def test_auto_choices():
    assert type(plan(100, MiB, {"budget": {"memory": "1GiB"}}).schedule).__name__ == "StoreAll"
    p = plan(10_000, MiB, {"budget": {"memory": "64MiB"}}, step_tape_bytes=4 * MiB)
    assert isinstance(p.schedule, Revolve) and p.slots == {"ram": 60}
    assert p.peak_bytes == 60 * MiB + 4 * MiB <= 64 * MiB
    assert p.forward_advances == validate(p.schedule, 10_000).forward_advances
    assert isinstance(plan(None, MiB, {"budget": {"memory": "64MiB"}}).schedule, Online)
    d = plan(100_000, 8 * MiB, CONFIGS / "disk.yaml", 16 * MiB)
    assert isinstance(d.schedule, MultiLevel) and d.disk_bytes_written > 0
    assert "recomputation factor" in str(d) and "MultiLevel" in str(d)


def test_budget_too_small_says_how_much():
    with pytest.raises(BudgetError, match=r"cannot hold one saved state plus one step's working "
                                          r"set: at least 3,145,728 bytes"):
        plan(10, MiB, {"budget": {"memory": "2MiB"}}, step_tape_bytes=2 * MiB)
    with pytest.raises(BudgetError, match=r"schedule 'store_all' does not fit: keeping all"):
        plan(10_000, MiB, {"budget": {"memory": "64MiB"}, "schedule": "store_all"})


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 120), ram=st.integers(1, 6), disk=st.integers(0, 5),
       w=st.sampled_from([0.0, 0.5, 4.0]), rev=st.sampled_from([0.5, 2.0]))
def test_multilevel_valid_and_optimal_over_partitions(n, ram, disk, w, rev):
    tiers = [Tier("ram", ram), Tier("disk", disk, w, w)]
    costs = StepCosts(1.0, rev)
    ml = MultiLevel(n, tiers, costs)
    summary = validate(ml, n)
    assert summary.forward_advances == ml.predicted.forward_advances
    assert summary.peak.get("disk", 0) <= disk and summary.peak.get("ram", 0) <= ram
    assert ml.predicted.time <= partition_dp(n, *tiers, costs) + 1e-9


def test_multilevel_bad_tiers():
    with pytest.raises(ScheduleError, match="MultiLevel needs two tiers"):
        MultiLevel(10, [Tier("ram", 2)])


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_plan_parser(parser.add_subparsers())
    return run_plan(parser.parse_args(argv))


def test_cli_table_and_compare(capsys):
    base = ["plan", "--config", str(CONFIGS / "laptop.yaml"), "--steps", "100000",
            "--state-bytes", "8MiB", "--tape-bytes", "16MiB"]
    assert _cli(base) == 0
    assert "Revolve(n_steps=100000" in capsys.readouterr().out
    assert _cli([*base, "--compare"]) == 0
    out = capsys.readouterr().out
    assert "revolve" in out and "<- chosen" in out
    assert _cli(["plan", "--steps", "10", "--state-bytes", "1GiB"]) == 2
    assert "at least" in capsys.readouterr().out


def test_cli_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "s.png"
    assert _cli(["plan", "--steps", "200", "--state-bytes", "100MiB", "--plot", str(out)]) == 0
    assert out.stat().st_size > 0
