"""K-tier budgets, the planner's multi-tier and Periodic choices, and loops run under Optimal."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
import yaml

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import MultiLevel, Tier, load_budget, plan, validate
from diffkit.checkpoint.budget import Budget, Disk, StorageTier
from diffkit.checkpoint.optimal import Optimal
from diffkit.checkpoint.planner import candidates, storage_tiers
from diffkit.errors import BudgetError
from diffkit.testing import to_numpy


def _tiers(tmp_path, *specs):
    return [{"name": n, "path": str(tmp_path / n), "size": s, **c} for n, s, c in specs]


def test_tier_list_and_the_old_disk_key_agree(tmp_path):
    old = load_budget({"budget": {"memory": "1MiB", "disk": {"path": str(tmp_path),
                                                             "size": "1GiB"}},
                       "costs": {"disk_write": 3.0, "disk_read": 0.25}})
    new = load_budget({"budget": {"memory": "1MiB", "tiers": [
        {"name": "disk", "path": str(tmp_path), "size": "1GiB", "write": 3.0, "read": 0.25}]}})
    assert old.tiers == new.tiers == (StorageTier("disk", tmp_path, 2**30, 3.0, 0.25),)
    assert old.disk == new.disk == Disk(tmp_path, 2**30)
    # a Budget built in code with only `disk` plans the same tier, at the disk costs
    bare = Budget(2**20, Disk(tmp_path, 2**30))
    assert storage_tiers(bare) == (StorageTier("disk", tmp_path, 2**30, 0.5, 0.5),)


def test_tiers_default_costs_and_no_disk(tmp_path):
    b = load_budget({"budget": {"memory": "1MiB", "tiers": _tiers(tmp_path, ("host", "1GiB", {}))},
                     "costs": {"disk_write": 2.0}})
    assert b.tiers[0].write == 2.0 and b.tiers[0].read == 0.5 and b.disk is None


@pytest.mark.parametrize("tiers,match", [
    ("fast", r"budget.tiers must be a list of tiers"),
    ([3], r"budget.tiers\[0\] must be a mapping"),
    ([{"name": "host", "size": "1GiB"}], r"budget.tiers\[0\].path is missing"),
    ([{"name": "host", "path": "/tmp", "size": "1GiB", "speed": 1}],
     r"unknown key 'budget.tiers\[0\].speed'"),
    ([{"name": "ram", "path": "/tmp", "size": "1GiB"}], r"budget.tiers\[0\].name = 'ram' is not"),
    ([{"name": "a", "path": "/tmp", "size": "1GiB"}, {"name": "a", "path": "/tmp", "size": 1}],
     r"budget.tiers\[1\].name = 'a' is not a tier name; use a lowercase identifier .* unique"),
    ([{"name": "Host!", "path": "/tmp", "size": "1GiB"}], r"tiers\[0\].name = 'Host!'"),
    ([{"name": "host", "path": "/tmp", "size": "lots"}],
     r"budget.tiers\[0\].size: cannot parse 'lots'"),
    ([{"name": "host", "path": "/tmp", "size": "1GiB", "write": -1}],
     r"budget.tiers\[0\].write = -1 is not a cost"),
    ([{"name": "host", "path": "/proc/diffkit", "size": "1GiB"}],
     r"budget.tiers\[0\].path '/proc/diffkit' is not writable"),
    ([{"name": "host", "path": "", "size": "1GiB"}], r"budget.tiers\[0\].path = '' is not"),
])
def test_bad_tiers_name_the_key(tmp_path, tiers, match):
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"budget": {"memory": "1GiB", "tiers": tiers}}))
    with pytest.raises(BudgetError, match=match):
        load_budget(path)


def test_disk_and_tiers_together_is_an_error(tmp_path):
    with pytest.raises(BudgetError, match="give budget.disk or budget.tiers, not both"):
        load_budget({"budget": {"memory": "1GiB", "disk": {"path": str(tmp_path), "size": 1},
                                "tiers": []}})


def test_periodic_period_by_predicted_time():
    """n=120, memory for 50 states: the least-memory period (11) costs 470, period 40 440."""
    state = 1000
    b = load_budget({"budget": {"memory": 50 * state}})
    p = candidates(120, state, b)["periodic"]
    assert p.schedule.every == 40 and p.time == 440.0
    for every in range(1, 121):  # no fitting period is faster
        q = 119 // every
        if q * state + every * state <= 50 * state:
            assert 120 * 3 + q * every >= p.time
    validate(p.schedule, 120)


def test_planner_uses_the_exact_plan_where_multilevel_falls_short(tmp_path):
    """n=120, one RAM slot, w=r=50: MultiLevel 2005 (1.094x), the optimum 1832. Its tables
    count in the plan's memory: without room for them, the plan is MultiLevel's."""
    state, tables = 10**6, Optimal(120, [Tier("ram", 1), Tier("disk", 120, 50, 50)]).nbytes

    def budget(memory):
        return load_budget({"budget": {"memory": memory, "disk": {"path": str(tmp_path),
                                                                  "size": 10**12}},
                            "costs": {"disk_write": 50, "disk_read": 50}})

    p = candidates(120, state, budget(2 * state + tables))["multilevel"]
    assert isinstance(p.schedule, Optimal) and p.time == 1832.0
    assert p.peak_bytes == 2 * state + tables
    assert isinstance(candidates(120, state, budget(2 * state))["multilevel"].schedule,
                      MultiLevel)
    s = validate(p.schedule, 120)
    assert p.time == s.forward_advances + 2 * 120 + 50 * (s.saves["disk"] + s.loads["disk"])


def test_three_tier_plan_uses_every_tier(tmp_path):
    state = 10**7  # larger than the tables
    tables = Optimal(60, [Tier("ram", 3), Tier("host", 3, 0.2, 0.2),
                          Tier("disk", 60, 4.0, 0.3)]).nbytes
    b = load_budget({"budget": {"memory": 4 * state + tables, "tiers": _tiers(
        tmp_path, ("host", 3 * state, {"write": 0.2, "read": 0.2}),
        ("disk", 10**9, {"write": 4.0, "read": 0.3}))}})
    p = plan(60, state, b)
    assert isinstance(p.schedule, Optimal)
    s = validate(p.schedule, 60)
    assert set(s.saves) == {"ram", "host", "disk"} and s.peak["host"] <= 3
    assert p.disk_bytes_written == state * (s.saves["host"] + s.saves["disk"])
    assert p.time == pytest.approx(s.forward_advances + 120 + 0.2 * (
        s.saves["host"] + s.loads["host"]) + 4.0 * s.saves["disk"] + 0.3 * s.loads["disk"])


def test_planning_with_tiers_at_scale_is_fast(tmp_path):
    b = load_budget({"budget": {"memory": "64KiB", "tiers": _tiers(
        tmp_path, ("host", "1GiB", {"write": 0.1, "read": 0.1}),
        ("disk", "100TiB", {"write": 4.0, "read": 0.3}))}})
    for n in (200, 10**6, 10**8):
        t = time.process_time()
        p = plan(n, 8 * 2**10, b)
        assert time.process_time() - t < 1.0 and p.time > 0


def _step(u, i, k):
    return u + 0.01 * dnp.sin(k * u) - 0.02 * dnp.roll(u, 1) * u


def _loss(budget, n):  # eager: the least memory a refusal names is the eager step's, and
    # a compiled step's working set (a budget large enough to trace) would change the plan
    return lambda u0, k: dnp.sum(dk.checkpoint.loop(_step, u0, n, (k,), budget=budget,
                                                    compile=False) ** 2)


@pytest.fixture(autouse=False)
def no_overlap(monkeypatch):
    """Disk I/O in the caller's thread: no read-ahead room in the working set to search."""
    from diffkit.checkpoint.executor import Executor

    monkeypatch.setattr(Executor, "overlap_io", False)


def _tightest(budget, n, u0, tiers, argnums=0):
    """The gradient under ``budget(memory)`` with the least memory whose plan is the exact
    one: one RAM slot (states larger than the plan's tables) and the tables."""
    with pytest.raises(BudgetError, match="at least") as info:  # one RAM slot, nothing else
        dk.grad(_loss(budget(1), n))(u0, 1.3)
    least = int(re.search(r"at least ([\d,]+) bytes", str(info.value)).group(1).replace(",", ""))
    tables = Optimal(n, tiers).nbytes
    for extra in range(tables, tables + 16 * 2**10, 1024):
        try:
            g = dk.grad(_loss(budget(least + extra), n), argnums=argnums)(u0, 1.3)
        except BudgetError:
            continue
        if isinstance(dk.checkpoint.last_report().plan.schedule, Optimal):
            return g
    raise AssertionError("no memory in the range gives the exact plan")


@pytest.mark.parametrize("w,r", [(4.0, 0.3), (0.3, 4.0)])
def test_loop_under_the_exact_plan_matches_store_all(tmp_path, to_backend, no_overlap, w, r):
    u0 = to_backend(np.linspace(0.1, 1.0, 16384))  # 128 KiB states: more than the tables
    g_all = dk.grad(_loss({"budget": {"memory": "1GiB"}}, 40), argnums=(0, 1))(u0, 1.3)
    assert type(dk.checkpoint.last_report().plan.schedule).__name__ == "StoreAll"

    def budget(memory):
        return {"budget": {"memory": memory, "tiers": [
            {"name": "disk", "path": str(tmp_path), "size": "64MiB", "write": w, "read": r}]},
            "schedule": "multilevel"}

    g = _tightest(budget, 40, u0, [Tier("ram", 1), Tier("disk", 40, w, r)], (0, 1))
    rep = dk.checkpoint.last_report()
    assert rep.plan.slots["ram"] == 1 and rep.disk_written > 0 and rep.disk_read > 0
    assert rep.plan.peak_bytes <= rep.plan.budget.memory  # the tables counted in
    for a, b in zip(g, g_all, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)
    assert os.listdir(tmp_path) == []


def test_loop_over_three_tiers_matches_store_all(tmp_path, to_backend, no_overlap):
    """RAM, a small 'host' directory tier and a large 'disk': the plan writes to both."""
    u0 = to_backend(np.linspace(0.1, 1.0, 65536))  # 512 KiB states: more than the tables
    g_all = dk.grad(_loss({"budget": {"memory": "1GiB"}}, 30))(u0, 1.3)

    def budget(memory):
        return {"budget": {"memory": memory, "tiers": [
            {"name": "host", "path": str(tmp_path / "host"), "size": "2100KiB", "write": 0.2,
             "read": 0.2},
            {"name": "disk", "path": str(tmp_path / "disk"), "size": "64MiB", "write": 4.0,
             "read": 0.3}]}, "schedule": "multilevel"}

    tiers = [Tier("ram", 1), Tier("host", 4, 0.2, 0.2), Tier("disk", 30, 4.0, 0.3)]
    g = _tightest(budget, 30, u0, tiers)
    held = dk.checkpoint.last_report().plan.slots
    assert held["host"] > 0 and held["disk"] > 0
    np.testing.assert_allclose(to_numpy(g), to_numpy(g_all), rtol=1e-12, atol=1e-14)
    assert not any(any(p.iterdir()) for p in tmp_path.iterdir())  # every run dir removed
