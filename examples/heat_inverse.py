"""Recover the initial temperature of a 2D heat equation from a noisy final observation.

    python examples/heat_inverse.py            # --help for the options (steps, budget, backend)

The forward model runs 10,000 explicit time steps of u_t = kappa * Laplacian(u) on a
periodic 64 x 64 grid. We observe the final field with 1% noise and look for the initial
field u0 minimizing

    J(u0) = 1/2 |A u0 - d|^2 + alpha/2 |u0|^2,        A = the 10,000-step simulation.

The problem is linear, so conjugate gradients on the normal equations (A^T A + alpha I) u0 =
A^T d converge in a few iterations -- provided every A^T is exact: each one is a reverse-mode
gradient through the whole simulation, planned by diffkit under its default memory budget
(256 MiB; see configs/default.yaml) and printed before the first gradient. Here keeping
every step fits: a linear step's tape keeps no array, only ~5 KB of bookkeeping. Pass a
smaller budget (`--budget 256KiB`) to see a checkpoint schedule recompute instead, with the
same result.
"""

from __future__ import annotations

import time

import numpy as np
from _shared import example_parser, place, run_main, save_png, to_numpy

import diffkit as dk
import diffkit.numpy as dnp

GRID, STEPS, KAPPA, ALPHA, NOISE = 64, 10_000, 0.0008, 1e-4, 0.01


def heat_step(u, i, kappa):
    """One explicit Euler step of the periodic 2D heat equation (5-point Laplacian)."""
    lap = (dnp.roll(u, 1, 0) + dnp.roll(u, -1, 0) + dnp.roll(u, 1, 1) + dnp.roll(u, -1, 1)
           - 4 * u)
    return u + kappa * lap


def simulate(u0, n_steps=STEPS, budget=None):
    """The forward model A: n_steps heat steps, differentiable through a checkpointed loop."""
    return dk.checkpoint.loop(heat_step, u0, n_steps, (KAPPA,), budget=budget)


def true_initial_field(n=GRID):
    """Two warm blobs and a cold square on a periodic grid."""
    x, y = np.meshgrid(np.linspace(0, 1, n, endpoint=False), np.linspace(0, 1, n,
                                                                        endpoint=False))
    u = np.exp(-((x - 0.3) ** 2 + (y - 0.35) ** 2) / 0.005)
    u += 0.7 * np.exp(-((x - 0.7) ** 2 + (y - 0.6) ** 2) / 0.01)
    u -= 0.5 * ((np.abs(x - 0.65) < 0.08) & (np.abs(y - 0.2) < 0.08))
    return u


def conjugate_gradients(apply, rhs, iters, report):
    """Solve apply(x) = rhs for a symmetric positive definite operator, from x = 0."""
    x, r = np.zeros_like(rhs), rhs.copy()
    p, rr = r.copy(), float(np.vdot(r, r))
    for k in range(iters):
        ap = apply(p)
        step = rr / float(np.vdot(p, ap))
        x, r = x + step * p, r - step * ap
        rr, rr_old = float(np.vdot(r, r)), rr
        report(k, x, np.sqrt(rr))
        p = r + (rr / rr_old) * p
    return x


def main(grid=GRID, n_steps=STEPS, iters=10, plot=True, seed=0, budget=None,
         backend="numpy", device="cpu", png="heat_inverse.png"):
    """Solve the inverse problem; return the relative error of the recovered initial field."""
    rng = np.random.default_rng(seed)
    u_true = true_initial_field(grid)
    d = to_numpy(simulate(place(u_true, backend, device), n_steps))
    d = d + NOISE * np.abs(d).max() * rng.standard_normal(d.shape)
    print(f"2D heat inverse problem: {grid}x{grid} periodic grid, {n_steps:,} steps, "
          f"kappa*dt/dx^2 = {KAPPA}, {NOISE:.0%} noise, Tikhonov alpha = {ALPHA}")
    budget = dk.checkpoint.load_budget(budget)
    print(f"backend: {backend} ({device}); budget: {budget.source}; memory "
          f"{budget.memory / 2**20:g} MiB")

    def misfit(v):
        return 0.5 * dnp.sum(simulate(v, n_steps, budget) ** 2)

    def normal_operator(p):
        """(A^T A + alpha I) p: one simulation and one exact reverse sweep."""
        return to_numpy(dk.grad(misfit)(place(p, backend, device))) + ALPHA * p

    t0 = time.perf_counter()
    pullback = dk.vjp(lambda v: simulate(v, n_steps, budget), place(0 * d, backend, device))[1]
    rhs = to_numpy(pullback(place(d, backend, device))[0])
    print("\nthe plan diffkit made for each gradient (before running it):")
    print(dk.checkpoint.last_report().plan)

    def report(k, x, res):
        err = np.linalg.norm(x - u_true) / np.linalg.norm(u_true)
        print(f"  CG iteration {k + 1:2d}: residual {res:.3e}   relative error of u0 {err:.3f}")

    print("\nconjugate gradients on the normal equations:")
    u0 = conjugate_gradients(normal_operator, rhs, iters, report)
    rep = dk.checkpoint.last_report()
    print(f"\nlast gradient, what was done against the plan:\n{rep}")
    err = np.linalg.norm(u0 - u_true) / np.linalg.norm(u_true)
    blurred = np.linalg.norm(d - u_true) / np.linalg.norm(u_true)
    print(f"\nrelative error of the recovered initial field: {err:.3f} "
          f"(the observation itself is {blurred:.3f} away); {time.perf_counter() - t0:.1f} s")
    if plot:
        save_png(lambda plt: _draw(plt, u_true, d, u0), png)
    return err


def _draw(plt, u_true, d, u0):
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
    for ax, field, title in zip(axes, (u_true, d, u0),
                                ("true initial field", "noisy final observation",
                                 "recovered initial field"), strict=True):
        im = ax.imshow(field, cmap="inferno", vmin=u_true.min(), vmax=u_true.max())
        ax.set_title(title)
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8)


def cli(argv=None):
    """Parse the command line (`--help` lists it) and run `main`."""
    parser = example_parser(__doc__, steps=STEPS, iters=10, budget="256 MiB (configs/default.yaml)",
                            png="heat_inverse.png")
    parser.add_argument("--grid", type=int, default=GRID, metavar="N",
                        help="grid points per side (default: %(default)s)")
    return run_main(main, parser, argv)


if __name__ == "__main__":
    cli()
