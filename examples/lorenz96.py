"""Estimate the forcing of a chaotic Lorenz-96 system over a short assimilation window.

    dx_k/dt = (x_{k+1} - x_{k-2}) x_{k-1} - x_k + F_k,   k = 0..K-1 (cyclic)

With F = 8 the system is chaotic (leading Lyapunov time ~0.6), so the window is short:
beyond a few Lyapunov times the misfit landscape becomes rugged and a gradient says
little. The forcing F_k is unknown at every site (K parameters); the state is observed,
with noise, every few RK4 steps. `dk.checkpoint.scan` returns the states observed (every
EVERY-th step's output, `save_every=EVERY`) next to the final one, the misfit compares
them with the observations, and L-BFGS fits F. Runs on torch when it is installed
(`dk.asarray(x, backend="torch")`), on NumPy otherwise: the model code is the same.

Run: python examples/lorenz96.py   (--help lists the options)
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
from _shared import example_parser, lbfgs, place, run_main, save_png, to_numpy

import diffkit as dk
import diffkit.numpy as dnp

K = 40
DT = 0.01
EVERY = 5
NOISE = 0.05
BUDGET = {"budget": {"memory": "96KiB"}}  # the observed states (scan's ys) count in it


def tendency(x, forcing):
    return (dnp.roll(x, -1) - dnp.roll(x, 2)) * dnp.roll(x, 1) - x + forcing


def rk4(x, forcing):
    k1 = tendency(x, forcing)
    k2 = tendency(x + 0.5 * DT * k1, forcing)
    k3 = tendency(x + 0.5 * DT * k2, forcing)
    k4 = tendency(x + DT * k3, forcing)
    return x + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def step(x, _, i, forcing):
    """One RK4 step; its output y_i is the new state (scan keeps every EVERY-th)."""
    x = rk4(x, forcing)
    return x, x


def run(x0, forcing, n_steps, budget=None):
    """(final state, the states after steps EVERY, 2 EVERY, ...): what is observed."""
    return dk.checkpoint.scan(step, x0, n_steps, (forcing,), budget or BUDGET,
                              save_every=EVERY)


def misfit(x0, forcing, n_steps, obs, budget=None):
    d = run(x0, forcing, n_steps, budget)[1] - obs
    return 0.5 * dnp.sum(d * d)


def main(n_steps: int = 100, iters: int = 40, backend: str | None = None, device: str = "cpu",
         plot: bool = True, seed: int = 0, budget=None, png: str = "lorenz96.png") -> float:
    """Fit the forcing; return the relative error of the recovered forcing."""
    if backend is None:
        backend = "torch" if importlib.util.find_spec("torch") else "numpy"
    rng = np.random.default_rng(seed)
    f_true = 8.0 + 1.5 * np.sin(2 * np.pi * np.arange(K) / K)
    # a state on the attractor: spin up from a perturbed rest state
    x0 = place(to_numpy(run(8.0 + 0.01 * rng.standard_normal(K), f_true, 500)[0]),
               backend, device)
    snaps = to_numpy(run(x0, place(f_true, backend, device), n_steps)[1])
    obs_np = snaps + NOISE * rng.standard_normal(snaps.shape)
    obs = place(obs_np, backend, device)
    print(f"problem: Lorenz-96, K={K}, window {n_steps * DT:.2f} time units ({n_steps} RK4 "
          f"steps), {len(obs_np)} noisy observations (sigma {NOISE}); recover the forcing "
          f"F_k at every site (true: 8 + 1.5 sin), starting from F = 8")
    print(f"backend: {backend} ({device}); budget: {budget or BUDGET['budget']['memory']}")

    def objective(f):
        f_b = place(f, backend, device)
        value, grad = dk.value_and_grad(lambda f: misfit(x0, f, n_steps, obs, budget))(f_b)
        return float(value), to_numpy(grad).astype(np.float64)

    t0 = time.perf_counter()
    objective(np.full(K, 8.0))
    report = dk.checkpoint.last_report()
    print(f"\nplan for one gradient:\n{report.plan}\n\nwhat one gradient did:\n{report}\n")

    def show(k, f, value):
        if k % 5 == 0:
            err = np.linalg.norm(f - f_true) / np.linalg.norm(f_true)
            print(f"iteration {k:3d}: misfit = {value:.4e}, forcing error = {err:.2e}")

    f, value, k = lbfgs(objective, np.full(K, 8.0), iters=iters, callback=show)
    err = float(np.linalg.norm(f - f_true) / np.linalg.norm(f_true))
    print(f"\nL-BFGS: {k} iterations in {time.perf_counter() - t0:.1f} s; misfit {value:.4e}; "
          f"relative error of the forcing {err:.2e} (started at "
          f"{np.linalg.norm(8.0 - f_true) / np.linalg.norm(f_true):.2e})")
    if plot:
        save_png(lambda plt: _draw(plt, f_true, f), png)
    return err


def _draw(plt, f_true, f):
    plt.figure(figsize=(7, 3.2))
    plt.plot(f_true, "k-", label="true forcing")
    plt.plot(f, "o", ms=4, label="estimated")
    plt.axhline(8.0, color="gray", ls=":", label="initial guess")
    plt.xlabel("site k")
    plt.title("Lorenz-96: forcing estimated over a short window")
    plt.legend()


def cli(argv=None):
    """Parse the command line (`--help` lists it) and run `main`."""
    parser = example_parser(__doc__, steps=100, iters=40, budget=BUDGET["budget"]["memory"],
                            png="lorenz96.png")
    return run_main(main, parser, argv)


if __name__ == "__main__":
    cli()
