"""Strong and weak scaling of a distributed gradient: the 2D heat step in strips of rows
(examples/heat_distributed.py's step), on 1, 2 and 4 gloo processes on this machine.

For each world size P the script launches P ranks (torchrun's environment variables on a
free port) and times one gradient of 0.5 |u_T|^2 through a checkpointed loop of halo-
exchanging steps (forward sweep and reverse sweep), best of --repeat:
- strong scaling: one G x G grid, G/P rows per rank (ideal: time / P);
- weak scaling: G/4 x G per rank, so the grid grows with P (ideal: constant time).
Communication is timed inside the communicator (every shift and all_reduce, forward and
reverse), reported per time step; `comm %` is its share of the gradient's time.

Run: python benchmarks/bench_distributed.py [--quick] [--grid 512] [--steps 100]
Processes beyond the cores compete for them: on a 2-core machine, 4 ranks measure
oversubscription as much as communication (the table says how many cores there are).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np


def _timed(comm):
    """Wrap a communicator so that every transfer adds its seconds to `comm.seconds`."""

    class Timed(type(comm)):
        def __init__(self):
            self.__dict__.update(comm.__dict__)
            self.seconds = 0.0

    def timing(f):
        def method(self, *args):
            t0 = time.perf_counter()
            try:
                return f(self, *args)
            finally:
                self.seconds += time.perf_counter() - t0

        return method

    for name in ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "shift",
                 "exchange"):
        setattr(Timed, name, timing(getattr(type(comm), name)))
    return Timed()


def worker(rows: int, cols: int, steps: int, repeat: int) -> dict:
    """One rank: time the gradient; rank 0 returns the numbers."""
    import diffkit as dk
    import diffkit.distributed as dkd
    import diffkit.numpy as dnp
    from diffkit.distributed import comm as comm_mod

    dkd.init("gloo")
    timed = _timed(dkd.communicator())
    comm_mod.set_active(timed)

    def step(u, i, kappa):
        ext = dkd.halo_exchange(u, 1, axis=0, periodic=True)
        lap = ext[:-2] + ext[2:] + dnp.roll(u, 1, 1) + dnp.roll(u, -1, 1) - 4 * u
        return u + kappa * lap

    u0 = np.random.default_rng(dkd.rank()).standard_normal((rows, cols))
    loss = lambda u: 0.5 * dnp.sum(dk.checkpoint.loop(step, u, steps, (0.2,)) ** 2)
    grad = dk.grad(loss)
    grad(u0)  # warm up: kernels, sockets
    best, comm_s = float("inf"), 0.0
    for _ in range(repeat):
        dkd.barrier()
        timed.seconds = 0.0
        t0 = time.perf_counter()
        grad(u0)
        dkd.barrier()
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, comm_s = elapsed, timed.seconds
    worst = float(dkd.all_reduce(np.asarray(comm_s), "max"))
    dkd.shutdown()
    return {"seconds": best, "comm_per_step_ms": 1e3 * worst / steps,
            "comm_share": worst / best}


def launch(p: int, rows: int, cols: int, steps: int, repeat: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": str(p), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", str(rows), str(cols), str(steps), str(repeat)]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, text=True) for r in range(p)]
    outs = [proc.communicate(timeout=1800)[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"a rank failed with {p} processes: {[p.returncode for p in procs]}")
    return json.loads(outs[0].strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=512, help="G, the strong-scaling grid side")
    ap.add_argument("--steps", type=int, default=100, help="time steps per gradient")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--quick", action="store_true", help="G=128, 20 steps, 1 repeat")
    ap.add_argument("--worker", nargs=4, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        out = worker(*args.worker)
        if int(os.environ["RANK"]) == 0:
            print(json.dumps(out), flush=True)
        return
    g, steps, repeat = (128, 20, 1) if args.quick else (args.grid, args.steps, args.repeat)
    print(f"2D heat gradient through {steps} checkpointed halo-exchanging steps, gloo on "
          f"127.0.0.1, {os.cpu_count()} CPU cores, best of {repeat}")
    print(f"{'scaling':<8}{'ranks':>6}{'grid':>12}{'rows/rank':>11}{'s/gradient':>12}"
          f"{'speedup':>9}{'efficiency':>11}{'comm ms/step':>14}{'comm %':>8}")
    for mode in ("strong", "weak"):
        base = None
        for p in [int(x) for x in args.ranks.split(",")]:
            rows = g // p if mode == "strong" else g // 4
            r = launch(p, rows, g, steps, repeat)
            base = base or r["seconds"]
            speedup = base / r["seconds"] if mode == "strong" else float("nan")
            eff = speedup / p if mode == "strong" else base / r["seconds"]
            grid = f"{rows * p}x{g}"
            print(f"{mode:<8}{p:>6}{grid:>12}{rows:>11}{r['seconds']:>12.3f}"
                  f"{speedup:>9.2f}{eff:>11.2f}{r['comm_per_step_ms']:>14.3f}"
                  f"{100 * r['comm_share']:>7.1f}%")


if __name__ == "__main__":
    main()
