"""A 2D heat step on 1024 x 1024: the stencil plugin's Laplacian primitive against the same
step written with `dnp.roll`s. Per step: forward time, gradient time, and the peak memory
(tracemalloc) of the gradient, for a loss through a few unrolled steps (no checkpointing,
so the tape of every step is held: the cost of the tape is what differs).

Run: python benchmarks/bench_stencil.py [--n 1024] [--steps 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import diffkit_stencil as st
import numpy as np

import diffkit as dk
import diffkit.numpy as dnp

R = 0.2  # kappa dt / dx^2, stable below 0.25


def step_stencil(x):
    return x + R * st.laplace2d(x)


def step_roll(x):
    lap = (dnp.roll(x, 1, 0) + dnp.roll(x, -1, 0) + dnp.roll(x, 1, 1) + dnp.roll(x, -1, 1)
           - 4 * x)
    return x + R * lap


def step_numpy(x):
    """Plain NumPy, no diffkit: the floor for the forward step."""
    lap = np.roll(x, 1, 0) + np.roll(x, -1, 0) + np.roll(x, 1, 1) + np.roll(x, -1, 1) - 4 * x
    return x + R * lap


def loss_of(step, n_steps):
    def loss(x):
        for _ in range(n_steps):
            x = step(x)
        return dnp.sum(x * x)

    return loss


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def peak_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def main(n: int = 1024, steps: int = 4, repeat: int = 3) -> dict:
    x = np.random.default_rng(0).standard_normal((n, n))
    mib = x.nbytes / 2**20
    print(f"2D heat step on {n}x{n} float64 ({mib:.0f} MiB per array); loss through {steps} "
          f"unrolled steps; best of {repeat}; time and memory per step\n")
    rows, grads = {}, {}
    for name, step in (("stencil primitive", step_stencil), ("dnp.roll", step_roll)):
        loss = loss_of(step, steps)
        fwd, _ = best_time(lambda loss=loss: loss(x), repeat)
        grad_fn = dk.grad(loss)
        t, grads[name] = best_time(lambda g=grad_fn: g(x), repeat)
        mem = peak_bytes(lambda g=grad_fn: g(x))
        rows[name] = (fwd / steps, t / steps, mem / steps)
    t_np, _ = best_time(lambda: [step_numpy(x) for _ in range(steps)], repeat)
    err = np.max(np.abs(grads["dnp.roll"] - grads["stencil primitive"]))
    err /= np.max(np.abs(grads["dnp.roll"]))
    base = rows["stencil primitive"]
    print(f"{'':<20}{'forward ms':>12}{'gradient ms':>13}{'grad MiB':>10}"
          f"{'time ratio':>12}{'memory ratio':>14}")
    for name, (f, g, m) in rows.items():
        print(f"{name:<20}{f * 1e3:>12.1f}{g * 1e3:>13.1f}{m / 2**20:>10.1f}"
              f"{g / base[1]:>12.2f}{m / base[2]:>14.2f}")
    print(f"{'plain NumPy (no AD)':<20}{t_np / steps * 1e3:>12.1f}")
    print(f"\nratios are against the stencil primitive; gradients agree to {err:.1e} "
          f"(relative max difference)")
    return {"rows": rows, "numpy_forward": t_np / steps, "agreement": err}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    main(a.n, a.steps, a.repeat)
