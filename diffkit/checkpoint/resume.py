"""Resuming a killed forward sweep: ``checkpoint.loop(..., resume=True)`` (or a run id).

With a plan that stores states below RAM, a resumable run keeps its snapshot files in
``<tier path>/diffkit-resume-<run id>/`` and, in the last tier's directory, a manifest (what
the run must match: `identity`) and a journal of JSON lines: each snapshot file once written
(its checksum and shapes), each discard, and each *resume point* -- a Save below RAM in the
forward sweep while no RAM snapshot or step tape is held, so that the snapshots below RAM
are all the sweep has. With `preserve_rng_state` each snapshot's generator state is kept
beside it; with `check_recompute` the fingerprints are kept too. Re-running the same program
replays the journal, takes over the files of the last resume point, loads its state and
runs on from there, so the gradient is bit-for-bit the uninterrupted run's. A run killed in
its reverse sweep (which discards the forward sweep's snapshots from the end) resumes from
the last point whose snapshots are all still on file: the forward sweep from there, then
the whole reverse sweep again (its cotangents are not kept). With a tier's ``sync: true``
the files a resume point needs and the journal line naming it are flushed to the device
(fsync), so the point survives the node, not only the process. A run directory
holding a resume point of a different program (code, state0, args, n_steps, budget, plan or
options) is refused by a `ResumeError` naming what differs; one without a resume point is
started over. A directory of manifest version 1 (SHA-256 checksums; version 2 records
CRC-32 ones, each with its algorithm) resumes, its snapshots verified with SHA-256. The
directories survive SIGTERM, SIGKILL and errors (they are not
``cleanup``'s run directories) and are removed when the gradient succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import weakref

import numpy as np

from diffkit.checkpoint.actions import RAM, Load, Save
from diffkit.checkpoint.identity import code_digest, leaf_digests, run_name
from diffkit.checkpoint.storage import Entry, _kind, synced_tiers, tier_paths
from diffkit.core import pytree
from diffkit.errors import ResumeError

__all__ = ["PREFIX", "Run", "open_run", "resume_sweep"]

PREFIX = "diffkit-resume-"
_VERSION = 2  # 2: snapshot checksums as "<algorithm>:<hex>" (CRC-32); 1: bare SHA-256
_READS = (1, 2)  # the manifest versions this code resumes (each snapshot checked as recorded)
_ID = "[A-Za-z0-9_.-]{1,100}"
_active: set[str] = set()  # journal directories of this process's open runs


def open_run(ex, request, n):
    """The resumable run of executor `ex` (None when its plan stores nothing below RAM)."""
    paths = tier_paths(ex.budget)
    if not any(v for k, v in ex.plan.slots.items() if k != RAM and k in paths):
        return None
    run_id = run_name(ex.step) if request is True else request
    if not isinstance(run_id, str) or not re.fullmatch(_ID, run_id):
        raise ResumeError(f"{ex.io.name}: resume={run_id!r} is not a run id; use True (the "
                          f"step's name) or letters, digits, '_', '.', '-' (at most 100)")
    return Run(run_id, _identity(ex, n), paths, ex)


def _identity(ex, n) -> dict:
    b = ex.budget
    tiers = getattr(b, "tiers", ()) or ()
    return {
        "step function": code_digest(ex.step),
        "state0": leaf_digests(ex.state0, "state0"),
        "args": leaf_digests(ex.args, "args"),
        "xs": leaf_digests(list(ex.io.x_flat), "xs"),
        "n_steps": n,
        "budget": f"memory {b.memory}, disk {b.disk.size if b.disk else None}, tiers "
                  f"{[(t.name, t.size) for t in tiers]}, schedule {b.schedule}, {b.costs}",
        "plan": f"{ex.plan.schedule!r} {ex.plan.slots}",
        "options": f"check_recompute={ex.checks.check_recompute}, "
                   f"preserve_rng_state={ex.checks.preserve_rng_state}",
    }


class Run:
    """One resumable run: its directories, manifest and journal (see the module docstring)."""

    def __init__(self, run_id, identity, paths, ex):
        self.id, self.identity, self.name = run_id, identity, ex.io.name
        self.dirs = {t: os.path.join(os.path.realpath(str(p)), PREFIX + run_id)
                     for t, p in paths.items()}
        self.home = self.dirs[list(paths)[-1]]  # the last (slowest) tier keeps the journal
        if self.home in _active:
            raise ResumeError(
                f"{self.name}: run id {run_id!r} is already used by another resumable loop of "
                f"this process; give each its own: resume='<name>'")
        leaves, self.tree = pytree.flatten(ex.state0)
        self.kinds = _kinds(leaves)
        self.point, self.pending, self.written_keys, self.stopped = None, None, set(), False
        self.ys_done = 0  # a scan's y_i on file: those of the first ys_done kept steps
        self.closed = False
        self.sync = bool(synced_tiers(ex.budget))  # sync: true: a point durable once logged
        self._open(ex)
        _active.add(self.home)
        self.journal = open(os.path.join(self.home, "journal.jsonl"), "a")  # noqa: SIM115
        self._release = weakref.finalize(self, _release, self.home, self.journal)  # abandoned

    # -- opening ------------------------------------------------------------------------
    def _open(self, ex) -> None:
        for d in self.dirs.values():
            os.makedirs(d, exist_ok=True)
        self._check_owner()
        manifest = _read_json(os.path.join(self.home, "manifest.json"))
        ours = manifest is not None and manifest.get("version") in _READS
        point = _replay(self._journal_lines()) if ours else None  # another version: restart
        if point is not None and manifest.get("identity") != self.identity:
            raise ResumeError(self._mismatch(manifest.get("identity") or {}))
        if point is not None and not self._intact(point, ex):
            point = None  # files gone: start over
        if point is None:
            self._wipe(keep=())
            _write_json(os.path.join(self.home, "manifest.json"),
                        {"version": _VERSION, "run id": self.id, "identity": self.identity})
            _write_json(os.path.join(self.home, "journal.jsonl"), None)
            self._durable(os.path.join(self.home, "manifest.json"))
        else:
            self._wipe(keep=point["live"], ys=point["ys"])
            self._compact(point)
            if manifest["version"] != _VERSION:  # older code must not append to it unread
                _write_json(os.path.join(self.home, "manifest.json"),
                            {**manifest, "version": _VERSION})
                self._durable(os.path.join(self.home, "manifest.json"))
            self._durable(os.path.join(self.home, "journal.jsonl"))
        self.point = point
        with open(os.path.join(self.home, "owner"), "w") as fh:
            fh.write(f"{socket.gethostname()} {os.getpid()}\n")

    def _check_owner(self) -> None:
        """Refuse a directory in use by another live process."""
        host = pid = None
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(self.home, "owner")) as fh:
                host, pid = fh.read().split()
            pid = int(pid)
        if host == socket.gethostname() and pid != os.getpid() and _alive(pid):
            raise ResumeError(f"{self.name}: run {self.id!r} in {self.home} is in use by "
                              f"process {pid}; wait for it to end, or give another run id "
                              f"(resume='<name>')")

    def _journal_lines(self) -> list[dict]:
        try:
            with open(os.path.join(self.home, "journal.jsonl")) as fh:
                text = fh.read()
        except OSError:
            return []
        out = []
        for line in text.split("\n")[:-1]:  # a last line without newline was cut by a kill
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def _intact(self, point, ex) -> bool:
        rng = ex.checks.preserve_rng_state
        fp = os.path.join(self.home, "fingerprints.npy")
        if ex.checks.check_recompute and not os.path.exists(fp):
            return False
        if not all(os.path.exists(rec["ys"]) for rec in point["ys"]):
            return False
        return all(os.path.exists(rec["path"]) and (not rng or os.path.exists(_rng_path(rec)))
                   for rec in point["live"].values())

    def _mismatch(self, old: dict) -> str:
        diffs = []
        for key, new in self.identity.items():
            was = old.get(key)
            if was == new:
                continue
            if isinstance(new, dict) and isinstance(was, dict):
                leaves = [k for k in sorted(set(new) | set(was)) if new.get(k) != was.get(k)]
                what = "; ".join(f"{k}: was {was.get(k, 'absent')}, now {new.get(k, 'absent')}"
                                 for k in leaves[:3])
                diffs.append(f"{key} ({what})")
            elif key == "step function":
                diffs.append("the step function's code (it, a function it calls, or a global "
                             "it reads was edited)")
            else:
                diffs.append(f"{key} (was {was}, now {new})")
        return (f"{self.name}: cannot resume run {self.id!r} from {self.home}: the killed run "
                f"was a different program; what differs: {', '.join(diffs)}. To start over, "
                f"delete that directory (rm -r {self.home}), pass another run id "
                f"(resume='<name>'), or resume=False")

    def _wipe(self, keep, ys=()) -> None:
        """Remove the files of the directories but the journal's, the live snapshots and their
        generator states."""
        keep_paths = {os.path.join(self.home, f) for f in ("manifest.json", "journal.jsonl",
                                                           "owner", "fingerprints.npy")}
        for rec in dict(keep).values():
            keep_paths |= {rec["path"], _rng_path(rec)}
        keep_paths |= {rec["ys"] for rec in ys}
        for d in self.dirs.values():
            for f in os.listdir(d):
                p = os.path.join(d, f)
                if p not in keep_paths and not (d == self.home and f == "owner"):
                    with contextlib.suppress(OSError):
                        os.remove(p)

    def _compact(self, point) -> None:
        """Rewrite the journal as the resume point's snapshots and the point itself."""
        tmp = os.path.join(self.home, "journal.jsonl.tmp")
        with open(tmp, "w") as fh:
            for rec in [*point["ys"], *point["live"].values()]:
                fh.write(json.dumps(rec) + "\n")
            fh.write(json.dumps({k: point[k] for k in ("point", "tier", "step")}) + "\n")
        os.replace(tmp, os.path.join(self.home, "journal.jsonl"))

    # -- what the storage and the executor tell it ---------------------------------------
    def directory(self, tier, base) -> str:
        return self.dirs[tier]

    def written(self, key, entry: Entry) -> None:
        """A snapshot file is complete: journal it (a state of another structure than state0's
        cannot be rebuilt on resume: no resume point from then on)."""
        if self.stopped:
            return
        if entry.tree != self.tree or entry.kinds != self.kinds:
            why = (f"the state at step {key[1]} differs from state0 in structure or leaf "
                   f"types, so it could not be rebuilt on resume")
            self._log({"stop": why})
            logging.getLogger("diffkit").warning("%s run %r: %s; no resume point from there "
                                                 "on (keep the state's leaf types fixed)",
                                                 self.name, self.id, why)
            self.stopped = True
            return
        self.written_keys.add(key)
        self._log({"save": key[1], "tier": key[0], "path": entry.path, "checksum": entry.digest,
                   "layout": [[list(s), d] for s, d in entry.layout]})
        if self.pending is not None and self.pending["key"] == key:
            self._point()

    def discarding(self, key) -> None:
        self.written_keys.discard(key)
        if not self.stopped:
            self._log({"discard": key[1], "tier": key[0]})

    def saved(self, ex, step, tier) -> None:
        """The executor saved state `step` in `tier`: keep its generator state, and make it
        a resume point when the snapshots below RAM are all the forward sweep holds."""
        key = (tier, step)
        if tier == RAM or self.stopped:
            return
        if ex.rng is not None:
            path = _rng_path({"path": os.path.join(self.dirs[tier], f"state_{step}.npy")})
            _save_rng(path, ex.rng.at[key])
            self._durable(path)
        if ex.actions.reversing or ex.storage.ram or ex.tapes:
            return
        if ex.fp is not None:
            _save_fingerprints(os.path.join(self.home, "fingerprints.npy"), ex.fp)
            self._durable(os.path.join(self.home, "fingerprints.npy"))
        self._save_ys(ex, step)
        self.pending = {"key": key, "point": ex.actions.index}
        if key in self.written_keys:
            self._point()

    def _save_ys(self, ex, step) -> None:
        """A scan's y_i of the steps before `step` not yet on file, as one segment file."""
        ys = getattr(ex.io, "ys", None)
        first, stop = self.ys_done, step // getattr(ex.io, "every", 1)
        if ys is None or stop <= first:
            return
        path = os.path.join(self.home, f"ys_{first}_{stop}.npy")
        with open(path, "wb") as fh:
            for j in range(first, stop):
                for leaf in ys[j]:
                    np.lib.format.write_array(fh, np.asarray(_to_numpy(leaf)),
                                              allow_pickle=False)
        self._durable(path)
        self._log({"ys": path, "first": first, "stop": stop})
        self.ys_done = stop

    def _point(self) -> None:
        p, self.pending = self.pending, None
        self._log({"point": p["point"], "tier": p["key"][0], "step": p["key"][1]})
        if self.sync:  # the snapshot files are on the device already (storage fsyncs them)
            os.fsync(self.journal.fileno())

    def _durable(self, path) -> None:
        """With `sync`, flush a file a resume point needs, and its name, to the device."""
        if self.sync:
            for p in (path, os.path.dirname(path)):
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _log(self, record) -> None:
        self.journal.write(json.dumps(record) + "\n")
        self.journal.flush()

    def close(self, success: bool) -> None:
        """Success: remove the directories. Otherwise keep them for a rerun (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._release()
        if success:
            for d in self.dirs.values():
                shutil.rmtree(d, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.home, "owner"))


def _release(home, journal) -> None:
    journal.close()
    _active.discard(home)


def resume_sweep(ex, current, at):
    """Where executor `ex`'s forward sweep starts: state 0, or the run's resume point (its
    snapshots taken over, generators and fingerprints restored, the actions before it
    skipped)."""
    run = ex.run
    point = None if run is None else run.point
    if point is None:
        return current, at
    for rec in point["live"].values():
        key = (rec["tier"], rec["save"])
        layout = tuple((tuple(s), d) for s, d in rec["layout"])
        ex.storage.adopt(key, Entry(rec["path"], _checksum(rec, run), run.tree, run.kinds,
                                    layout))
        if ex.rng is not None:
            ex.rng.at[key] = _load_rng(_rng_path(rec))
    if ex.fp is not None and not _load_fingerprints(os.path.join(run.home, "fingerprints.npy"),
                                                    ex.fp, point["step"]):
        ex.fp = None  # unreadable: the states before the point cannot be checked
    if point["ys"]:
        _load_ys(ex, run, point["ys"])
    for _ in range(point["point"] - 1):
        next(ex.actions)
    last = next(ex.actions, None)
    if last != Save(point["step"], point["tier"]):
        raise ResumeError(f"{ex.io.name}: run {run.id!r}: the plan's action "
                          f"{point['point']} is {last}, not the journal's "
                          f"Save({point['step']}, {point['tier']}); delete {run.home}")
    ex.report.resumed_from = point["step"]
    ex.progress.update("forward", point["step"])
    return ex._do(Load(point["step"], point["tier"]), None, None)


def _checksum(rec, run) -> str:
    """A journaled snapshot's checksum: "<algorithm>:<hex>", or version 1's bare SHA-256."""
    if "checksum" in rec:
        return rec["checksum"]
    if "sha256" in rec:
        return "sha256:" + rec["sha256"]
    raise ResumeError(f"{run.name}: run {run.id!r}: the journal records no checksum for "
                      f"{rec['path']}, so it cannot be verified; delete {run.home}")


def _replay(lines) -> dict | None:
    """The last resume point of a journal none of whose snapshots was discarded after it.

    A kill in the reverse sweep, which discards the forward sweep's snapshots from the end,
    falls back to the last point whose snapshots are all still there: the forward sweep
    resumes from there rather than from step 0. The points form a stack: discarding a
    snapshot saved at line ``s`` voids exactly the points after ``s``."""
    live, points, ys = {}, [], []  # live: key -> (line of its save, record)
    for t, rec in enumerate(lines):
        if "ys" in rec:
            ys.append((t, rec))
        elif "save" in rec:
            live[rec["tier"], rec["save"]] = (t, rec)
        elif "discard" in rec:
            saved = live.pop((rec["tier"], rec["discard"]), None)
            while saved is not None and points and points[-1][0] > saved[0]:
                points.pop()
        elif "point" in rec:
            points.append((t, rec))
        elif "stop" in rec:
            live, points, ys = {}, [], []
    if not points:
        return None
    at, rec = points[-1]
    return {**rec, "live": {k: r for k, (s, r) in live.items() if s < at},
            "ys": [r for s, r in ys if s < at]}


def _load_ys(ex, run, segments) -> None:
    """Put a scan's y_i of the steps before the resume point back (their structure and kinds
    are those of step 0's y, which the measurement made)."""
    from diffkit.checkpoint.storage import _restore

    kinds = _kinds(ex.io.y_last)
    with contextlib.ExitStack() as stack:
        for rec in segments:
            fh = stack.enter_context(open(rec["ys"], "rb"))
            for j in range(rec["first"], rec["stop"]):
                ex.io.ys[j] = [_restore(np.lib.format.read_array(fh, allow_pickle=False), k)
                               for k in kinds]
    run.ys_done = segments[-1]["stop"]


def _to_numpy(x):
    from diffkit.plugins import registry

    b = registry().backend_of(type(x))
    return b.to_numpy(x) if b is not None else x


def _kinds(leaves) -> list:
    from diffkit.plugins import registry

    reg = registry()
    return [_kind(x, reg.backend_of(type(x))) for x in leaves]


def _rng_path(rec) -> str:
    return rec["path"][:-len(".npy")] + ".rng.npz"


def _save_rng(path, state) -> None:
    kind, keys, pos, has_gauss, cached = state.numpy
    arrays = {"keys": keys, "meta": np.array([pos, has_gauss, cached], dtype=np.float64)}
    if state.torch is not None:
        arrays["torch"] = state.torch.numpy()
    for k, t in enumerate(state.cuda or ()):
        arrays[f"cuda{k}"] = t.numpy()
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_rng(path):
    from diffkit.checkpoint.stepcheck import RngState

    with np.load(path) as z:
        state = RngState.__new__(RngState)
        pos, has_gauss, cached = z["meta"]
        state.numpy = ("MT19937", z["keys"], int(pos), int(has_gauss), float(cached))
        torch = sys.modules.get("torch")
        state.torch = torch.from_numpy(z["torch"].copy()) if "torch" in z else None
        cuda = sorted((k for k in z.files if k.startswith("cuda")), key=lambda k: int(k[4:]))
        state.cuda = [torch.from_numpy(z[k].copy()) for k in cuda] or None
    return state


def _save_fingerprints(path, fp) -> None:
    m = fp.frontier // fp.every + 1
    tmp = path + ".tmp.npy"
    np.save(tmp, np.concatenate([[fp.every, fp.frontier, fp.cap], fp.values[:m]]))
    os.replace(tmp, path)


def _load_fingerprints(path, fp, step) -> bool:
    try:
        data = np.load(path)
    except (OSError, ValueError):
        return False
    every, frontier, cap = (int(v) for v in data[:3])
    if cap != fp.cap or len(data) - 3 > cap:
        return False
    fp.values[:len(data) - 3] = data[3:]
    fp.every, fp.frontier, fp.last_ok = every, frontier, step
    return True


def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _write_json(path, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        if data is not None:
            json.dump(data, fh)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
