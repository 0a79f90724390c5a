"""Overlapped disk I/O against synchronous I/O on a disk-bound checkpointed loop (issue 17
item 6).

A step of tens of milliseconds on a state of tens of MB (``--work`` updates 0.5 sin(u) a +
0.5 u of a float64 array: by default two, about the time of one fsync-ed write here), a
RAM budget of a few states and a large, cheap disk tier, so that the plan (MultiLevel) writes
most states to disk in the forward sweep and reads each back in the reverse sweep. With
``--sync`` (the budget's ``disk.sync: true``) every snapshot file is flushed to the device
(fsync) before its write counts as done: a durable checkpoint, what a resumable run on a
cluster wants, and a write that costs as much as a step or more, so the run is bound by the
device, not by the CPU copying into the page cache. ``--cold`` also drops each file from the
page cache once written (posix_fadvise), so the reverse sweep's reads come from the device
too: a disk tier larger than the page cache.

The same gradient runs in three modes, interleaved round by round (the order rotating), and
each figure is the median over the rounds: the writes in a background thread and the next
disk load read ahead (the default); every write and read in the caller's thread
(``budget.disk.overlap: false``: its plan has no I/O room, so one or two more RAM slots);
and the overlapped run's plan with the I/O in the caller's thread (the overlap's own saving,
apart from the plan's). "waited" is the time the loop's thread spent in disk-tier storage
calls (writing, reading, or waiting for the background thread): the I/O left on the critical
path, which overlap is to shrink; "CPU" is the process's CPU time (both threads): overlap
shortens the wall time only when a core is idle to run the I/O thread's share (its copies
and checksums). ``--checksums crc32,sha256`` runs every mode with each snapshot checksum
(`storage.CHECKSUM`; CRC-32 the default, SHA-256 what diffkit used before), interleaved too:
what the checksum costs in CPU and wall time; first, the CPU time of one snapshot written
and read back through `Storage` with each. The gradients are compared bit for bit.

Run: python benchmarks/bench_disk_io.py [--state-mb 16] [--steps 40] [--rounds 5]
     [--path DIR] [--sync] [--cold] [--work 2] [--checksums crc32]   (the disk tier's
     directory: default the system temp dir)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

import diffkit as dk  # noqa: E402
import diffkit.checkpoint.executor as executor  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
from diffkit.checkpoint import storage as storage_module  # noqa: E402
from diffkit.checkpoint.storage import Storage  # noqa: E402

MODES = ("overlapped", "synchronous", "sync, same plan")
IO_WAIT = [0.0]  # seconds the loop's thread spent in disk-tier calls, this gradient


def make_step(work: int):
    """A step of `work` updates u <- 0.5 sin(u) a + 0.5 u: its time against one write's."""

    def step(u, i, a):
        for _ in range(work):
            u = 0.5 * dnp.sin(u) * a + 0.5 * u
        return u

    return step


def write_time(u0, path, sync) -> float:
    """Seconds to write one state as the disk tier does (fsync-ed with `sync`), median of 3."""
    times = []
    for _ in range(3):
        fd, name = tempfile.mkstemp(dir=path)
        t0 = time.perf_counter()
        with os.fdopen(fd, "wb") as fh:
            np.lib.format.write_array(fh, u0, allow_pickle=False)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        times.append(time.perf_counter() - t0)
        os.remove(name)
    return statistics.median(times)


def storage_class(cold: bool, overlap: bool):
    """The executor's storage for one mode: timing the caller's disk-tier calls, dropping
    written files from the page cache (`cold`), the I/O in the caller's thread unless
    `overlap` (whatever room the plan made for it)."""

    class Timed(Storage):
        def __init__(self, *args, **kw):
            super().__init__(*args, **{**kw, "overlap": kw.get("overlap", False) and overlap})

        def save(self, step, tier, state):
            return self._timed(super().save, step, tier, state)

        def load(self, step, tier):
            return self._timed(super().load, step, tier)

        def discard(self, step, tier):
            return self._timed(super().discard, step, tier)

        def _timed(self, call, step, tier, *rest):
            if tier == "ram":
                return call(step, tier, *rest)
            t0 = time.perf_counter()
            try:
                return call(step, tier, *rest)
            finally:
                IO_WAIT[0] += time.perf_counter() - t0

        def _write(self, key, state):
            super()._write(key, state)
            if cold:  # clean pages (fsync-ed) are dropped: the next read is from the device
                fd = os.open(self.files[key].path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)

    return Timed


def gradient(step, u0, n, budget, storage, checksum):
    """(wall seconds, CPU seconds of the process, gradient, report, seconds waited on disk
    calls) of one gradient, its snapshots checked with `checksum`."""
    executor.Storage, IO_WAIT[0] = storage, 0.0
    storage_module.CHECKSUM, default = checksum, storage_module.CHECKSUM
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        g = dk.grad(lambda u, a: dnp.sum(dk.checkpoint.loop(step, u, n, (a,), budget)),
                    argnums=(0, 1))(u0, 1.5)
        return (time.perf_counter() - t0, time.process_time() - c0, g,
                dk.checkpoint.last_report(), IO_WAIT[0])
    finally:
        executor.Storage, storage_module.CHECKSUM = Storage, default


def measure(state_mb=16.0, steps=40, rounds=5, path=None, sync=True, cold=False, work=2,
            checksums=None):
    """Run the three modes (each with each of `checksums`) interleaved; return {mode: dict of
    medians and the report} (keys "mode, checksum" with several checksums), the times of one
    step and of one write, and whether the gradients agree bit for bit."""
    m = int(state_mb * 2**20 / 8)
    u0 = np.linspace(0.0, 1.0, m)
    path = path or tempfile.gettempdir()
    disk = {"path": path, "size": "64GiB", "sync": sync}
    step = make_step(work)

    def budget(overlap):
        return {"budget": {"memory": 30 * u0.nbytes, "disk": {**disk, "overlap": overlap}},
                "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}

    checksums = checksums or [storage_module.CHECKSUM]
    modes = {"overlapped": (budget(True), storage_class(cold, True)),
             "synchronous": (budget(False), storage_class(cold, False)),
             "sync, same plan": (budget(True), storage_class(cold, False))}
    runs = {_label(m, c, checksums): (*modes[m], c) for c in checksums for m in MODES}
    step(u0, 0, 1.5)
    t_step = time.perf_counter()
    for _ in range(3):
        step(u0, 0, 1.5)
    t_step = (time.perf_counter() - t_step) / 3
    t_write = write_time(u0, path, sync)
    wall, cpu, wait = ({k: [] for k in runs} for _ in range(3))
    grads, reps = {}, {}
    order = list(runs)
    for r in range(rounds):
        for k in range(len(order)):
            mode = order[(k + r) % len(order)]
            t, c, g, rep, w = gradient(step, u0, steps, *runs[mode])
            wall[mode].append(t)
            cpu[mode].append(c)
            wait[mode].append(w)
            grads[mode], reps[mode] = g, rep
    same = all(np.array_equal(a, b) for g in grads.values()
               for a, b in zip(g, grads[order[0]], strict=True))
    out = {mode: {"wall": statistics.median(wall[mode]), "cpu": statistics.median(cpu[mode]),
                  "waited": statistics.median(wait[mode]), "report": reps[mode]}
           for mode in runs}
    return out, (t_step, t_write), same


def snapshot_cpu(state_mb, path, checksums, rounds=9):
    """{checksum: (write, read) CPU ms}: one state written and read back through `Storage`
    (its checksum at both), medians of interleaved rounds."""
    u = np.linspace(0.0, 1.0, int(state_mb * 2**20 / 8))
    times = {c: ([], []) for c in checksums}
    s = Storage(path)
    try:
        for r in range(rounds):
            for k, c in enumerate(checksums):
                storage_module.CHECKSUM, default = c, storage_module.CHECKSUM
                try:
                    c0 = time.process_time()
                    s.save(r * len(checksums) + k, "disk", u)
                    c1 = time.process_time()
                    s.load(r * len(checksums) + k, "disk")
                    c2 = time.process_time()
                finally:
                    storage_module.CHECKSUM = default
                s.discard(r * len(checksums) + k, "disk")
                times[c][0].append(c1 - c0)
                times[c][1].append(c2 - c1)
    finally:
        s.close()
    return {c: tuple(statistics.median(t) * 1e3 for t in w_r) for c, w_r in times.items()}


def _label(mode, checksum, checksums):
    return mode if len(checksums) == 1 else f"{mode}, {checksum}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-mb", type=float, default=16.0)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--path", default=tempfile.gettempdir())
    ap.add_argument("--sync", action="store_true", help="budget.disk.sync: fsync each file")
    ap.add_argument("--cold", action="store_true", help="drop written files from the cache")
    ap.add_argument("--work", type=int, default=2, help="updates per step (its cost)")
    ap.add_argument("--checksums", default=storage_module.CHECKSUM,
                    help="snapshot checksums to compare, comma-separated: crc32,sha256")
    args = ap.parse_args(argv)
    args.checksums = args.checksums.split(",")
    for c, (w, r) in snapshot_cpu(args.state_mb, args.path, args.checksums).items():
        print(f"one {args.state_mb:.0f} MiB snapshot through Storage, {c}: write {w:.1f} ms, "
              f"verified read {r:.1f} ms of CPU (medians of 9, interleaved)")
    out, times, same = measure(args.state_mb, args.steps, args.rounds, args.path, args.sync,
                               args.cold, args.work, args.checksums)
    report(out, times, same, args)


def report(out, times, same, args):
    """Print the table: one row a mode, then the saving of overlap."""
    how = ", each file fsync-ed" if args.sync else ""
    how += ", dropped from the page cache" if args.cold else ""
    print(f"state {args.state_mb:.0f} MiB, {args.steps} steps, one step {times[0] * 1e3:.0f} ms, "
          f"one write {times[1] * 1e3:.0f} ms, disk tier {args.path}{how}; medians of "
          f"{args.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    for mode, o in out.items():
        rep = o["report"]
        print(f"  {mode:<24} {o['wall']:7.3f} s (CPU {o['cpu']:6.3f} s), waited on disk calls "
              f"{o['waited']:6.3f} s; "
              f"plan {rep.plan.slots}, written {rep.disk_written / 2**20:,.0f} MiB, read "
              f"{rep.disk_read / 2**20:,.0f} MiB, in background {rep.overlapped_writes} "
              f"writes, {rep.read_ahead} reads; I/O room {rep.io_bytes / 2**20:.0f} MiB")
    checksums = getattr(args, "checksums", None) or [storage_module.CHECKSUM]
    for c in checksums:
        on = out[_label("overlapped", c, checksums)]
        for mode in MODES[1:]:
            off = out[_label(mode, c, checksums)]
            print(f"  saving against {_label(mode, c, checksums)}: "
                  f"{off['wall'] - on['wall']:+.3f} s "
                  f"({_less(on['wall'], off['wall'])} of the wall time), waited "
                  f"{off['waited'] - on['waited']:+.3f} s less "
                  f"({_less(on['waited'], off['waited'])})")
    for c in checksums[1:]:
        for mode in MODES:
            a, b = out[_label(mode, checksums[0], checksums)], out[_label(mode, c, checksums)]
            print(f"  {mode}, {checksums[0]} against {c}: wall {_less(a['wall'], b['wall'])}, "
                  f"CPU {_less(a['cpu'], b['cpu'])}, waited {_less(a['waited'], b['waited'])} "
                  f"less")
    print(f"  gradients equal bit for bit: {same}")


def _less(a, b) -> str:
    """How much less `a` is than `b`, as a signed fraction of `b`."""
    return f"{1 - a / b:+.1%}" if b else "n/a"


if __name__ == "__main__":
    main()
