"""Helpers shared by the examples: their command line, a compact L-BFGS and a PNG writer.

L-BFGS is Nocedal & Wright, Numerical Optimization (2006), Algorithm 7.4 (two-loop
recursion) with a backtracking Armijo line search; curvature pairs with s.y <= 0 are
skipped. Small on purpose: diffkit does not depend on SciPy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["example_parser", "lbfgs", "parse_args", "place", "run_main", "save_png", "to_numpy"]


def example_parser(doc: str, *, steps: int | None = None, iters: int | None = None,
                   budget: str = "the example's own", backends: Sequence[str] = ("numpy", "torch"),
                   png: str | None = None) -> argparse.ArgumentParser:
    """The options every example shares; an option is left out where its default is None.

    Destinations match the keywords of the examples' `main(...)` (`--steps` -> `n_steps`,
    `--no-plot` -> `plot`), so a script's `cli(argv)` is `run_main(main, parser, argv)`.
    """
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if steps is not None:
        p.add_argument("--steps", dest="n_steps", type=int, default=steps, metavar="N",
                       help="time steps of the simulation (default: %(default)s)")
    if iters is not None:
        p.add_argument("--iters", type=int, default=iters, metavar="N",
                       help="optimizer iterations (default: %(default)s)")
    p.add_argument("--budget", default=None, help="the memory budget: a preset name (laptop), "
                   f"a size (512MiB) or a YAML file (configs/laptop.yaml); default: {budget}")
    p.add_argument("--backend", choices=backends, default=backends[0],
                   help="array backend (default: %(default)s)")
    if "torch" in backends:
        p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="where the arrays live; cuda needs --backend torch (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="draw no picture")
    if png is not None:
        p.add_argument("--png", default=png, metavar="PATH",
                       help="where the picture goes (default: %(default)s)")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
               ) -> argparse.Namespace:
    """Parse `argv` (default: sys.argv); exits with a usage error on a device the backend
    cannot reach, before anything runs."""
    args = parser.parse_args(argv)
    if getattr(args, "device", "cpu") != "cpu" and args.backend != "torch":
        parser.error(f"--device {args.device} needs --backend torch (NumPy arrays live on "
                     "the CPU)")
    return args


def run_main(main: Callable, parser: argparse.ArgumentParser,
             argv: Sequence[str] | None = None):
    """Run `main` with the parsed options; a budget it cannot use (a bad `--budget`, or one too
    small for the problem) ends the script with the message and status 2, not a traceback."""
    from diffkit.checkpoint import load_budget
    from diffkit.errors import BudgetError

    args = parse_args(parser, argv)
    try:
        if args.budget is not None:
            load_budget(args.budget)  # a bad --budget fails here, before any simulation
        return main(**vars(args))
    except BudgetError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


def place(x, backend: str = "numpy", device: str = "cpu"):
    """`x` (NumPy-side data) as a float64 array of `backend` on `device`, what the examples
    compute on."""
    import diffkit as dk

    return dk.asarray(np.asarray(x, dtype=np.float64), backend=backend,
                      device=None if backend == "numpy" else device)


def to_numpy(x) -> np.ndarray:
    """`x` (any backend, any device) as a NumPy array, for printing, L-BFGS and plots."""
    import diffkit as dk

    return np.asarray(dk.asarray(x, backend="numpy"))


def lbfgs(fun: Callable, x0, iters: int = 30, memory: int = 8, gtol: float = 1e-8,
          callback: Callable | None = None):
    """Minimize `fun(x) -> (value, gradient)` over a float64 vector from `x0`.

    Returns `(x, value, n_iterations)`; stops when the gradient's max-norm drops below
    `gtol` or after `iters` iterations. `callback(k, x, value)` runs after each one.
    """
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
    k = 0
    for k in range(1, iters + 1):
        if np.max(np.abs(g)) < gtol:
            return x, f, k - 1
        d = -_two_loop(g, pairs)
        if g @ d >= 0:  # not a descent direction: restart from steepest descent
            pairs.clear()
            d = -g
        step = 1.0 if pairs else min(1.0, 1.0 / max(np.max(np.abs(g)), 1e-300))
        for _ in range(30):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * (g @ d):
                break
            step *= 0.5
        else:
            return x, f, k
        s, y = x_new - x, g_new - g
        if s @ y > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            pairs.append((s, y, 1.0 / (s @ y)))
            del pairs[:-memory]
        x, f, g = x_new, f_new, g_new
        if callback is not None:
            callback(k, x, f)
    return x, f, k


def _two_loop(g, pairs):
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * (s @ q)
        alphas.append(a)
        q -= a * y
    if pairs:
        s, y, _ = pairs[-1]
        q *= (s @ y) / (y @ y)
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        q += (a - rho * (y @ q)) * s
    return q


def save_png(draw: Callable, path: str | Path) -> Path | None:
    """Call `draw(plt)` and save the current figure to `path`, when matplotlib is
    installed; otherwise say so and return None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no picture; pip install matplotlib)")
        return None
    draw(plt)
    if plt.gcf().get_layout_engine() is None:  # a figure may bring its own (constrained)
        plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
    print(f"saved {path}")
    return Path(path)
