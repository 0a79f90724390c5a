"""Core AD overhead against peers, measured in one process on the same inputs.

(a) per-primitive overhead: a chain of 2,000 elementwise ops
    (x = sin(x)*1.0001 + 0.01*cos(x), 400 times: 5 ops each) on 8 float64 elements,
    gradient time per op;
(b) a dense loss sum((tanh(X@W1)@W2)**2), X 256x512, W1 512x512, W2 512x64, gradient
    w.r.t. W1 with BLAS pinned to one thread, time / the hand-written gradient's time.

Peers: hand-written NumPy, HIPS autograd, PyTorch eager, JAX — each when installed.
Run: python benchmarks/bench_core.py
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import importlib.util  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import diffkit as dk  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402

N_ITER, OPS_PER_ITER = 400, 5


def best_time(fn, repeat=7, number=3):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def chain(np_mod):
    def f(x):
        for _ in range(N_ITER):
            x = np_mod.sin(x) * 1.0001 + 0.01 * np_mod.cos(x)
        return np_mod.sum(x)

    return f


def chain_handwritten(x):
    xs = []
    for _ in range(N_ITER):
        xs.append(x)
        x = np.sin(x) * 1.0001 + 0.01 * np.cos(x)
    g = np.ones_like(x)
    for x in reversed(xs):
        g = g * (np.cos(x) * 1.0001 - 0.01 * np.sin(x))
    return g


def dense_np(np_mod, X, W2):
    def loss(W1):
        h = np_mod.tanh(X @ W1) @ W2
        return np_mod.sum(h * h)

    return loss


def dense_handwritten(X, W1, W2):
    a = np.tanh(X @ W1)
    h = a @ W2
    ga = (2 * h) @ W2.T
    return X.T @ (ga * (1 - a * a))


def run_chain():
    x = np.random.default_rng(0).uniform(-1, 1, 8)
    n_ops = N_ITER * OPS_PER_ITER
    rows = [("diffkit", best_time(lambda: dk.grad(chain(dnp))(x)))]
    rows.append(("hand-written NumPy", best_time(lambda: chain_handwritten(x))))
    if importlib.util.find_spec("autograd"):
        import autograd
        import autograd.numpy as anp

        rows.append(("HIPS autograd", best_time(lambda: autograd.grad(chain(anp))(x))))
    if importlib.util.find_spec("torch"):
        import torch

        torch.set_num_threads(1)
        tx = torch.tensor(x)

        def torch_grad():
            xx = tx.clone().requires_grad_(True)
            chain(torch)(xx).backward()
            return xx.grad

        rows.append(("PyTorch eager", best_time(torch_grad)))
    if importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        g = jax.grad(chain(jnp))
        rows.append(("JAX (op-by-op, no jit)", best_time(lambda: g(x).block_until_ready(),
                                                        repeat=3, number=1)))
    print(f"(a) chain of {n_ops} elementwise ops on 8 float64, gradient time per op")
    ref = dict(rows).get("PyTorch eager")
    for name, t in rows:
        ratio = f"{t / ref:5.2f}x PyTorch eager" if ref else ""
        print(f"    {name:<24} {t / n_ops * 1e6:7.2f} us/op   {ratio}")


def run_dense():
    rng = np.random.default_rng(1)
    X, W1 = rng.standard_normal((256, 512)), rng.standard_normal((512, 512)) * 0.05
    W2 = rng.standard_normal((512, 64))
    hand = best_time(lambda: dense_handwritten(X, W1, W2))
    rows = [("diffkit", best_time(lambda: dk.grad(dense_np(dnp, X, W2))(W1)))]
    if importlib.util.find_spec("autograd"):
        import autograd
        import autograd.numpy as anp

        rows.append(("HIPS autograd", best_time(lambda: autograd.grad(dense_np(anp, X, W2))(W1))))
    if importlib.util.find_spec("torch"):
        import torch

        tX, tW2 = torch.tensor(X), torch.tensor(W2)

        def torch_grad():
            w = torch.tensor(W1, requires_grad=True)
            dense_np(torch, tX, tW2)(w).backward()
            return w.grad

        rows.append(("PyTorch eager", best_time(torch_grad)))
    print(f"(b) dense loss gradient w.r.t. W1 (BLAS 1 thread); hand-written: {hand * 1e3:.2f} ms")
    for name, t in rows:
        print(f"    {name:<24} {t * 1e3:7.2f} ms   {t / hand:5.2f}x hand-written")


if __name__ == "__main__":
    run_chain()
    run_dense()
