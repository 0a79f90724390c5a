"""A diffkit simulation inside a PyTorch training loop, through `diffkit_torch.to_torch`.

A small torch network maps the coordinate x to a heat source s(x). diffkit runs the heat
equation with that source,

    u_t = kappa u_xx + s(x)   on [0, 1), periodic, u(0) = 0,

as a checkpointed loop of explicit steps (the Laplacian is the stencil plugin's), and
`to_torch` turns the simulation into one node of torch's autograd graph whose backward is
diffkit's checkpointed VJP. Adam trains the network so that the simulated temperature
matches a measured one (made with a known source, plus noise).

Run: python examples/torch_training.py   (needs torch: pip install 'diffkit[torch]'; --help
lists the options: steps, iterations, budget, --device cuda)
"""

from __future__ import annotations

import importlib.util
import time

import diffkit_stencil as st
import numpy as np
from _shared import example_parser, run_main, save_png

import diffkit as dk

N = 64
DX = 1.0 / N
KAPPA = 0.01
DT = 0.2 * DX**2 / KAPPA  # explicit stability needs DT <= 0.5 DX^2 / KAPPA
NOISE = 0.002
BUDGET = {"budget": {"memory": "48KiB"}}


def true_source(x):
    return np.exp(-(((x - 0.3) / 0.06) ** 2)) - 0.6 * np.exp(-(((x - 0.7) / 0.1) ** 2))


def heat_step(u, i, s):
    return u + DT * (KAPPA * st.laplace1d(u, DX) + s)


def simulate(s, n_steps, budget=None):
    """Temperature after n_steps from u = 0 with source s (diffkit code, any backend)."""
    return dk.checkpoint.loop(heat_step, s * 0.0, n_steps, (s,),
                              BUDGET if budget is None else budget)


def main(n_steps: int = 100, iters: int = 300, plot: bool = True, seed: int = 0, budget=None,
         backend: str = "torch", device: str = "cpu", png: str = "torch_training.png"):
    """Train the source network; return the relative error of the learned source, or None
    when torch or the bridge is missing."""
    if importlib.util.find_spec("torch") is None:
        print("this example needs PyTorch: pip install 'diffkit[torch]'")
        return None
    import torch

    try:
        from diffkit_torch import to_torch
    except ImportError as e:
        print(f"this example needs the torch bridge diffkit_torch.to_torch ({e})")
        return None

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.arange(N, dtype=torch.float64, device=device) * DX
    s_true = torch.as_tensor(true_source(x.cpu().numpy()), device=device)
    u_obs = simulate(s_true, n_steps, budget)
    noise = torch.as_tensor(rng.standard_normal(N), device=device)
    u_obs = u_obs + NOISE * noise * u_obs.abs().max()
    print(f"problem: learn a heat source s(x) with a torch MLP so that diffkit's simulation "
          f"(N={N}, {n_steps} explicit steps, final time {n_steps * DT:.3f}) matches a "
          f"measured final temperature ({NOISE:.1%} noise)")
    print(f"backend: {backend} ({device}); budget: {budget or BUDGET['budget']['memory']} for "
          "the simulation's checkpoints")

    net = torch.nn.Sequential(
        torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
        torch.nn.Linear(32, 1),
    ).double().to(device)
    features = torch.stack([torch.sin(2 * torch.pi * x), torch.cos(2 * torch.pi * x)], 1)
    sim = to_torch(lambda s: simulate(s, n_steps, budget))
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    t0 = time.perf_counter()
    for k in range(1, iters + 1):
        opt.zero_grad()
        s = net(features).squeeze(1)
        loss = ((sim(s) - u_obs) ** 2).mean() / (u_obs**2).mean()
        loss.backward()
        opt.step()
        if k == 1:
            report = dk.checkpoint.last_report()
            print(f"\nplan of one gradient:\n{report.plan}\n\nwhat it did:\n{report}\n")
        if k == 1 or k % max(1, iters // 10) == 0:
            err = float((s.detach() - s_true).norm() / s_true.norm())
            print(f"iteration {k:4d}: relative misfit {loss.item():.3e}, source error {err:.3f}")
    with torch.no_grad():
        s = net(features).squeeze(1)
    err = float((s - s_true).norm() / s_true.norm())
    print(f"\nAdam: {iters} iterations in {time.perf_counter() - t0:.1f} s; relative error "
          f"of the learned source {err:.3f}")
    if plot:
        save_png(lambda plt: _draw(plt, *(v.cpu().numpy() for v in (x, s_true, s))), png)
    return err


def _draw(plt, x, s_true, s):
    plt.figure(figsize=(7, 3.2))
    plt.plot(x, s_true, "k-", label="true source")
    plt.plot(x, s, "--", label="learned by the network")
    plt.xlabel("x")
    plt.title("a torch network trained through a diffkit simulation")
    plt.legend()


def cli(argv=None):
    """Parse the command line (`--help` lists it) and run `main`."""
    parser = example_parser(__doc__, steps=100, iters=300, budget=BUDGET["budget"]["memory"],
                            backends=("torch",), png="torch_training.png")
    return run_main(main, parser, argv)


if __name__ == "__main__":
    cli()
