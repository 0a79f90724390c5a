"""diffkit on torch against PyTorch eager autograd, in one process on the same tensors.

(a) per-op gradient overhead on small tensors: the chain x = sin(x)*1.0001 + 0.01*cos(x),
    400 times (2,000 ops) on 8 float64 elements; gradient time per op (target <= 1.25x);
(b) a large-tensor workload: the dense loss sum((tanh(X@W1)@W2)**2), X 256x512,
    W1 512x512, W2 512x64 (float32), gradient w.r.t. W1 and W2 (target <= 1.1x).

On CUDA it also prints the peak device memory (torch.cuda.max_memory_allocated) of each
gradient. Run: python benchmarks/bench_torch.py [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import diffkit as dk
import diffkit.numpy as dnp

N_ITER, OPS_PER_ITER = 400, 5


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device, repeat=9, number=3):
    """Median over `repeat` runs of the mean time of `number` calls (after a warm-up)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        sync(device)
        times.append((time.perf_counter() - t) / number)
    return statistics.median(times)


def peak_memory(fn, device) -> str:
    if device.type != "cuda":
        return ""
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    return f"  peak {peak / 2**20:8.1f} MiB"


# -- (a) the chain ------------------------------------------------------------------------
def chain_diffkit(x):
    for _ in range(N_ITER):
        x = dnp.sin(x) * 1.0001 + 0.01 * dnp.cos(x)
    return dnp.sum(x)


def chain_torch_grad(x):
    x = x.detach().requires_grad_()
    y = x
    for _ in range(N_ITER):
        y = torch.sin(y) * 1.0001 + 0.01 * torch.cos(y)
    (g,) = torch.autograd.grad(y.sum(), x)
    return g


# -- (b) the dense loss ---------------------------------------------------------------------
def dense_diffkit(w1, w2, x):
    return dnp.sum((dnp.tanh(x @ w1) @ w2) ** 2)


def dense_torch_grad(w1, w2, x):
    w1, w2 = w1.detach().requires_grad_(), w2.detach().requires_grad_()
    loss = ((torch.tanh(x @ w1) @ w2) ** 2).sum()
    return torch.autograd.grad(loss, (w1, w2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, dtype=torch.float64, generator=gen).to(device)
    g_dk = dk.grad(chain_diffkit)
    torch.testing.assert_close(g_dk(x), chain_torch_grad(x))
    n_ops = N_ITER * OPS_PER_ITER
    t_dk = median_time(lambda: g_dk(x), device) / n_ops
    t_pt = median_time(lambda: chain_torch_grad(x), device) / n_ops
    print(f"(a) chain grad, {n_ops} ops on 8 float64:  diffkit {t_dk * 1e6:6.2f} us/op   "
          f"torch eager {t_pt * 1e6:6.2f} us/op   ratio {t_dk / t_pt:5.2f}x (target 1.25x)"
          + peak_memory(lambda: g_dk(x), device))

    def r(*s):
        return (torch.randn(*s, generator=gen) / s[0] ** 0.5).to(device)

    w1, w2, X = r(512, 512), r(512, 64), r(256, 512)
    g_dense = dk.grad(dense_diffkit, argnums=(0, 1))
    for a, b in zip(g_dense(w1, w2, X), dense_torch_grad(w1, w2, X), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    t_dk = median_time(lambda: g_dense(w1, w2, X), device)
    t_pt = median_time(lambda: dense_torch_grad(w1, w2, X), device)
    mem_dk = peak_memory(lambda: g_dense(w1, w2, X), device)
    mem_pt = peak_memory(lambda: dense_torch_grad(w1, w2, X), device)
    print(f"(b) dense grad 256x512 @ 512x512 @ 512x64 float32:  diffkit {t_dk * 1e3:7.3f} ms"
          f"{mem_dk}   torch eager {t_pt * 1e3:7.3f} ms{mem_pt}   ratio {t_dk / t_pt:5.2f}x "
          f"(target 1.1x)")


if __name__ == "__main__":
    main()
