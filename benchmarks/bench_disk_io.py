"""Overlapped disk I/O against synchronous I/O on a disk-bound checkpointed loop (issue 17
item 6).

A step of a few milliseconds on a state of tens of MB (0.5 sin(u) a + 0.5 u on float64), a
RAM budget of a few states and a large, cheap disk tier, so that the plan (MultiLevel /
Segmented) writes most states to disk in the forward sweep and reads each back in the
reverse sweep. The same gradient is timed with the writes in a background thread and the
next disk load read ahead (the default) and with every write and read in the caller's thread
(`Executor.overlap_io = False`), alternating, best of the repeats; the ratio is of the same
run. A third row runs the overlapped run's plan (its room for the I/O taken) with the I/O in
the caller's thread: the overlap's own saving, apart from the plan's. "in disk calls" is the
time the loop's thread spent in disk-tier storage calls (writing, reading, or waiting for the
background thread): the I/O left on the critical path, which overlap is to shrink. The gradients are
compared bit for bit.

With --fsync every snapshot file is flushed to the device before its write counts as done
(a disk tier larger than the page cache, or a durable one): the run is then bound by the
device, not by the CPU copying into the page cache. On a machine whose cores are all busy
(as a shared 2-core one), overlap has no idle core to run on, and only the device-bound case
can gain.

Run: python benchmarks/bench_disk_io.py [--state-mb 16] [--steps 60] [--repeats 3]
     [--path DIR] [--fsync]   (the disk tier's directory: default the system temp dir)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

import diffkit as dk  # noqa: E402
import diffkit.checkpoint.executor as executor  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
from diffkit.checkpoint.executor import Executor  # noqa: E402
from diffkit.checkpoint.storage import Storage  # noqa: E402


class FsyncStorage(Storage):
    """Each snapshot file flushed to the device when written (--fsync)."""

    def _write(self, key, state):
        super()._write(key, state)
        fd = os.open(self.files[key].path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def step(u, i, a):
    return 0.5 * dnp.sin(u) * a + 0.5 * u


def modes(fsync: bool) -> dict:
    """Mode -> (Executor.overlap_io, the storage class the executor uses)."""

    class Timed(FsyncStorage if fsync else Storage):
        """Counts the caller's time in disk-tier calls: the I/O on the critical path."""

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

    base = Timed

    class SyncStorage(base):
        """The I/O in the caller's thread, whatever room the plan made for overlapping it."""

        def __init__(self, *args, overlap=False, **kw):
            super().__init__(*args, overlap=False, **kw)

    return {"overlapped": (True, base), "synchronous": (False, base),
            "sync, same plan": (True, SyncStorage)}


IO_WAIT = [0.0]  # seconds the caller spent in disk-tier calls, this gradient


def gradient(u0, n, budget, mode):
    Executor.overlap_io, executor.Storage = mode
    IO_WAIT[0] = 0.0
    try:
        t0 = time.perf_counter()
        g = dk.grad(lambda u, a: dnp.sum(dk.checkpoint.loop(step, u, n, (a,), budget)),
                    argnums=(0, 1))(u0, 1.5)
        return time.perf_counter() - t0, g, dk.checkpoint.last_report(), IO_WAIT[0]
    finally:
        Executor.overlap_io, executor.Storage = True, Storage


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-mb", type=float, default=16.0)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--path", default=tempfile.gettempdir())
    ap.add_argument("--fsync", action="store_true")
    args = ap.parse_args(argv)
    runs = modes(args.fsync)
    m = int(args.state_mb * 2**20 / 8)
    u0 = np.linspace(0.0, 1.0, m)
    state = u0.nbytes
    budget = {"budget": {"memory": 30 * state, "disk": {"path": args.path, "size": "64GiB"}},
              "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}
    t_step = time.perf_counter()
    step(u0, 0, 1.5)
    t_step = time.perf_counter() - t_step
    best, wait = dict.fromkeys(runs, np.inf), dict.fromkeys(runs, np.inf)
    grads, reps = {}, {}
    for _ in range(args.repeats):
        for mode in runs:
            t, g, rep, w = gradient(u0, args.steps, budget, runs[mode])
            best[mode], wait[mode] = min(best[mode], t), min(wait[mode], w)
            grads[mode], reps[mode] = g, rep
    same = all(np.array_equal(a, b) for g in grads.values()
               for a, b in zip(g, grads["overlapped"], strict=True))
    print(f"state {state / 2**20:.1f} MiB, {args.steps} steps, one step {t_step * 1e3:.1f} ms, "
          f"disk tier {args.path}{' (each file fsync-ed)' if args.fsync else ''}")
    for mode, rep in reps.items():
        print(f"  {mode:<16} {best[mode]:7.3f} s, in disk calls {wait[mode]:6.3f} s; plan "
              f"{rep.plan.slots}, disk written "
              f"{rep.disk_written / 2**20:,.0f} MiB, read {rep.disk_read / 2**20:,.0f} MiB, "
              f"writes in background {rep.overlapped_writes}, reads ahead {rep.read_ahead}, "
              f"I/O room {rep.io_bytes / 2**20:.1f} MiB")
    on, w = best["overlapped"], wait["overlapped"]
    print(f"  overlapped / synchronous: {on / best['synchronous']:.3f}, overlapped / sync with "
          f"the same plan: {on / best['sync, same plan']:.3f}; time in disk calls: "
          f"{w / wait['synchronous']:.3f} and {w / wait['sync, same plan']:.3f} (same run, "
          f"best of {args.repeats}); gradients equal bit for bit: {same}")


if __name__ == "__main__":
    main()
