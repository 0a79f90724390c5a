"""Resuming a killed forward sweep (`checkpoint.loop(..., resume=...)`, issue 17 item 5): a run
killed by SIGTERM continues from its last disk snapshot to the same gradient, bit for bit; a
different program, input, budget or option is refused by name; the directory is kept on a
kill or an error and removed on success."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.resume import PREFIX
from diffkit.errors import ResumeError

CHILD = """
import json, os, signal, sys
import numpy as np
import diffkit as dk
import diffkit.numpy as dnp

path, n, RNG = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "rng"
calls, seen = [], []

@dk.custom_vjp
def eager(u):  # a custom rule keeps the step a Python call at every step (never compiled)
    return u
eager.defvjp(lambda u: (u, None), lambda r, g: (g,))

def step(u, i, a):
    calls.append(i)
    if i == int(os.environ.get("KILL_AT", "-1")):
        seen.append(i)  # KILL_NTH=2: when the reverse sweep runs step i again
        if len(seen) == int(os.environ.get("KILL_NTH", "1")):
            os.kill(os.getpid(), getattr(signal, os.environ["KILL_SIG"]))
    noise = np.random.standard_normal(u.shape) * 1e-3 if RNG else 0.0
    return 0.5 * dnp.sin(eager(u)) * a + 0.5 * u + noise

budget = {"budget": {"memory": 2**20, "disk": {"path": path, "size": "1GiB"}},
          "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}
np.random.seed(0)
J = lambda u, a: dnp.sum(dk.checkpoint.loop(step, u, n, (a,), budget, resume=True,
                                            preserve_rng_state=RNG))
g = dk.grad(J, argnums=(0, 1))(np.linspace(0, 1, 1000), 1.5)
rep = dk.checkpoint.last_report()
print(json.dumps({"calls": len(calls), "g": g[0].tolist() + [float(g[1])],
                  "resumed": rep.resumed_from}))
"""


ROOT = Path(__file__).resolve().parent.parent


def _child(path, mode, kill_at=None, n=300, sig="SIGTERM", nth=1):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(  # the tree under test, plugins too
        filter(None, [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH")]))}
    if kill_at is not None:
        env["KILL_AT"], env["KILL_SIG"], env["KILL_NTH"] = str(kill_at), sig, str(nth)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(n), mode], env=env,
                          capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout.splitlines()[-1]) if kill_at is None and proc.stdout else None
    return proc, out


@pytest.mark.parametrize("mode, sig", [("rng", "SIGTERM"), ("plain", "SIGKILL")])
def test_a_run_killed_by_sigterm_resumes_to_the_same_gradient(tmp_path, mode, sig):
    full_dir, run_dir = tmp_path / "full", tmp_path / "run"
    proc, full = _child(full_dir, mode)
    assert proc.returncode == 0, proc.stderr
    assert full["resumed"] is None and os.listdir(full_dir) == []  # removed on success
    proc, _ = _child(run_dir, mode, kill_at=200, sig=sig)
    assert proc.returncode == -getattr(signal, sig), proc.stderr
    (kept,) = os.listdir(run_dir)  # the kill left the resumable directory
    assert kept.startswith(PREFIX) and "journal.jsonl" in os.listdir(run_dir / kept)
    proc, resumed = _child(run_dir, mode)
    assert proc.returncode == 0, proc.stderr
    assert resumed["resumed"] is not None and 150 < resumed["resumed"] <= 200
    assert resumed["calls"] < full["calls"] - 100  # the steps before the snapshot did not rerun
    assert resumed["g"] == full["g"]  # bit for bit, the RNG draws replayed
    assert os.listdir(run_dir) == []


def test_a_run_killed_in_its_reverse_sweep_resumes_from_its_last_intact_snapshot(tmp_path):
    """The reverse sweep discards the forward sweep's snapshots from the end: a rerun takes
    the last resume point whose snapshots are all on file (not step 0), runs the forward
    sweep on from there and the whole reverse sweep, to the same gradient."""
    full_dir, run_dir = tmp_path / "full", tmp_path / "run"
    proc, full = _child(full_dir, "plain")
    assert proc.returncode == 0, proc.stderr
    proc, _ = _child(run_dir, "plain", kill_at=100, nth=2)  # step 100, in the reverse sweep
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    proc, resumed = _child(run_dir, "plain")
    assert proc.returncode == 0, proc.stderr
    assert resumed["resumed"] is not None and 50 < resumed["resumed"] <= 100
    assert resumed["calls"] < full["calls"] - 50
    assert resumed["g"] == full["g"]
    assert os.listdir(run_dir) == []


# -- in-process: a step that raises stands in for the kill ------------------------------------
class Crash(Exception):
    pass


def _budget(path, memory=2**20):
    return {"budget": {"memory": memory, "disk": {"path": str(path), "size": "1GiB"}},
            "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}


def _step(u, i, a):
    if i == _step.crash_at:
        raise Crash(i)
    return 0.5 * dnp.sin(u) * a + 0.5 * u


def _step_in_reverse(u, i, a):
    """Raises when step `crash_at` runs the second time: in the reverse sweep."""
    _step_in_reverse.seen[i] = _step_in_reverse.seen.get(i, 0) + 1
    if i == _step.crash_at and _step_in_reverse.seen[i] == 2:
        raise Crash(i)
    return 0.5 * dnp.sin(u) * a + 0.5 * u


def _grad(path, u0, a=1.5, n=300, crash_at=-1, step=_step, resume="t", **kw):
    _step.crash_at = crash_at
    budget = kw.pop("budget", _budget(path))
    J = lambda u, a: dnp.sum(dk.checkpoint.loop(step, u, n, (a,), budget, resume=resume, **kw))
    return dk.grad(J, argnums=(0, 1))(u0, a)


def _crashed(path, u0, **kw):
    with pytest.raises(Crash):
        _grad(path, u0, crash_at=200, **kw)
    assert os.listdir(path) == [PREFIX + "t"]  # kept after the error


def test_an_error_keeps_the_run_and_a_rerun_resumes_it(tmp_path, to_backend):
    u0 = to_backend(np.linspace(0, 1, 1000))
    g_full = _grad(tmp_path, u0, resume=False)
    full = dk.checkpoint.last_report().advances  # steps run (compiled or not)
    _crashed(tmp_path, u0)
    g = _grad(tmp_path, u0)
    rep = dk.checkpoint.last_report()
    assert 150 < rep.resumed_from <= 200
    assert rep.advances < full - 100
    for a, b in zip(g, g_full, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("crash_at", [250, 100, 3])
def test_an_error_in_the_reverse_sweep_resumes_from_the_last_intact_point(tmp_path, to_backend,
                                                                          crash_at):
    u0 = to_backend(np.linspace(0, 1, 1000))
    kw = dict(step=_step_in_reverse, compile=False)  # the step's Python runs at every call
    _step_in_reverse.seen = {}
    g_full = _grad(tmp_path, u0, resume=False, **kw)
    full = dk.checkpoint.last_report().advances
    _step_in_reverse.seen = {}
    with pytest.raises(Crash):
        _grad(tmp_path, u0, crash_at=crash_at, **kw)
    journal = (tmp_path / (PREFIX + "t") / "journal.jsonl").read_text().splitlines()
    last_forward = max(json.loads(line)["step"] for line in journal if '"point"' in line)
    _step_in_reverse.seen = {}
    g = _grad(tmp_path, u0, **kw)
    rep = dk.checkpoint.last_report()
    assert min(crash_at, last_forward) - 10 < rep.resumed_from <= min(crash_at, last_forward)
    assert rep.advances < full - rep.resumed_from + 10  # the steps before it did not rerun
    for a, b in zip(g, g_full, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert os.listdir(tmp_path) == []


def test_without_resume_nothing_is_kept(tmp_path):
    with pytest.raises(Crash):
        _grad(tmp_path, np.linspace(0, 1, 1000), crash_at=200, resume=False)
    assert os.listdir(tmp_path) == []


def test_a_memory_only_plan_makes_no_run_directory(tmp_path):
    g = _grad(tmp_path, np.linspace(0, 1, 1000), budget={"budget": {"memory": "64MiB"}})
    assert dk.checkpoint.last_report().resumed_from is None and np.isfinite(g[1])


def _edited(u, i, a):
    return 0.4 * dnp.sin(u) * a + 0.5 * u


@pytest.mark.parametrize("change, match", [
    ({"step": _edited}, r"what differs: the step function's code \(it, a function it calls"),
    ({"a": 1.25}, r"args \(args\[0\]: was \(\) float64 = 1\.5 sha256 \w+, now \(\) float64 "
                  r"= 1\.25 sha256 \w+\)"),
    ({"u0": np.linspace(0, 2, 1000)}, r"state0 \(state0: was \(1000,\) float64 sha256 \w+, "
                                      r"now"),
    ({"n": 301}, r"n_steps \(was 300, now 301\)"),
    ({"budget": "mem"}, r"budget \(was memory 1048576, .*now memory 2097152"),
    ({"preserve_rng_state": True}, r"options \(was check_recompute=True, "
                                   r"preserve_rng_state=False, now .*preserve_rng_state=True\)"),
])
def test_a_different_program_is_refused_naming_what_differs(tmp_path, change, match):
    u0 = np.linspace(0, 1, 1000)
    _crashed(tmp_path, u0)
    kw = dict(change)
    u0 = kw.pop("u0", u0)
    if kw.get("budget") == "mem":
        kw["budget"] = _budget(tmp_path, memory=2**21)
    where = os.path.join(os.path.realpath(tmp_path), PREFIX + "t")
    with pytest.raises(ResumeError, match=match) as err:
        _grad(tmp_path, u0, **kw)
    assert f"rm -r {where}" in str(err.value) and "resume=False" in str(err.value)
    assert os.listdir(tmp_path) == [PREFIX + "t"]  # refused: nothing touched
    _grad(tmp_path, np.linspace(0, 1, 1000))  # the same program still resumes
    assert dk.checkpoint.last_report().resumed_from is not None


def test_a_run_without_a_resume_point_is_started_over(tmp_path):
    u0 = np.linspace(0, 1, 1000)
    _crashed(tmp_path, u0)
    open(tmp_path / (PREFIX + "t") / "journal.jsonl", "w").close()  # killed before a point
    g = _grad(tmp_path, u0, step=_edited)  # another program: nothing to lose, no refusal
    assert dk.checkpoint.last_report().resumed_from is None and np.isfinite(g[1])


def test_two_loops_with_one_run_id_are_refused(tmp_path):
    budget = _budget(tmp_path)

    def J(u):
        v = dk.checkpoint.loop(_step, u, 300, (1.0,), budget, resume="same")
        return dnp.sum(dk.checkpoint.loop(_step, v, 300, (1.0,), budget, resume="same"))

    _step.crash_at = -1
    with pytest.raises(ResumeError, match=r"run id 'same' is already used by another resumable "
                                          r"loop of this process; give each its own"):
        dk.grad(J)(np.linspace(0, 1, 1000))


def test_a_run_in_use_by_another_live_process_is_refused(tmp_path):
    u0 = np.linspace(0, 1, 1000)
    _crashed(tmp_path, u0)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        with open(tmp_path / (PREFIX + "t") / "owner", "w") as fh:
            fh.write(f"{socket.gethostname()} {other.pid}\n")
        with pytest.raises(ResumeError, match=rf"is in use by process {other.pid}; wait for it"):
            _grad(tmp_path, u0)
    finally:
        other.kill()
        other.wait()
    _grad(tmp_path, u0)  # its owner is gone: resumed
    assert dk.checkpoint.last_report().resumed_from is not None


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 101, 3])
def test_a_bad_run_id_is_refused(tmp_path, bad):
    with pytest.raises(ResumeError, match=r"resume=.* is not a run id; use True"):
        _grad(tmp_path, np.linspace(0, 1, 1000), resume=bad)


def test_resume_true_names_the_run_after_the_step(tmp_path):
    _step.crash_at = 200
    with pytest.raises(Crash):
        _grad(tmp_path, np.linspace(0, 1, 1000), crash_at=200, resume=True)
    (name,) = os.listdir(tmp_path)
    assert name.startswith(PREFIX) and name.endswith("test_resume._step")


def _scan_step(c, x, i, a):
    if i == _step.crash_at:
        raise Crash(i)
    c = 0.5 * dnp.sin(c) * a + 0.5 * c + x
    return c, dnp.sum(c * c)


def _scan_grad(path, u0, every, crash_at=-1, resume="t", top=0.01):
    _step.crash_at = crash_at

    def J(u, a):
        c, ys = dk.checkpoint.scan(_scan_step, u, np.linspace(0, top, 300), (a,),
                                   _budget(path), save_every=every, resume=resume)
        return dnp.sum(c) + dnp.sum(ys * ys)

    return dk.grad(J, argnums=(0, 1))(u0, 1.5)


@pytest.mark.parametrize("every", [1, 7])
def test_a_scan_resumes_with_the_ys_of_the_steps_before(tmp_path, every):
    u0 = np.linspace(0, 1, 1000)
    g_full = _scan_grad(tmp_path, u0, every, resume=False)
    with pytest.raises(Crash):
        _scan_grad(tmp_path, u0, every, crash_at=200)
    with pytest.raises(ResumeError, match=r"what differs: xs \(xs\[0\]: was \(300,\) float64"):
        _scan_grad(tmp_path, u0, every, top=0.02)  # other xs: refused
    g = _scan_grad(tmp_path, u0, every)
    assert 150 < dk.checkpoint.last_report().resumed_from <= 200
    for a, b in zip(g, g_full, strict=True):
        assert np.array_equal(a, b)
    assert os.listdir(tmp_path) == []


def _kind_step(s, i, a):
    if i == _step.crash_at:
        raise Crash(i)
    u, k = s
    return 0.5 * dnp.sin(u) * a + 0.5 * u, np.int64(k) + 1  # k: an int, then NumPy's


def test_a_state_unlike_state0_makes_no_resume_point(tmp_path, caplog):
    budget = _budget(tmp_path)

    def J(u, crash_at=-1, resume="t"):
        _step.crash_at = crash_at
        s = dk.checkpoint.loop(_kind_step, (u, 0), 300, (1.5,), budget, resume=resume)
        return dnp.sum(s[0])

    u0 = np.linspace(0, 1, 1000)
    with pytest.raises(Crash), caplog.at_level("WARNING", logger="diffkit"):
        dk.grad(lambda u: J(u, 200))(u0)
    assert re.search(r"checkpoint\.loop run 't': the state at step 1 differs from state0 in "
                     r"structure or leaf types.*no resume point from there on", caplog.text)
    g = dk.grad(J)(u0)  # started over
    assert dk.checkpoint.last_report().resumed_from is None
    np.testing.assert_array_equal(g, dk.grad(lambda u: J(u, resume=False))(u0))


def test_sync_makes_each_resume_point_durable(tmp_path, monkeypatch):
    """``disk.sync: true``: the snapshot files, the fingerprints and the journal line of each
    resume point are flushed to the device (fsync) before the run goes on; it resumes alike."""
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    budget = _budget(tmp_path)
    budget["budget"]["disk"]["sync"] = True
    u0 = np.linspace(0, 1, 1000)
    g_full = _grad(tmp_path, u0, resume=False)
    with pytest.raises(Crash):
        _grad(tmp_path, u0, crash_at=200, budget=budget)
    journal = (tmp_path / (PREFIX + "t") / "journal.jsonl").read_text().splitlines()
    points = sum('"point"' in line for line in journal)
    assert points > 100 and synced.count("journal.jsonl") == points
    assert synced.count("fingerprints.npy") == points and "manifest.json" in synced
    assert synced.count("state_150.npy") == 1  # the snapshot files too (storage)
    g = _grad(tmp_path, u0, budget=budget)
    assert 150 < dk.checkpoint.last_report().resumed_from <= 200
    for a, b in zip(g, g_full, strict=True):
        assert np.array_equal(a, b)
