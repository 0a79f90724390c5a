"""Adaptive time stepping inside `dk.checkpoint.while_loop`: recover a projectile's drag
coefficient and launch speed from where and when it landed.

    x'' = -k |v| v_x,   z'' = -g - k |v| v_z,   launched at 45 degrees from z = 1 m

The integrator is Bogacki-Shampine RK23 with error control: each loop step tries a step
size, accepts or rejects it, and picks the next size. How many steps the flight takes is
known only when the projectile hits the ground, so the loop is a `while_loop` (until
z < 0) and its gradient uses the online checkpoint schedule, which needs no step count in
advance. The landing point and time come from interpolating the last step.

The step-size controller is kept out of the derivative (step sizes are plain floats): the
gradient is that of the discrete solution on the accepted grid, which matches the exact
sensitivity up to the integrator's tolerance. It is printed next to central differences
of the whole adaptive solver, whose step sizes move with the parameters.

Run: python examples/adaptive_ode.py   (--help lists the options: tolerance, budget, iters)

NumPy only for now: on torch the step tapes are larger, and with the default budget the
online schedule meets a step whose tape outgrows the one it planned for (a BudgetError).
"""

from __future__ import annotations

import time

import numpy as np
from _shared import example_parser, lbfgs, place, run_main, save_png

import diffkit as dk
import diffkit.numpy as dnp

G = np.array([0.0, -9.81])
ANGLE = np.pi / 4
Z0 = 1.0
TRUE = {"k": 0.02, "v0": 30.0}
BUDGET = {"budget": {"memory": "160KiB"}}


def rhs(y, k):
    v = y[2:]
    speed = dnp.sqrt(dnp.sum(v * v))
    return dnp.concatenate([v, -k * speed * v + dnp.asarray(G, like=y)])


def rk23(y, h, k):
    """One Bogacki-Shampine step: the third-order solution and the embedded error."""
    k1 = rhs(y, k)
    k2 = rhs(y + 0.5 * h * k1, k)
    k3 = rhs(y + 0.75 * h * k2, k)
    y3 = y + h * (2 / 9 * k1 + 1 / 3 * k2 + 4 / 9 * k3)
    k4 = rhs(y3, k)
    y2 = y + h * (7 / 24 * k1 + 1 / 4 * k2 + 1 / 3 * k3 + 1 / 8 * k4)
    return y3, dnp.max(dnp.abs(y3 - y2))


def make_step(tol):
    def step(state, i, k):
        """Try step size h; accept when the error estimate is within tol; adapt h."""
        t, y, h, t_prev, y_prev, rejected = state
        y_new, err = rk23(y, h, k)
        ratio = float(dk.stop_gradient(err)) / tol  # step-size control: a primal decision
        if ratio <= 1.0:
            t_prev, y_prev, t, y = t, y, t + h, y_new
        else:
            rejected = rejected + 1
        h = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** (-1 / 3)))
        return t, y, h, t_prev, y_prev, rejected

    return step


def flying(state, i, k):
    return state[1][1] > 0.0


def initial_state(y0):
    """(t, y, h, t_prev, y_prev, rejected); scalars as 0-d arrays on y0's backend, as
    while_loop's gradient does not yet accept Python-scalar leaves in the state."""
    t0, h0 = dnp.zeros((), like=y0), dnp.full((), 0.01, like=y0)
    return t0, y0, h0, t0, y0, np.asarray(0)


def fly(k, v0, tol=1e-6, budget=None):
    """(range, flight time, accepted steps, rejected steps) of one flight."""
    y0 = dnp.concatenate([dnp.zeros(1, like=v0), dnp.full(1, Z0, like=v0),
                          v0 * dnp.asarray([np.cos(ANGLE), np.sin(ANGLE)], like=v0)])
    state0 = initial_state(y0)
    t, y, _, t_prev, y_prev, rejected = dk.checkpoint.while_loop(
        flying, make_step(tol), state0, (k,), BUDGET if budget is None else budget)
    frac = y_prev[1] / (y_prev[1] - y[1])  # linear interpolation to z = 0
    return (y_prev[0] + frac * (y[0] - y_prev[0]), t_prev + frac * (t - t_prev),
            rejected)


def main(tol: float = 1e-6, iters: int = 30, plot: bool = True, seed: int = 0, budget=None,
         backend: str = "numpy", png: str = "adaptive_ode.png") -> float:
    """Fit (k, v0); return the larger relative error of the two."""
    rng = np.random.default_rng(seed)
    r_true, t_true, _ = fly(TRUE["k"], TRUE["v0"], tol)
    r_obs, t_obs = (float(v) * (1 + 1e-4 * rng.standard_normal()) for v in (r_true, t_true))
    print(f"problem: projectile with quadratic drag, adaptive RK23 (tol {tol:g}) until it "
          f"lands; observed range {r_obs:.3f} m and flight time {t_obs:.4f} s (0.01% "
          f"noise); recover drag k (true {TRUE['k']}) and speed v0 (true {TRUE['v0']} m/s)")
    print(f"backend: {backend}; budget: {budget or BUDGET['budget']['memory']}; the step "
          "count is unknown in advance")

    def misfit(p):
        r, t, _ = fly(dnp.exp(p[0]), dnp.exp(p[1]), tol, budget)
        return ((r - r_obs) / r_obs) ** 2 + ((t - t_obs) / t_obs) ** 2

    def objective(p):
        value, grad = dk.value_and_grad(misfit)(place(p, backend))
        return float(value), np.asarray(grad, dtype=np.float64)

    p0 = np.log([0.05, 20.0])
    t0 = time.perf_counter()
    _, grad = objective(p0)
    report = dk.checkpoint.last_report()
    _, _, rejected = fly(0.05, 20.0, tol)
    print(f"\nfirst flight: {report.n_steps} loop steps ({rejected} rejected)")
    print(f"plan (online):\n{report.plan}\n\nwhat the gradient did:\n{report}")
    eps = 1e-6
    fd = [(misfit(p0 + eps * e) - misfit(p0 - eps * e)) / (2 * eps) for e in np.eye(2)]
    print(f"gradient {grad} vs central differences {np.array(fd, dtype=float)}\n")

    def show(k, p, value):
        print(f"iteration {k:2d}: k = {np.exp(p[0]):.5f}, v0 = {np.exp(p[1]):.4f}, "
              f"misfit = {value:.3e}")

    p, value, n = lbfgs(objective, p0, iters=iters, gtol=1e-12, callback=show)
    k_fit, v_fit = np.exp(p)
    err = max(abs(k_fit - TRUE["k"]) / TRUE["k"], abs(v_fit - TRUE["v0"]) / TRUE["v0"])
    print(f"\nL-BFGS: {n} iterations in {time.perf_counter() - t0:.1f} s; k = {k_fit:.5f}, "
          f"v0 = {v_fit:.4f}; largest relative error {err:.2e}")
    if plot:
        save_png(lambda plt: _draw(plt, (0.05, 20.0), (k_fit, v_fit), tol), png)
    return float(err)


def _trajectory(k, v0, tol):
    points = []
    step = make_step(tol)

    def record(state, i, k):
        state = step(state, i, k)
        points.append(np.asarray(state[1][:2]))
        return state

    y0 = np.array([0.0, Z0, v0 * np.cos(ANGLE), v0 * np.sin(ANGLE)])
    dk.checkpoint.while_loop(flying, record, initial_state(y0), (k,))
    return np.array([y0[:2]] + points)


def _draw(plt, start, fit, tol):
    plt.figure(figsize=(7, 3.2))
    for label, (k, v0), style in (("initial guess", start, ":"), ("fitted", fit, "-"),
                                  ("truth", (TRUE["k"], TRUE["v0"]), "--")):
        xy = _trajectory(k, v0, tol)
        plt.plot(xy[:, 0], xy[:, 1], style, marker=".", ms=3,
                 label=f"{label}: {len(xy) - 1} loop steps")
    plt.ylim(bottom=0)
    plt.xlabel("x (m)")
    plt.ylabel("z (m)")
    plt.title("adaptive RK23 steps; drag and speed fitted from range and flight time")
    plt.legend()


def cli(argv=None):
    """Parse the command line (`--help` lists it) and run `main`."""
    parser = example_parser(__doc__, iters=30, budget=BUDGET["budget"]["memory"],
                            backends=("numpy",), png="adaptive_ode.png")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="the integrator's error tolerance per step (default: %(default)s)")
    return run_main(main, parser, argv)


if __name__ == "__main__":
    cli()
