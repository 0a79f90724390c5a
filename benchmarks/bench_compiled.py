"""Compiled loop steps against the eager path, a hand-written adjoint, PyTorch and JAX.

Workloads (bench_loops.py's problems, plus 2-D Burgers):
    1D heat     N=1000, periodic explicit diffusion, gradient w.r.t. u0
    1D Burgers  N=512, explicit Euler, gradient w.r.t. u0 and nu
    2D Burgers  512^2 (and --big: 1024^2), explicit Euler, gradient w.r.t. u0 and nu

Tables:
  1. one step: reversing a step (tape + VJP) as a multiple of an untaped forward step, for
     diffkit compiled and eager and the hand-written adjoint (target: compiled <= 2.5x on
     1D Burgers);
  2. whole gradients, as multiples of the hand-written adjoint run under the same schedule
     (store-all: all states kept; checkpointed: diffkit's Revolve plan at 1/20 of the
     eager store-all's planned peak (at least 4 states), and the hand-written adjoint
     driven by that same Revolve), with PyTorch eager and JAX (jit + lax.scan, and
     jax.checkpoint over sqrt(n) segments) when installed (targets: compiled
     checkpointed <= 1.3x, store-all <= 1.2x);
  3. 2D Burgers in few states: the least budget (counting everything the loop holds) that
     plans and runs compiled, and eagerly, with the traced peak; and a budget of 4 states.

Every ratio is the median over interleaved rounds (each round runs every method once), so
a shared, noisy machine slows every method alike. BLAS pinned to one thread.

Run: python benchmarks/bench_compiled.py [--quick] [--big]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from bench_loops import (  # noqa: E402
    Problem,
    burgers_adjoint,
    burgers_step,
    hand_revolve,
    hand_written,
    heat_adjoint,
    heat_step,
)

import diffkit as dk  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
from diffkit.checkpoint.compiled import CompiledStep  # noqa: E402
from diffkit.checkpoint.executor import LoopIO  # noqa: E402
from diffkit.core import pytree  # noqa: E402
from diffkit.core.reverse import VJPTrace  # noqa: E402

B2_NU, B2_DT = 0.01, 1e-5  # stable on 1024^2: nu dt / h^2 = 0.1


def burgers2d_step(xp):
    """2-D viscous Burgers u_t + u (u_x + u_y) = nu lap u on a periodic unit square."""
    key = "dims" if xp.__name__ == "torch" else "axis"
    roll = lambda u, s, a: xp.roll(u, s, **{key: a})  # noqa: E731

    def step(u, i, nu):
        n = u.shape[0]
        h = 1.0 / n
        ux, uy = roll(u, -1, 0), roll(u, -1, 1)
        vx, vy = roll(u, 1, 0), roll(u, 1, 1)
        lap = (ux + vx + uy + vy - 4 * u) / (h * h)
        adv = u * ((ux - vx) + (uy - vy)) / (2 * h)
        return u + B2_DT * (nu * lap - adv)

    return step


def problems(n_scale: float, size2d: int) -> list[Problem]:
    x = np.arange(1000) / 1000
    heat0 = np.sin(2 * np.pi * x) + 0.5 * np.cos(6 * np.pi * x)
    xb = np.arange(512) * 2 * math.pi / 512
    burgers0 = 0.8 * np.sin(xb) + 0.3 * np.sin(2 * xb + 1.0) + 0.2
    g = np.arange(size2d) / size2d
    b2 = 0.5 * np.sin(2 * np.pi * g)[:, None] * np.cos(2 * np.pi * g)[None, :] + 0.2
    return [Problem("1D heat N=1000", max(4, int(4000 * n_scale)), heat0, (), heat_step,
                    heat_adjoint),
            Problem("1D Burgers N=512", max(4, int(4000 * n_scale)), burgers0, (0.01,),
                    burgers_step, burgers_adjoint),
            Problem(f"2D Burgers {size2d}^2", max(4, int(100 * n_scale)), b2, (B2_NU,),
                    burgers2d_step, None)]


def median_rounds(fns: dict, rounds: int) -> dict:
    """Median seconds of each function over interleaved rounds."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# -- table 1: one step -------------------------------------------------------------------------
def step_table(p: Problem, rounds: int) -> None:
    step, u = p.make_step(dnp), p.u0
    args = tuple(np.float64(a) for a in p.args)
    diff = list(range(1 + len(args)))
    cs = CompiledStep(LoopIO(), step, pytree.structure(u), pytree.structure(args), len(args),
                      diff, True)
    cs.taped([u, *args], 0)
    g, reps = np.ones_like(u), max(1, int(2e5 // u.size))

    def eager_reverse():
        t = VJPTrace()
        out = step(t.leaf(u), 3, *(t.leaf(a) for a in args))
        t.backward([(out.idx, out.out, g)], consume=True)

    def compiled_reverse():
        _, vjp = cs.taped([u, *args], 3)
        vjp([g])

    fns = {"eager forward": lambda: step(u, 3, *args),
           "compiled forward": lambda: cs.forward([u, *args], 3),
           "eager reverse": eager_reverse, "compiled reverse": compiled_reverse}
    if p.adjoint is not None:
        hand = p.make_step(np)
        fns["hand forward"] = lambda: hand(u, 3, *p.args)
        fns["hand reverse"] = lambda: (hand(u, 3, *p.args), p.adjoint(u, g, *p.args))
    looped = {k: (lambda f=f: [f() for _ in range(reps)]) for k, f in fns.items()}
    t = {k: v / reps for k, v in median_rounds(looped, rounds).items()}
    base = t["eager forward"]
    print(f"  one step of {p.name}: untaped eager forward {base * 1e6:.1f} us")
    for k, v in t.items():
        print(f"    {k:18s} {v * 1e6:9.1f} us  {v / base:6.2f}x untaped forward")
    print(f"    reversing a step, compiled: {t['compiled reverse'] / t['compiled forward']:.2f}x "
          f"a compiled forward step, {t['compiled reverse'] / base:.2f}x an eager one "
          f"(target <= 2.5x); eager: {t['eager reverse'] / base:.2f}x")


# -- table 2: whole gradients -----------------------------------------------------------------
def diffkit_grad(p: Problem, n: int, budget, compile, fuse=False, square=True):
    """`fuse`: compiled steps fuse elementwise chains into numba loops (fuse_steps);
    `square`: the loss is sum(u * u), else sum(u) (which allocates nothing state-sized, so
    that a measured peak is the loop's)."""
    step = p.make_step(dnp)
    argnums = tuple(range(1 + len(p.args)))

    def loss(u0, *args):
        u = dk.checkpoint.loop(step, u0, n, args, budget, compile=compile)
        return dnp.sum(u * u) if square else dnp.sum(u)

    def run():
        with dk.checkpoint.fuse_steps(fuse):
            return dk.grad(loss, argnums=argnums)(p.u0, *p.args)

    return run


def torch_grad(p: Problem, n: int):
    import torch

    step = p.make_step(torch)

    def run():
        leaves = [torch.tensor(p.u0, requires_grad=True)]
        leaves += [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in p.args]
        u = leaves[0]
        for i in range(n):
            u = step(u, i, *leaves[1:])
        (u * u).sum().backward()
        return [x.grad for x in leaves]

    return run


def jax_grads(p: Problem, n: int):
    """(jit + lax.scan store-all, jit + lax.scan of jax.checkpoint-ed segments)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    step = p.make_step(jnp)
    argnums = tuple(range(1 + len(p.args)))
    seg = max(1, int(round(math.sqrt(n))))
    while n % seg:
        seg -= 1

    def plain(u0, *args):
        u = jax.lax.scan(lambda u, i: (step(u, i, *args), None), u0, jnp.arange(n))[0]
        return jnp.sum(u * u)

    @jax.checkpoint
    def segment(u, args):
        return jax.lax.scan(lambda u, i: (step(u, i, *args), None), u, jnp.arange(n // seg))[0]

    def ckpt(u0, *args):
        u = jax.lax.scan(lambda u, _: (segment(u, args), None), u0, None, length=seg)[0]
        return jnp.sum(u * u)

    out = []
    for f in (plain, ckpt):
        g = jax.jit(jax.grad(f, argnums=argnums))
        u0 = jnp.asarray(p.u0)
        jax.block_until_ready(g(u0, *p.args))  # compile outside the timing
        out.append(lambda g=g, u0=u0: jax.block_until_ready(g(u0, *p.args)))
    return out


def gradient_table(p: Problem, rounds: int) -> None:
    n = p.n
    big = {"budget": {"memory": "64GiB"}}
    diffkit_grad(p, n, big, False)()  # the eager store-all plan sizes the budget, as in
    rep = dk.checkpoint.last_report()  # bench_loops.py (but room for 4 states at least)
    memory = max(rep.plan.peak_bytes // 20,
                 rep.reverse_bytes + rep.work_bytes + 4 * rep.state_bytes)
    tight = {"budget": {"memory": memory}, "schedule": "revolve"}
    diffkit_grad(p, n, tight, "auto")()  # a budget too small to trace in runs eagerly
    rep = dk.checkpoint.last_report()
    slots, how = rep.plan.slots["ram"], rep.compiled
    fns = {"diffkit compiled, store-all": diffkit_grad(p, n, big, True),
           "diffkit eager, store-all": diffkit_grad(p, n, big, False),
           f"diffkit compiled, Revolve {slots}": diffkit_grad(p, n, tight, "auto"),
           f"diffkit eager, Revolve {slots}": diffkit_grad(p, n, tight, False)}
    if importlib.util.find_spec("numba"):
        fused = diffkit_grad(p, n, big, True, fuse=True)
        t0 = time.perf_counter()
        fused()  # compiles the kernels (cached in the process: later calls compile nothing)
        t1 = time.perf_counter()
        fused()
        print(f"  {p.name}: fusing's first gradient call {t1 - t0:.2f} s, the next "
              f"{time.perf_counter() - t1:.2f} s (numba compiling the kernels)")
        fns["diffkit fused, store-all"] = fused
        fns[f"diffkit fused, Revolve {slots}"] = diffkit_grad(p, n, tight, "auto", fuse=True)
    if p.adjoint is not None:
        fns["hand-written, store-all"] = lambda: hand_written(p, n)
        fns[f"hand-written, Revolve {slots}"] = lambda: hand_revolve(p, n, slots)
    if importlib.util.find_spec("torch"):
        fns["PyTorch eager, store-all"] = torch_grad(p, n)
    if importlib.util.find_spec("jax"):
        j_plain, j_ckpt = jax_grads(p, n)
        fns["JAX jit scan, store-all"], fns["JAX jit scan + checkpoint"] = j_plain, j_ckpt
    t = median_rounds(fns, rounds)
    unit = t.get("hand-written, store-all", t["diffkit compiled, store-all"])
    print(f"  {p.name}, {n} steps (time unit {unit * 1e3:.1f} ms: "
          f"{'the hand-written adjoint, store-all' if p.adjoint else 'diffkit compiled'}; "
          f"Revolve with {slots} snapshots = 1/20 of store-all's memory)")
    for k, v in t.items():
        print(f"    {k:34s} {v * 1e3:9.1f} ms  {v / unit:6.2f}x")
    print(f"    (diffkit compiled, Revolve: the step ran {how}; 'compiled' rows unfused)")
    if p.adjoint is not None:
        rev = t[f"hand-written, Revolve {slots}"]
        print(f"    compiled / hand-written: store-all "
              f"{t['diffkit compiled, store-all'] / unit:.2f}x (target <= 1.2), checkpointed "
              f"{t[f'diffkit compiled, Revolve {slots}'] / rev:.2f}x (target <= 1.3)")
    if "JAX jit scan, store-all" in t:
        ckpt = t[f"diffkit compiled, Revolve {slots}"] / t["JAX jit scan + checkpoint"]
        print(f"    compiled / JAX jit: store-all "
              f"{t['diffkit compiled, store-all'] / t['JAX jit scan, store-all']:.2f}x, "
              f"checkpointed {ckpt:.2f}x")
        if "diffkit fused, store-all" in t:
            ckpt = t[f"diffkit fused, Revolve {slots}"] / t["JAX jit scan + checkpoint"]
            print(f"    fused / JAX jit: store-all "
                  f"{t['diffkit fused, store-all'] / t['JAX jit scan, store-all']:.2f}x, "
                  f"checkpointed {ckpt:.2f}x")


# -- table 3: 2-D Burgers in few states -------------------------------------------------------
def _peak_run(f):
    """(tracemalloc peak of a warm `f()` in bytes, or the DiffkitError that refused it)."""
    try:
        f()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        f()
        return tracemalloc.get_traced_memory()[1] - base, None
    except dk.DiffkitError as e:
        return None, e
    finally:
        tracemalloc.stop()


def _has_numba() -> bool:
    return importlib.util.find_spec("numba") is not None


def few_states(p: Problem) -> None:
    """The least budget (in states, counting everything the loop allocates: snapshots,
    tapes, cotangents, temporaries, tracing) that plans and runs fused, compiled and
    eagerly, with the measured peak of the whole gradient of sum(loop(...)); and what a
    budget of 4 states gets with the default settings."""
    state, n = p.u0.nbytes, min(p.n, 20)
    peak, e = _peak_run(diffkit_grad(p, n, {"budget": {"memory": 4 * state}}, "auto", "auto",
                                     square=False))
    print(f"  {p.name}, {n} steps, budget 4 states, default settings: "
          + (f"runs ({dk.checkpoint.last_report().compiled}), measured peak "
             f"{peak / state:.2f} states" if e is None else
             "refused: " + str(e).split(": ", 1)[-1]))
    fusing = [True] if _has_numba() else []
    for compile, fuse in [("auto", f) for f in fusing] + [("auto", False), (False, False)]:
        for k in range(3, 41):
            budget = {"budget": {"memory": k * state}}
            peak, e = _peak_run(diffkit_grad(p, n, budget, compile, fuse, square=False))
            rep = dk.checkpoint.last_report()
            if e is None and (compile is False or rep.compiled.startswith("compiled")):
                break
        label = "fused" if fuse else "compiled" if compile else "eager"
        print(f"    {label:8s} least budget {k} states: {rep.plan.schedule}, kept per taped "
              f"step {rep.work_bytes / state:.2f} states, working set "
              f"{rep.reverse_bytes / state:.2f} states, measured peak {peak / state:.2f} "
              f"states ({peak / (k * state):.2f} of the budget)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1/20 of the steps, 3 rounds")
    ap.add_argument("--big", action="store_true", help="2-D Burgers at 1024^2 too")
    ap.add_argument("--gradients-1d", action="store_true", help="table 2, 1-D problems only")
    opts = ap.parse_args(argv)
    scale, rounds = (0.05, 3) if opts.quick else (1.0, 5)
    sizes = [512, 1024] if opts.big else [512]
    probs = problems(scale, sizes[0])
    if opts.gradients_1d:
        for p in probs[:2]:
            gradient_table(p, rounds)
        return
    print("== 1. one step ==")
    for p in probs:
        step_table(p, rounds * 3)
    print("== 2. whole gradients ==")
    for p in probs:
        gradient_table(p, rounds)
    print("== 3. 2-D Burgers in few states ==")
    for size in sizes:
        few_states(problems(scale, size)[2])
    print("== 4. forward mode (jvp through the loop) ==")
    forward_mode_table(probs[0], rounds)


# -- table 4: forward mode ---------------------------------------------------------------------
def forward_mode_table(p: Problem, rounds: int) -> None:
    """A jvp through the loop (nothing below it traced): the compiled pair loop against the
    eager one (compile=False) and plain NumPy running the state and its tangent."""
    step, hand = p.make_step(dnp), p.make_step(np)
    t0 = np.cos(np.arange(p.u0.size))

    def diffkit_jvp(compile):
        f = lambda u0, *args: dk.checkpoint.loop(step, u0, p.n, args, compile=compile)
        tangents = (t0, *(1.0 for _ in p.args))
        return lambda: dk.jvp(f, (p.u0, *p.args), tangents)

    def numpy_pairs():  # a linear step: its tangent step is the step itself (heat)
        u, t = p.u0, t0
        for i in range(p.n):
            u, t = hand(u, i, *p.args), hand(t, i, *p.args)

    fns = {"compiled": diffkit_jvp(True), "eager": diffkit_jvp(False)}
    got, want = fns["compiled"]()[1], fns["eager"]()[1]
    fns["compiled"]()
    how = dk.checkpoint.last_forward_report().compiled
    assert np.allclose(got, want, rtol=1e-12, atol=0), "compiled jvp differs from the eager one"
    if not p.args:
        fns["NumPy (state, tangent)"] = numpy_pairs
    t = median_rounds(fns, rounds)
    print(f"  jvp of {p.name}, {p.n} steps: "
          + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in t.items()))
    print(f"    eager / compiled: {t['eager'] / t['compiled']:.2f}x"
          + (f"; compiled / NumPy: {t['compiled'] / t['NumPy (state, tangent)']:.2f}x"
             if not p.args else "")
          + f"  ({how})")


if __name__ == "__main__":
    main()
