"""What a weak constant costs: a NumPy array meeting a tensor is moved to the tensor's device
on every call (diffkit keeps no cache of moved constants), against the same constant made
on the device once (`dnp.zeros(n, like=x)` or `dk.default_backend("torch", device=...)`).

Rows, per size n (float64): `tensor + tensor` (the constant already on the device),
`tensor + NumPy` (moved each call: on CPU torch shares the NumPy memory, on CUDA a host to
device copy), the gradient of a 20-step checkpointed loop whose step creates its constants
inside (`dnp.eye`-like NumPy constants) against the same loop with device constants.

Run: python benchmarks/bench_weak_constants.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import diffkit as dk
import diffkit.numpy as dnp


def best(fn, repeat: int = 5, number: int = 10) -> float:
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    out = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out = min(out, (time.perf_counter() - t) / number)
    return out


def loop_grad(x, constant):
    """A checkpointed loop whose step adds a constant made inside (NumPy, or on x's device)."""

    def step(u, i):
        c = constant(u)
        return 0.5 * u + 0.1 * dnp.sin(u) + c

    return dk.grad(lambda x: dnp.sum(dk.checkpoint.loop(step, x, 20, budget="8GiB") ** 2))(x)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    args = ap.parse_args(argv)
    sizes = (1_000, 100_000) if args.quick else (1_000, 100_000, 1_000_000)
    print(f"device {args.device}; times in ms (best of 5), ratio = NumPy constant / device one")
    for n in sizes:
        x = torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=args.device)
        on_device, host = torch.ones(n, dtype=torch.float64, device=args.device), np.ones(n)
        t_dev = best(lambda x=x, c=on_device: dnp.add(x, c))
        t_np = best(lambda x=x, c=host: dnp.add(x, c))
        print(f"  n={n:>10,}  add: device constant {t_dev * 1e3:9.3f}  NumPy constant "
              f"{t_np * 1e3:9.3f}  ratio {t_np / t_dev:6.2f}")
        g_dev = best(lambda x=x: loop_grad(x, lambda u: dnp.full_like(u, 0.01)), number=1)
        g_np = best(lambda x=x, n=n: loop_grad(x, lambda u: np.full(n, 0.01)), number=1)
        print(f"  n={n:>10,}  20-step loop gradient: device constants {g_dev * 1e3:9.3f}  "
              f"NumPy constants {g_np * 1e3:9.3f}  ratio {g_np / g_dev:6.2f}")


if __name__ == "__main__":
    main()
