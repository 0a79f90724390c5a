"""Fit the viscosity of 1D viscous Burgers from noisy observations along its trajectory.

    u_t + u u_x = nu u_xx   on [0, 2 pi), periodic

Explicit Euler in time; the advection term is the stencil plugin's first-order upwind
operator (the velocity is u itself, so the gradient flows through both of its arguments),
diffusion its periodic Laplacian. The misfit to the observations is accumulated in the
loop's state, so one checkpointed loop gives the objective and its gradient; L-BFGS over
log(nu) (positivity) does the fit.

Run: python examples/burgers_viscosity.py   (--help lists the options: steps, budget, backend)
"""

from __future__ import annotations

import time

import diffkit_stencil as st
import numpy as np
from _shared import example_parser, lbfgs, place, run_main, save_png, to_numpy

import diffkit as dk
import diffkit.numpy as dnp

N = 128
DX = 2 * np.pi / N
DT = 0.004
EVERY = 50  # observe the state every EVERY steps
NOISE = 0.01
NU_TRUE = 0.08
NU_MAX = 0.45 * DX**2 / DT  # explicit Euler's diffusion limit (0.5 dx^2 / dt), with margin
# Deliberately tight: taping every step would hold ~18 MB here (printed when run).
BUDGET = {"budget": {"memory": "256KiB"}}


def initial_state() -> np.ndarray:
    x = np.arange(N) * DX
    return np.sin(x) + 0.5 * np.sin(2 * x + 1.0) + 0.3


def make_step(obs):
    """One explicit Euler step; adds the misfit when an observation falls on step i+1.

    The observations are constants, so the step closes over them; the viscosity, which
    needs a gradient, is passed through the loop's `args`.
    """

    def step(state, i, nu):
        u, misfit = state
        u = u + DT * (nu * st.laplace1d(u, DX) - st.upwind(u, u, dx=DX))
        if obs is not None and (i + 1) % EVERY == 0:
            d = u - obs[(i + 1) // EVERY - 1]
            misfit = misfit + 0.5 * DX * dnp.sum(d * d)
        return u, misfit

    return step


def simulate(nu, n_steps, obs, budget=None, on=("numpy", "cpu")):
    """The final state and the accumulated misfit after n_steps, on backend and device `on`."""
    state0 = (place(initial_state(), *on), place(0.0, *on))
    return dk.checkpoint.loop(make_step(obs), state0, n_steps, (nu,),
                              BUDGET if budget is None else budget)


def observations(n_steps: int, rng) -> np.ndarray:
    """Snapshots of the true trajectory every EVERY steps, with 1% noise."""
    snaps, step = [], make_step(None)

    def record(state, i, nu):
        state = step(state, i, nu)
        if (i + 1) % EVERY == 0:
            snaps.append(state[0])
        return state

    dk.checkpoint.loop(record, (initial_state(), 0.0), n_steps, (NU_TRUE,))
    snaps = np.array(snaps)
    return snaps + NOISE * np.max(np.abs(snaps)) * rng.standard_normal(snaps.shape)


def main(n_steps: int = 1000, iters: int = 15, nu0: float = 0.02, plot: bool = True,
         seed: int = 0, budget=None, backend: str = "numpy", device: str = "cpu",
         png: str = "burgers_viscosity.png") -> float:
    """Run the fit; return the relative error of the recovered viscosity."""
    obs_np = observations(n_steps, np.random.default_rng(seed))
    obs, on = place(obs_np, backend, device), (backend, device)
    print(f"problem: 1D viscous Burgers, N={N}, {n_steps} Euler steps (dt={DT}), "
          f"{len(obs_np)} noisy snapshots; recover nu (true {NU_TRUE}) from nu0={nu0}")
    print(f"backend: {backend} ({device}); budget: "
          f"{budget or BUDGET['budget']['memory']} for snapshots and one step's tape")

    def misfit(nu):
        return simulate(nu, n_steps, obs, budget, on)[1]

    def objective(p):
        nu = float(np.exp(p[0]))
        if nu > NU_MAX:  # unstable: tell the line search to step back
            return np.inf, np.zeros(1)
        value, dmisfit = dk.value_and_grad(misfit)(place(nu, *on))
        return float(value), np.array([float(dmisfit) * nu])  # chain rule for log(nu)

    t0 = time.perf_counter()
    objective(np.log([nu0]))
    report = dk.checkpoint.last_report()
    store_all = n_steps * (report.state_bytes + report.work_bytes) / 2**20
    print(f"(store-all would hold ~{store_all:.1f} MiB: {n_steps} states and step tapes)")
    print(f"\nplan for one gradient:\n{report.plan}\n\nwhat one gradient did:\n{report}\n")

    def show(k, p, f):
        print(f"iteration {k:2d}: nu = {np.exp(p[0]):.6f}, misfit = {f:.4e}")

    p, f, k = lbfgs(objective, np.log([nu0]), iters=iters, gtol=1e-9, callback=show)
    nu = float(np.exp(p[0]))
    err = abs(nu - NU_TRUE) / NU_TRUE
    print(f"\nL-BFGS: {k} iterations in {time.perf_counter() - t0:.1f} s; nu = {nu:.5f} "
          f"(true {NU_TRUE}), relative error {err:.2e} (noise limits it)")
    if plot:
        _plot(obs_np, nu, nu0, n_steps, png)
    return err


def _plot(obs, nu, nu0, n_steps, png):
    x = np.arange(N) * DX
    finals = {f"nu0 = {nu0}": to_numpy(simulate(nu0, n_steps, obs)[0]),
              f"fitted nu = {nu:.4f}": to_numpy(simulate(nu, n_steps, obs)[0])}

    def draw(plt):
        plt.figure(figsize=(7, 3.5))
        plt.plot(x, initial_state(), "k:", label="u(0)")
        plt.plot(x, obs[-1], ".", ms=3, label="last observation")
        for label, u in finals.items():
            plt.plot(x, u, label=label)
        plt.xlabel("x")
        plt.title("Burgers: viscosity fitted from noisy snapshots")
        plt.legend()

    save_png(draw, png)


def cli(argv=None):
    """Parse the command line (`--help` lists it) and run `main`."""
    parser = example_parser(__doc__, steps=1000, iters=15, budget=BUDGET["budget"]["memory"],
                            png="burgers_viscosity.png")
    parser.add_argument("--nu0", type=float, default=0.02,
                        help="initial guess of the viscosity (default: %(default)s)")
    return run_main(main, parser, argv)


if __name__ == "__main__":
    cli()
