"""Checkpointed time loops against peers: 1D heat and 1D viscous Burgers, in one process.

    heat:    N=1000, periodic, 10,000 explicit steps u + r (u[j-1] - 2u + u[j+1]), r = 0.25;
             loss sum(u_n^2), gradient w.r.t. u_0
    Burgers: N=512 on [0, 2 pi), periodic, 20,000 explicit Euler steps, dt = 1e-4, centred
             differences, u_t + u u_x = nu u_xx, nu = 0.01; loss sum(u_n^2), gradient
             w.r.t. u_0 and nu (nu passed in the loop's args)

Rows: diffkit store-all, diffkit checkpointed at 1/20 of store-all's planned peak, a
hand-written discrete adjoint in NumPy (all states in one preallocated array; the reference
gradient and the time unit), the same adjoint driven by diffkit's Revolve with n/20
snapshots, HIPS autograd (timed over n/4 steps, scaled), PyTorch eager store-all and with
torch.utils.checkpoint (~sqrt(n) segments, non-reentrant and reentrant), JAX (lax.scan +
jax.checkpoint, jitted) when installed. Then diffkit's targets: store-all / hand-written, the
checkpointed time against its plan's prediction, its peak memory against plan and budget;
and a cProfile of the checkpointed Burgers gradient.

Columns: `time` is the best wall time of a full gradient (forward + reverse) over the repeats,
as a multiple of the hand-written adjoint's; `tracemalloc` is the peak of Python/NumPy
allocations during one gradient, measured in a separate warm run (tracemalloc slows Python; it
does not see torch's allocator; rows whose memory grows linearly with n are traced over n/10
steps and scaled); `RSS peak` is the rise of the process's resident high-water
mark (/proc/self/status VmHWM, reset through /proc/self/clear_refs, after malloc_trim) during
one timed run: the only memory figure that sees torch, coarse (page granularity, malloc
caching); `rel err` is max|g - g_hand| / max|g_hand| over all gradient arrays; `budget` and
`peak/budget` the diffkit rows' budget.memory and the traced peak against it (diffkit
checkpointed also at 4 and 8 slots' budgets, and with check_recompute=False: the
fingerprint check's cost).

Run: python benchmarks/bench_loops.py [--quick] [--no-profile]   (docs/benchmarks.md)
(BLAS pinned to one thread; --quick: 1/50 of the steps, one repeat, a smoke test.)
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

import diffkit as dk  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
from diffkit.checkpoint import Advance, Discard, Load, Reverse, Revolve, Save  # noqa: E402

HEAT_R = 0.25
B_DX, B_DT = 2 * math.pi / 512, 1e-4


# -- the two problems -------------------------------------------------------------------------
@dataclass
class Problem:
    """A loop `u = step(u, i, *args)` (loss sum(u_n^2)) and the exact transpose of its step."""

    name: str
    n: int
    u0: np.ndarray
    args: tuple  # differentiated scalars (floats)
    make_step: object  # xp -> step(u, i, *args), for xp in dnp, numpy, autograd.numpy, torch
    adjoint: object  # (u_i, g_{i+1}, *args) -> (g_i, d loss/d args contributions of step i)


def heat_step(xp):
    def step(u, i):
        return u + HEAT_R * (xp.roll(u, 1) - 2 * u + xp.roll(u, -1))

    return step


def heat_adjoint(u, g):
    # the step is I + r L with L symmetric: its transpose is itself, independent of u
    return g + HEAT_R * (np.roll(g, 1) - 2 * g + np.roll(g, -1)), ()


def burgers_step(xp):
    def step(u, i, nu):
        up, um = xp.roll(u, -1), xp.roll(u, 1)
        return u + B_DT * (nu * (up - 2 * u + um) / B_DX**2 - u * (up - um) / (2 * B_DX))

    return step


def burgers_adjoint(u, g, nu):
    # u' = u + dt (nu D2 u - u D1 u), D2 symmetric, D1 antisymmetric:
    # g_u = g + dt (nu D2 g - (D1 u) g + D1 (u g)),  g_nu = dt <g, D2 u>
    up, um = np.roll(u, -1), np.roll(u, 1)
    ug = u * g
    d2g = (np.roll(g, -1) - 2 * g + np.roll(g, 1)) / B_DX**2
    d1ug = (np.roll(ug, -1) - np.roll(ug, 1)) / (2 * B_DX)
    gu = g + B_DT * (nu * d2g - g * (up - um) / (2 * B_DX) + d1ug)
    return gu, (B_DT * np.dot(g, up - 2 * u + um) / B_DX**2,)


def problems(scale: float) -> list[Problem]:
    x = np.arange(1000) / 1000
    heat0 = np.sin(2 * np.pi * x) + 0.5 * np.cos(6 * np.pi * x) + np.exp(-200 * (x - 0.3) ** 2)
    xb = np.arange(512) * B_DX
    burgers0 = 0.8 * np.sin(xb) + 0.3 * np.sin(2 * xb + 1.0) + 0.2
    return [Problem("1D heat", max(2, int(10_000 * scale)), heat0, (), heat_step, heat_adjoint),
            Problem("1D viscous Burgers", max(2, int(20_000 * scale)), burgers0, (0.01,),
                    burgers_step, burgers_adjoint)]


# -- gradients, one function per method; each returns the tuple (g_u0, *g_args) -----------------
def hand_written(p: Problem, n: int):
    step = p.make_step(np)
    states = np.empty((n + 1, p.u0.size))
    states[0] = p.u0
    for i in range(n):
        states[i + 1] = step(states[i], i, *p.args)
    g, g_args = 2 * states[n], [0.0] * len(p.args)
    for i in range(n - 1, -1, -1):
        g, ga = p.adjoint(states[i], g, *p.args)
        g_args = [a + b for a, b in zip(g_args, ga)]
    return (g, *g_args)


def hand_revolve(p: Problem, n: int, slots: int):
    """The hand-written step and adjoint, driven by Revolve(n, slots)'s actions."""
    step, snaps, current = p.make_step(np), {}, p.u0
    g, g_args = None, [0.0] * len(p.args)
    for action in Revolve(n, slots).actions():
        match action:
            case Advance(start, stop):
                for i in range(start, stop):
                    current = step(current, i, *p.args)
            case Save(k, _):
                snaps[k] = current  # steps return new arrays: a reference is a snapshot
            case Load(k, _):
                current = snaps[k]
            case Discard(k, _):
                del snaps[k]
            case Reverse(i):
                if g is None:  # the first reversal: the loss's cotangent from u_n
                    g = 2 * step(current, i, *p.args)
                g, ga = p.adjoint(current, g, *p.args)
                g_args = [a + b for a, b in zip(g_args, ga)]
                current = None
    return (g, *g_args)


def diffkit_grad(p: Problem, n: int, budget, check: bool = True):
    step = p.make_step(dnp)

    def loss(u0, *args):
        u = dk.checkpoint.loop(step, u0, n, args, budget, check_recompute=check)
        return dnp.sum(u * u)

    out = dk.grad(loss, argnums=tuple(range(1 + len(p.args))))(p.u0, *p.args)
    return tuple(np.asarray(o) for o in out)


def autograd_grad(p: Problem, n: int):
    import autograd
    import autograd.numpy as anp

    step = p.make_step(anp)

    def loss(params):  # a tuple: autograd differentiates w.r.t. one argument
        u, args = params[0], params[1:]
        for i in range(n):
            u = step(u, i, *args)
        return anp.sum(u * u)

    return tuple(np.asarray(o) for o in autograd.grad(loss)((p.u0, *p.args)))


def torch_grad(p: Problem, n: int, segments: int | None, reentrant: bool = False):
    import torch
    from torch.utils.checkpoint import checkpoint

    step = p.make_step(torch)
    leaves = [torch.tensor(p.u0, requires_grad=True)]
    leaves += [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in p.args]

    def run(u, a, b, *args):
        for i in range(a, b):
            u = step(u, i, *args)
        return u

    if segments is None:
        u = run(leaves[0], 0, n, *leaves[1:])
    else:
        bounds = np.linspace(0, n, segments + 1).astype(int)
        u = leaves[0]
        for a, b in zip(bounds[:-1], bounds[1:]):
            u = checkpoint(run, u, int(a), int(b), *leaves[1:], use_reentrant=reentrant)
    (u * u).sum().backward()
    return tuple(x.grad.numpy() for x in leaves)


def jax_grad(p: Problem, n: int, segments: int):
    """lax.scan over segments of a jax.checkpoint-ed inner scan (n divisible by segments)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    step, k = p.make_step(jnp), n // segments

    @jax.checkpoint
    def segment(u, args):
        return jax.lax.scan(lambda u, i: (step(u, i, *args), None), u, jnp.arange(k))[0]

    def loss(u0, *args):
        u = jax.lax.scan(lambda u, _: (segment(u, args), None), u0, None, length=segments)[0]
        return jnp.sum(u * u)

    g = jax.jit(jax.grad(loss, argnums=tuple(range(1 + len(p.args)))))
    u0 = jnp.asarray(p.u0)
    jax.block_until_ready(g(u0, *p.args))  # compile outside the timing
    return lambda: tuple(np.asarray(o) for o in jax.block_until_ready(g(u0, *p.args)))


# -- measuring ---------------------------------------------------------------------------------
def _libc_trim():
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _vm(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def timed(fn, repeat: int):
    """Best wall time over `repeat` runs; RSS high-water rise of the last; the last result."""
    best, rss = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        _libc_trim()
        ok, base = _reset_hwm(), _vm("VmRSS")
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        hwm = _vm("VmHWM")
        rss = hwm - base if ok and hwm is not None and base is not None else None
    return best, rss, out


def traced_peak(fn) -> int:
    """tracemalloc peak of `fn()` once warm: two runs under tracing first (as in
    tests/test_loop_memory.py), so that what CPython allocates once (code caches, the free
    lists a gc.collect() emptied) is not charged to it -- with one warm run after a
    gc.collect() that still reads 1.0-1.06x the budget at 4 slots of 8 KB states, with two
    0.76-0.89x (the loop's own peak is that, less the caller's loss and gradients)."""
    gc.collect()
    tracemalloc.start()
    fn()
    fn()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def rel_err(g, ref) -> float:
    return max(float(np.max(np.abs(np.asarray(a) - b))) / max(float(np.max(np.abs(b))), 1e-300)
               for a, b in zip(g, ref, strict=True))


def mib(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:8.2f} MiB"


# -- one problem -------------------------------------------------------------------------------
class Bench:
    """Runs every method on one problem and prints its table."""

    def __init__(self, p: Problem, repeat: int, slow_scale: float):
        self.p, self.repeat, self.slow_scale = p, repeat, slow_scale
        self.rows, self.refs, self.hand_time = [], {}, None

    def ref(self, n):
        if n not in self.refs:
            self.refs[n] = hand_written(self.p, n)
        return self.refs[n]

    def add(self, name, make, steps=None, mem_steps=None, *, traced=True, repeat=None,
            note="", budget=None):
        """Time `make(k)()`, the gradient over k = `steps` steps, and trace its memory over
        `mem_steps`; figures from fewer than n steps are scaled linearly to n (and say so)."""
        n = self.p.n
        steps = steps or n
        mem_steps = mem_steps or steps
        t, rss, g = timed(make(steps), repeat or self.repeat)
        peak = traced_peak(make(mem_steps)) * n / mem_steps if traced else None
        scaled = []
        if steps < n:
            scaled.append(f"time and RSS over {steps} steps x{n / steps:g}")
            rss = None if rss is None else rss * n / steps
        if traced and mem_steps < n:
            scaled.append(f"tracemalloc over {mem_steps} steps x{n / mem_steps:g}")
        note = "; ".join([*scaled, note] if note else scaled)
        self.rows.append((name, t * n / steps, peak, rss, rel_err(g, self.ref(steps)), note,
                          budget))
        return t * n / steps, peak

    def print(self):
        hand = self.hand_time
        print(f"  {'method':<40} {'time':>8} {'tracemalloc':>14} {'RSS peak':>14} "
              f"{'rel err':>9} {'budget':>14} {'peak/budget':>11}")
        for name, t, peak, rss, err, note, budget in self.rows:
            ratio = "n/a" if budget is None or peak is None else f"{peak / budget:.3f}"
            print(f"  {name:<40} {t / hand:7.2f}x {mib(peak):>14} {mib(rss):>14} {err:9.1e} "
                  f"{mib(budget):>14} {ratio:>11}" + (f"   ({note})" if note else ""))

    def run(self, profile: bool):
        p, n = self.p, self.p.n
        print(f"\n== {p.name}: N={p.u0.size}, {n} steps, gradient w.r.t. u0"
              + (" and nu" if p.args else "") + " ==")
        linear = "" if p.args else "; the step is linear: the adjoint reads no state"
        self.hand_time, _ = self.add("hand-written adjoint (NumPy)",
                                     lambda k: lambda: hand_written(p, k),
                                     mem_steps=max(2, n // 10),
                                     note="all states in one preallocated array" + linear)
        store, store_nogc, ckpt = self.diffkit_rows()
        slots = n // 20
        self.add(f"hand-written + Revolve({slots} snaps)",
                 lambda k: lambda: hand_revolve(p, k, slots),
                 note="n/20 snapshots: 1/20 of the hand-written store-all's states")
        self.peer_rows()
        print(f"  (time unit: the hand-written adjoint, {self.hand_time:.3f} s)")
        self.print()
        self.explain(store, store_nogc, ckpt)
        if profile:
            self.profile(ckpt.plan.budget)

    def diffkit_rows(self):
        p, n = self.p, self.p.n
        reports = {}

        def run(key, budget, gc_off=False, check=True):
            def make(k):
                def f():
                    if gc_off:
                        gc.disable()
                    try:
                        out = diffkit_grad(p, k, budget, check)
                    finally:
                        gc.enable()
                    if k == n:
                        reports.setdefault(key, []).append(dk.checkpoint.last_report())
                    return out

                return f

            return make

        def best(key):
            return min(reports[key], key=lambda r: r.forward_seconds + r.reverse_seconds)

        big = {"budget": {"memory": "64GiB"}}
        _, self.store_peak = self.add("diffkit store-all", run("store", big),
                                      mem_steps=max(2, n // 10), budget=64 * 2**30)
        self.add("diffkit store-all, gc.disable()", run("nogc", big, True), traced=False,
                 note="Python's cyclic GC off during the gradient")
        store = best("store")
        floor = 12 * (p.u0.nbytes + 192) + store.reverse_bytes + store.work_bytes
        memory = max(store.plan.peak_bytes // 20, floor)  # --quick: 1/20 can be too small
        self.budget = {"budget": {"memory": memory}}
        t_on, self.ckpt_peak = self.add("diffkit checkpointed (1/20 budget)",
                                        run("ckpt", self.budget), budget=memory)
        ckpt = best("ckpt")
        self.rows[-1] = (*self.rows[-1][:-2], repr(ckpt.plan.schedule), memory)
        t_off, _ = self.add("  same, check_recompute=False", run("nocheck", self.budget,
                                                                  check=False), budget=memory)
        self.check_cost = t_on / t_off - 1
        for states in (4, 8):  # tight budgets: the peak against the budget
            tight = states * (p.u0.nbytes + 192) + store.reverse_bytes + store.work_bytes
            self.add(f"diffkit checkpointed ({states}-slot budget)",
                     run(f"t{states}", {"budget": {"memory": tight}}), budget=tight, repeat=1)
            self.rows[-1] = (*self.rows[-1][:-2], repr(best(f"t{states}").plan.schedule), tight)
        return store, best("nogc"), ckpt

    def peer_rows(self):
        p, n = self.p, self.p.n
        segments = max(1, round(math.sqrt(n)))
        if importlib.util.find_spec("autograd"):
            self.add("HIPS autograd", lambda k: lambda: autograd_grad(p, k),
                     steps=max(2, int(n * self.slow_scale)), mem_steps=max(2, n // 10),
                     repeat=1)
        else:
            print("  (HIPS autograd not installed: skipped)")
        if importlib.util.find_spec("torch"):
            import torch

            torch.set_num_threads(1)
            torch_grad(p, 2, 1)  # warm up torch.utils.checkpoint outside the timing
            no = "tracemalloc does not see torch's allocator"
            self.add("PyTorch eager, store-all", lambda k: lambda: torch_grad(p, k, None),
                     traced=False, repeat=2, note=no)
            for reentrant in (False, True):
                kind = "reentrant" if reentrant else "non-reentrant"
                self.add(f"PyTorch checkpoint x{segments}, {kind}",
                         lambda k, r=reentrant: lambda: torch_grad(p, k, segments, r),
                         traced=False, repeat=2, note=no)
        else:
            print("  (PyTorch not installed: skipped)")
        if importlib.util.find_spec("jax"):
            segs = next(k for k in range(segments, n + 1) if n % k == 0)
            self.add(f"JAX scan + checkpoint ({segs} segs, jit)",
                     lambda k: jax_grad(p, k, segs), traced=False,
                     note="compiled before timing; XLA's memory is not seen by tracemalloc")
        else:
            print("  (JAX not installed: skipped)")

    def explain(self, store, store_nogc, ckpt):
        n, plan = self.p.n, ckpt.plan
        actual = ckpt.forward_seconds + ckpt.reverse_seconds
        ratio = next(r[1] for r in self.rows if r[0] == "diffkit store-all") / self.hand_time
        print(f"  diffkit store-all: {ratio:.2f}x hand-written (target <= 2.3); plan "
              f"{type(store.plan.schedule).__name__}, peak {mib(store.plan.peak_bytes).strip()};"
              f" traced {self.store_peak / n:,.0f} B/step (state {store.state_bytes:,} B, "
              f"planned step working set {store.work_bytes:,} B)")
        print(f"  diffkit checkpointed: {plan.schedule!r}, forward advances {ckpt.advances:,} "
              f"(plan {plan.forward_advances:,}), {ckpt.forward_seconds:.3f} s forward + "
              f"{ckpt.reverse_seconds:.3f} s reverse = {actual:.3f} s")
        for label, r in (("store-all", store), ("store-all, gc off", store_nogc)):
            fwd, rev = r.forward_seconds / n, r.reverse_seconds / n
            predicted = plan.forward_advances * fwd + n * rev
            print(f"    predicted from the {label} run's steps: {plan.forward_advances:,} x "
                  f"{fwd * 1e6:.1f} us + {n:,} x {rev * 1e6:.1f} us = {predicted:.3f} s; "
                  f"actual/predicted {actual / predicted:.2f} (target <= 1.2)")
        print(f"  fingerprint check (check_recompute=True) costs {self.check_cost:+.1%} of "
              f"the checkpointed gradient's time (best of the repeats, on vs off)")
        budget = plan.budget.memory
        caller = traced_peak(lambda: diffkit_grad(self.p, 0, self.budget))
        own = self.ckpt_peak - caller
        print(f"  diffkit checkpointed memory: traced peak {mib(self.ckpt_peak).strip()}, "
              f"executor's count {mib(ckpt.peak_bytes).strip()}, plan "
              f"{mib(plan.peak_bytes).strip()}, budget {mib(budget).strip()}: traced/plan "
              f"{self.ckpt_peak / plan.peak_bytes:.2f}, traced/budget "
              f"{self.ckpt_peak / budget:.2f}; the caller's loss and gradients (the same "
              f"call with 0 steps) {mib(caller).strip()}, so the loop's own traced/budget "
              f"{own / budget:.2f}")

    def profile(self, budget):
        p, n = self.p, self.p.n
        prof = cProfile.Profile()
        prof.enable()
        diffkit_grad(p, n, budget)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).sort_stats("tottime")
        stats.print_stats(10)
        text = out.getvalue()
        body = text[text.index("ncalls"):] if "ncalls" in text else text
        print(f"  cProfile of the diffkit checkpointed gradient (top 10 by tottime; "
              f"{stats.total_tt:.2f} s under the profiler):")
        print("\n".join("    " + line for line in body.rstrip().splitlines()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1/50 of the steps, one repeat")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slow-scale", type=float, default=0.25,
                    help="fraction of the steps HIPS autograd runs (time scaled up)")
    ap.add_argument("--no-profile", action="store_true")
    a = ap.parse_args(argv)
    scale = 0.02 if a.quick else 1.0
    repeat = 1 if a.quick else a.repeat
    print(f"BLAS threads pinned to 1; best of {repeat}; time = gradient wall time / the "
          f"hand-written adjoint's")
    for p in problems(scale):
        Bench(p, repeat, a.slow_scale).run(profile=not a.no_profile and p.args != ())


if __name__ == "__main__":
    main()
