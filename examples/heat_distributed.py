"""The 2D heat inverse problem of heat_inverse.py, its grid split into strips across ranks.

    torchrun --nproc-per-node 4 examples/heat_distributed.py    # --help for the options
    python examples/heat_distributed.py                           # one rank: the same answer

Rank r owns rows [r*G/P, (r+1)*G/P) of the periodic G x G grid (P ranks) and, every time
step, takes one ghost row from each neighbour (`dkd.halo_exchange`); columns stay periodic
on the rank. A reverse-mode gradient runs the checkpointed loop backwards on every rank at
once: the ghost rows' cotangents go back to their owners by the transposed exchange, and all
ranks follow one checkpoint plan (agreed when it is made). Dot products of conjugate
gradients are `dkd.all_reduce` sums.

Rank 0 first gathers the gradient A^T d and compares it with heat_inverse.py's, computed in
this one process on the whole grid (`--no-check` skips that), then solves the normal
equations (A^T A + alpha I) u0 = A^T d as heat_inverse.py does.

A 64 x 64 grid is a demonstration of equal answers, not of speed: each step exchanges two
512-byte rows, so message latency outweighs the work per rank (on a shared 2-core machine,
`--steps 1000 --iters 1` took 19.7 s on 4 ranks and 0.6 s on one). docs/distributed.md
models when splitting pays.
"""

from __future__ import annotations

import time

import numpy as np
from _shared import example_parser, place, run_main, save_png, to_numpy
from heat_inverse import ALPHA, GRID, KAPPA, NOISE, STEPS, simulate, true_initial_field

import diffkit as dk
import diffkit.distributed as dkd
import diffkit.numpy as dnp


def strip_step(u, i, kappa):
    """One explicit Euler step of the heat equation on this rank's strip of rows."""
    ext = dkd.halo_exchange(u, 1, axis=0, periodic=True)  # ghost rows from rank -+ 1
    lap = ext[:-2] + ext[2:] + dnp.roll(u, 1, 1) + dnp.roll(u, -1, 1) - 4 * u
    return u + kappa * lap


def simulate_strip(u0, n_steps=STEPS, budget=None):
    """This rank's strip of the forward model A: n_steps halo-exchanging heat steps."""
    return dk.checkpoint.loop(strip_step, u0, n_steps, (KAPPA,), budget=budget)


def dot(a, b) -> float:
    """<a, b> over the whole grid: each rank's strips, summed over the ranks."""
    return float(dkd.all_reduce(np.asarray(np.vdot(a, b))))


def main(grid=GRID, n_steps=STEPS, iters=10, plot=True, seed=0, budget=None,
         backend="numpy", device="cpu", png="heat_distributed.png", check=True):
    """Solve the inverse problem on every rank's strip; return the relative error of the
    recovered initial field (the same number on every rank)."""
    dkd.init("nccl" if device == "cuda" else "gloo")
    r, p = dkd.rank(), dkd.world_size()
    say = print if r == 0 else (lambda *a, **k: None)
    if grid % p:
        raise SystemExit(f"heat_distributed.py: error: --grid {grid} does not split into {p} "
                         f"equal strips (one per rank); pick a multiple of {p}")
    rows = slice(r * grid // p, (r + 1) * grid // p)
    noise = np.random.default_rng(seed).standard_normal((grid, grid))
    u_true = true_initial_field(grid)
    d = to_numpy(simulate_strip(place(u_true[rows], backend, device), n_steps))
    d = d + NOISE * float(dkd.all_reduce(np.abs(d).max(), "max")) * noise[rows]
    budget = dk.checkpoint.load_budget(budget)
    say(f"2D heat inverse problem on {p} rank(s): {grid}x{grid} periodic grid in strips of "
        f"{grid // p} rows, {n_steps:,} steps, kappa*dt/dx^2 = {KAPPA}, {NOISE:.0%} noise")
    say(f"backend: {backend} ({device}); budget: {budget.source}; memory "
        f"{budget.memory / 2**20:g} MiB per rank")

    def misfit(v):
        return 0.5 * dnp.sum(simulate_strip(v, n_steps, budget) ** 2)

    def normal_operator(q):
        """(A^T A + alpha I) q on this rank's strip: one distributed simulation and one
        reverse sweep in which every rank takes part."""
        return to_numpy(dk.grad(misfit)(place(q, backend, device))) + ALPHA * q

    t0 = time.perf_counter()
    pullback = dk.vjp(lambda v: simulate_strip(v, n_steps, budget),
                      place(0 * d, backend, device))[1]
    rhs = to_numpy(pullback(place(d, backend, device))[0])
    say(f"\nthe plan every rank follows (made once, from the largest state and the smallest "
        f"budget of any rank):\n{dk.checkpoint.last_report().plan}")
    if check:
        _compare(rhs, d, n_steps, budget, backend, device, say)

    x, res = np.zeros_like(rhs), rhs.copy()
    q, rr = res.copy(), dot(res, res)
    say("\nconjugate gradients on the normal equations:")
    for k in range(iters):
        aq = normal_operator(q)
        step = rr / dot(q, aq)
        x, res = x + step * q, res - step * aq
        rr, rr_old = dot(res, res), rr
        err = np.sqrt(dot(x - u_true[rows], x - u_true[rows]) / dot(u_true[rows], u_true[rows]))
        say(f"  CG iteration {k + 1:2d}: residual {np.sqrt(rr):.3e}   relative error of u0 "
            f"{err:.3f}")
        q = res + (rr / rr_old) * q
    err = np.sqrt(dot(x - u_true[rows], x - u_true[rows]) / dot(u_true[rows], u_true[rows]))
    say(f"\nrelative error of the recovered initial field: {err:.3f}; "
        f"{time.perf_counter() - t0:.1f} s on {p} rank(s)")
    if plot:
        whole = dkd.all_gather(x, axis=0)
        if r == 0:
            save_png(lambda plt: _draw(plt, u_true, whole, p), png)
    dkd.barrier()
    return err


def _compare(rhs, d, n_steps, budget, backend, device, say):
    """Rank 0: the gathered A^T d against heat_inverse.py's, on the whole grid here."""
    whole = dkd.all_gather(rhs, axis=0)
    d_all = dkd.all_gather(d, axis=0)
    if dkd.rank() == 0:
        with dkd.alone():  # the other ranks wait: this loop must not plan with them
            single = to_numpy(dk.vjp(lambda v: simulate(v, n_steps, budget),
                                     place(0 * d_all, backend, device))[1](
                place(d_all, backend, device))[0])
        diff = np.abs(whole - single).max() / np.abs(single).max()
        say(f"\ngradient A^T d on {dkd.world_size()} rank(s) against one process on the whole "
            f"grid: max |difference| / max |gradient| = {diff:.1e}")
    dkd.barrier()


def _draw(plt, u_true, u0, p):
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), layout="constrained")
    for ax, field, title in zip(axes, (u_true, u0), ("true initial field",
                                                     f"recovered on {p} rank(s)"), strict=True):
        im = ax.imshow(field, cmap="inferno", vmin=u_true.min(), vmax=u_true.max())
        for k in range(1, p):
            ax.axhline(k * field.shape[0] / p - 0.5, color="white", lw=0.6, ls="--")
        ax.set_title(title)
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8)


def cli(argv=None):
    """Parse the command line (`--help` lists it) and run `main` on this rank."""
    parser = example_parser(__doc__, steps=STEPS, iters=10,
                            budget="256 MiB per rank (configs/default.yaml)",
                            png="heat_distributed.png")
    parser.add_argument("--grid", type=int, default=GRID, metavar="N",
                        help="grid points per side, a multiple of the ranks (default: "
                             "%(default)s)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip rank 0's comparison with the single-process gradient")
    return run_main(main, parser, argv)


if __name__ == "__main__":
    cli()
