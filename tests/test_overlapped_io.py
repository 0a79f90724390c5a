"""Overlapped disk I/O (issue 17 item 6): writes in a background thread, the next disk load
read ahead, the room this takes counted in the plan, errors of the thread raised naming the
step, every file removed."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.actions import DISK, RAM, Advance, Discard, Load, Reverse, Save
from diffkit.checkpoint.executor import Executor
from diffkit.checkpoint.planner import plan
from diffkit.checkpoint.writer import WINDOW, Lookahead, io_bytes, plan_with_io
from diffkit.errors import BudgetError, CheckpointStorageError
from diffkit.testing import to_numpy


def _budget(path, memory=2**20):
    return {"budget": {"memory": memory, "disk": {"path": str(path), "size": "1GiB"}},
            "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}


def _step(u, i, a):
    return 0.5 * dnp.sin(u) * a + 0.5 * u


def _grad(path, u0, n=300, **kw):
    J = lambda u, a: dnp.sum(dk.checkpoint.loop(_step, u, n, (a,), _budget(path, **kw)))
    return dk.grad(J, argnums=(0, 1))(u0, 1.5)


def test_overlapped_and_synchronous_io_give_the_same_gradient(tmp_path, to_backend,
                                                              monkeypatch):
    u0 = to_backend(np.linspace(0, 1, 1000))
    g = _grad(tmp_path, u0)
    rep = dk.checkpoint.last_report()
    assert rep.overlapped_writes == rep.peak_snapshots["disk"] > 100
    assert rep.read_ahead > 100 and rep.disk_read == rep.disk_written
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(Executor, "overlap_io", False)
    g_sync = _grad(tmp_path, u0)
    sync = dk.checkpoint.last_report()
    assert sync.overlapped_writes == sync.read_ahead == sync.io_bytes == 0
    for a, b in zip(g, g_sync, strict=True):
        assert np.array_equal(to_numpy(a), to_numpy(b))
    assert sync.plan.slots[RAM] > rep.plan.slots[RAM]  # the room for I/O costs RAM slots
    assert os.listdir(tmp_path) == []


def test_the_io_room_is_in_the_working_set_and_the_report(tmp_path):
    _grad(tmp_path, np.linspace(0, 1, 1000))
    rep = dk.checkpoint.last_report()
    assert rep.io_bytes == io_bytes(rep.state_bytes) == 2 * rep.state_bytes + WINDOW * 128
    assert rep.peak_bytes <= rep.plan.budget.memory  # the room fits the budget too
    assert "overlapped I/O" in str(rep) and rep.to_dict()["done"]["io_bytes"] == rep.io_bytes
    _grad(tmp_path, np.linspace(0, 1, 1000), memory="64MiB")  # all in RAM: no room taken
    assert dk.checkpoint.last_report().io_bytes == 0


def test_plan_with_io_falls_back_when_the_room_does_not_fit(tmp_path):
    from diffkit.checkpoint.budget import load_budget

    state = 8192
    tight = load_budget(_budget(tmp_path, memory=3 * state + 3 * 1024))  # 1 RAM slot, no room
    p, io = plan_with_io(plan, 100, state, tight, state, 1024)
    assert io == 0 and p.slots[DISK] > 0
    roomy = load_budget(_budget(tmp_path, memory=20 * state))
    p, io = plan_with_io(plan, 100, state, roomy, state, 1024)
    assert io == io_bytes(state) and p.peak_bytes <= roomy.memory
    p, io = plan_with_io(plan, 100, state, roomy, state, 1024, overlap=False)
    assert io == 0
    exact = load_budget(_budget(tmp_path, memory=100 * state + 1024))
    exact = dataclasses.replace(exact, schedule="auto")
    p, io = plan_with_io(plan, 100, state, exact, state, 1024)  # store-all fits, not with room
    assert type(p.schedule).__name__ == "StoreAll" and io == 0


def test_a_failed_background_write_is_an_error_naming_its_step(tmp_path, monkeypatch):
    storage = sys.modules["diffkit.checkpoint.storage"]
    real_write = storage.Storage._write

    def failing(self, key, state):
        if key[1] == 7:
            raise RuntimeError("disk on fire")
        real_write(self, key, state)

    monkeypatch.setattr(storage.Storage, "_write", failing)
    with pytest.raises(CheckpointStorageError, match=r"writing the snapshot of step 7 \(disk "
                       r"tier\) failed in the background I/O thread: RuntimeError: disk on fire"):
        _grad(tmp_path, np.linspace(0, 1, 1000))
    assert os.listdir(tmp_path) == []


class _IO:
    ahead = None

    def __init__(self):
        self.asked = []


class _Storage:
    def __init__(self):
        self.io = _IO()

    def prefetch(self, step, tier):
        self.io.asked.append((step, tier))
        self.io.ahead = (tier, step)


def _taken(actions, window=WINDOW):
    """Hand out every action; for each, the prefetches asked for until then."""
    storage = _Storage()
    it = Lookahead(actions, storage, window)
    out = []
    for a in it:
        out.append((str(a), list(storage.io.asked)))
        if type(a) is Load:
            storage.io.ahead = None  # the load took it
    return out, it


def test_lookahead_reads_the_next_disk_load_only_after_its_save():
    actions = [Save(0, DISK), Advance(0, 3), Save(3, DISK), Advance(3, 5), Reverse(5),
               Load(3, DISK), Reverse(4), Load(3, DISK), Reverse(3), Discard(3, DISK),
               Load(0, DISK), Save(1, RAM), Reverse(2)]
    out, it = _taken(actions)
    asked = dict(out)
    assert asked["Save(0, disk)"] == []  # Save(3) comes before Load(3): not yet
    assert asked["Save(3, disk)"] == []  # being handed out: not yet done by the executor
    assert asked["Advance(3, 5)"] == [(3, DISK)]  # after it: its write is queued first
    assert asked["Reverse(3)"] == [(3, DISK), (3, DISK), (0, DISK)]  # each Load once
    assert it.index == len(actions) and it.reversing


def test_lookahead_waits_for_a_discard_and_save_of_the_same_snapshot():
    actions = [Save(2, DISK), Advance(2, 4), Load(2, DISK), Discard(2, DISK), Save(2, DISK),
               Load(2, DISK)]
    out, _ = _taken(actions)
    assert [asked for _, asked in out] == [[]] + [[(2, DISK)]] * 5  # the second Load(2) is
    # never read ahead: a Discard and a new Save of that snapshot come before it


def test_sigterm_stops_the_io_thread_before_it_removes_the_directory(tmp_path):
    from diffkit.checkpoint import cleanup

    seen = []
    path = cleanup.make_run_directory(str(tmp_path), on_signal=lambda: seen.append(
        os.path.isdir(path)))
    cleanup._remove_open()  # what the SIGTERM handler does
    assert seen == [True] and not os.path.exists(path)


def test_the_budget_turns_overlap_off(tmp_path):
    budget = _budget(tmp_path)
    budget["budget"]["disk"]["overlap"] = False
    J = lambda u: dnp.sum(dk.checkpoint.loop(_step, u, 300, (1.5,), budget))
    dk.grad(J)(np.linspace(0, 1, 1000))
    rep = dk.checkpoint.last_report()
    assert rep.io_bytes == rep.overlapped_writes == rep.read_ahead == 0 and rep.disk_written
    budget["budget"]["disk"]["overlap"] = "no"
    with pytest.raises(BudgetError, match=r"budget\.disk\.overlap = 'no' is not true or false"):
        dk.grad(J)(np.linspace(0, 1, 1000))


def test_an_abandoned_gradient_stops_its_io_thread_and_removes_its_files(tmp_path):
    import gc
    import threading

    def io_threads():
        return [t for t in threading.enumerate() if t.name.startswith("diffkit-disk-io")]

    before = len(io_threads())
    J = lambda u: dnp.sum(dk.checkpoint.loop(_step, u, 300, (1.5,), _budget(tmp_path)))
    out, f_vjp = dk.vjp(J, np.linspace(0, 1, 1000))  # the forward sweep ran; never reversed
    assert len(io_threads()) == before + 1 and os.listdir(tmp_path)
    del out, f_vjp
    gc.collect()  # the storage may go in its own I/O thread: that thread then ends by itself
    for _ in range(100):
        if len(io_threads()) == before:
            break
        time.sleep(0.05)
    assert len(io_threads()) == before and os.listdir(tmp_path) == []


@pytest.mark.parametrize("overlap", [True, False])
def test_sync_fsyncs_each_snapshot_file_and_its_directory(tmp_path, to_backend, monkeypatch,
                                                          overlap):
    """``budget.disk.sync: true``: every snapshot file is flushed to the device before it
    counts as written (in the I/O thread when overlapping); the gradient is unchanged."""
    storage = sys.modules["diffkit.checkpoint.storage"]
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    u0 = to_backend(np.linspace(0, 1, 1000))
    plain = _grad(tmp_path, u0)
    assert synced == []  # off by default
    budget = _budget(tmp_path)
    budget["budget"]["disk"].update(sync=True, overlap=overlap)
    J = lambda u, a: dnp.sum(dk.checkpoint.loop(_step, u, 300, (a,), budget))
    g = dk.grad(J, argnums=(0, 1))(u0, 1.5)
    rep = dk.checkpoint.last_report()
    files = [f for f in synced if f.startswith("state_")]
    writes = rep.disk_written // (8000 + 128)  # one array of 1000 float64 and its header
    assert len(files) == writes > 100 and (rep.overlapped_writes == writes) == overlap
    assert len(synced) == 2 * len(files)  # each file, then its directory entry
    for a, b in zip(g, plain, strict=True):
        assert np.array_equal(to_numpy(a), to_numpy(b))
    assert os.listdir(tmp_path) == []


def test_sync_is_a_tier_option_checked_by_the_budget(tmp_path):
    from diffkit.checkpoint.budget import load_budget
    from diffkit.checkpoint.storage import synced_tiers

    disk = {"path": str(tmp_path), "size": "1GiB"}
    assert synced_tiers(load_budget({"budget": {"memory": "1MiB", "disk": disk}})) == set()
    b = load_budget({"budget": {"memory": "1MiB", "disk": {**disk, "sync": True}}})
    assert b.disk.sync and b.tiers[0].sync and synced_tiers(b) == {"disk"}
    tiers = [{"name": "host", **disk}, {"name": "disk", **disk, "sync": True}]
    b = load_budget({"budget": {"memory": "1MiB", "tiers": tiers}})
    assert synced_tiers(b) == {"disk"} and b.disk.sync
    with pytest.raises(BudgetError, match=r"budget\.disk\.sync = 'yes' is not true or false "
                       r"\(true: each snapshot file flushed to the device \(fsync\)"):
        load_budget({"budget": {"memory": "1MiB", "disk": {**disk, "sync": "yes"}}})
    tiers[0]["sync"] = 1
    with pytest.raises(BudgetError, match=r"budget\.tiers\[0\]\.sync = 1 is not true or false"):
        load_budget({"budget": {"memory": "1MiB", "tiers": tiers}})


def test_the_refusal_names_the_least_memory_with_and_without_the_io_room(tmp_path):
    """Too little memory for one state: the error gives the least budget that plans (its
    I/O then in the caller's thread) and the least that overlaps it; both plan as said."""
    import re

    u0 = np.linspace(0, 1, 100_000)

    def run(memory, disk=True):
        budget = _budget(tmp_path, memory=memory)
        if not disk:
            del budget["budget"]["disk"]
            budget["schedule"] = "auto"
        J = lambda u: dnp.sum(dk.checkpoint.loop(_step, u, 50, (1.5,), budget,
                                                 compile=False))  # one working set for all
        dk.grad(J)(u0)
        return dk.checkpoint.last_report()

    with pytest.raises(BudgetError, match=r"at least ([\d,]+) bytes \(.*\) are needed; that "
                       r"runs the disk I/O in the caller's thread: overlapping it \(one write "
                       r"in flight, one state read ahead\) needs at least ([\d,]+) bytes") as e:
        run(1000)
    least, more = (int(x.replace(",", "")) for x in re.search(
        r"at least ([\d,]+) bytes.*at least ([\d,]+) bytes", str(e.value)).groups())
    assert more == least + io_bytes(u0.nbytes + 192)
    with pytest.raises(BudgetError, match=f"at least {least:,} bytes"):
        run(least - 1)
    rep = run(least)
    assert rep.io_bytes == 0 and rep.plan.slots[RAM] == 1 and rep.disk_written > 0
    rep = run(more)
    assert rep.io_bytes == io_bytes(rep.state_bytes) and rep.overlapped_writes > 0
    assert rep.peak_bytes <= more
    with pytest.raises(BudgetError, match=r"are needed$"):  # no tier below RAM: no I/O room
        run(1000, disk=False)
    assert os.listdir(tmp_path) == []
