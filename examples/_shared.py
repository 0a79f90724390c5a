"""Helpers shared by the examples: a compact L-BFGS and an optional PNG writer.

L-BFGS is Nocedal & Wright, Numerical Optimization (2006), Algorithm 7.4 (two-loop
recursion) with a backtracking Armijo line search; curvature pairs with s.y <= 0 are
skipped. Small on purpose: diffkit does not depend on SciPy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["lbfgs", "save_png"]


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
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
    print(f"saved {path}")
    return Path(path)
