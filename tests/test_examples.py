"""Shortened runs of the examples in examples/ (each exposes `main(...)` with its sizes, and
a command line through `cli(argv)`)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAS_TORCH = importlib.util.find_spec("torch") is not None
NEEDS_TORCH = pytest.mark.skipif(not HAS_TORCH,
                                 reason="torch is not installed (pip install diffkit[torch])")


def _has_cuda() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


ON_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not _has_cuda(), reason="no CUDA GPU present")]
# Scripts with a command line.
SCRIPTS = ["heat_inverse", "burgers_viscosity", "adaptive_ode", "torch_training", "lorenz96",
           "heat_distributed"]
# Tiny sizes for each script's command line, and the backends (as --backend/--device) it runs on.
SHORT = {
    "heat_inverse": ["--steps", "30", "--grid", "12", "--iters", "2"],
    "burgers_viscosity": ["--steps", "100", "--iters", "2"],
    "adaptive_ode": ["--tol", "1e-3", "--iters", "1"],
    "torch_training": ["--steps", "10", "--iters", "2"],
    "lorenz96": ["--steps", "20", "--iters", "2"],
    "heat_distributed": ["--steps", "30", "--grid", "12", "--iters", "2"],  # one rank here;
}  # 2 ranks under torchrun: tests/test_distributed.py
ON = {"numpy": ["--backend", "numpy"], "torch": ["--backend", "torch", "--device", "cpu"],
      "cuda": ["--backend", "torch", "--device", "cuda"]}
MARKS = {"numpy": [], "torch": [NEEDS_TORCH], "cuda": [NEEDS_TORCH, *ON_CUDA]}
RUNS = [pytest.param(name, on, id=f"{name}-{on}", marks=MARKS[on])
        for name, ons in [("heat_inverse", ON), ("burgers_viscosity", ON),
                          ("adaptive_ode", ["numpy"]), ("torch_training", ["torch", "cuda"]),
                          ("lorenz96", ON), ("heat_distributed", ["numpy", "torch"])]
        for on in ons]


def run_script(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run examples/<name>.py with `args` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=EXAMPLES)


@pytest.fixture(scope="module")
def load():
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_usage_and_runs_nothing(name):
    t0 = time.perf_counter()
    proc = run_script(name, "--help", timeout=30)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {name}.py")
    for option in ("--budget", "--backend", "--no-plot"):
        assert option in proc.stdout
    assert "backend: " not in proc.stdout  # the first line each run prints: nothing ran
    assert elapsed < 10, f"{name}.py --help took {elapsed:.1f} s"


@pytest.mark.parametrize(("name", "on"), RUNS)
def test_short_run_from_the_command_line(name, on):
    proc = run_script(name, *SHORT[name], *ON[on], "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert f"backend: {ON[on][1]}" in proc.stdout
    if on != "numpy":
        assert f"({ON[on][3]})" in proc.stdout
    assert "relative error" in proc.stdout


@pytest.mark.parametrize("name", ["heat_inverse", "burgers_viscosity"])
def test_cuda_on_numpy_is_a_usage_error_before_anything_runs(name, load, capsys):
    with pytest.raises(SystemExit) as exc:
        load(name).cli(["--device", "cuda"])
    assert exc.value.code == 2
    assert "--device cuda needs --backend torch" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["adaptive_ode", "torch_training"])
def test_a_backend_the_example_does_not_run_on_is_refused(name, load, capsys):
    other = "torch" if name == "adaptive_ode" else "numpy"
    with pytest.raises(SystemExit):
        load(name).cli(["--backend", other])
    assert f"invalid choice: '{other}'" in capsys.readouterr().err


def test_budget_option_reaches_the_loop(load, tmp_path, capsys):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("budget:\n  memory: 8KiB\n")
    with pytest.raises(SystemExit) as exc:
        load("burgers_viscosity").cli(["--steps", "100", "--iters", "1", "--no-plot",
                                       "--budget", str(tiny)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(r"error: .*tiny\.yaml: budget\.memory .* cannot hold one saved state", err)


def test_unreadable_budget_is_an_error_message_not_a_traceback(tmp_path):
    proc = run_script("heat_inverse", "--budget", str(tmp_path / "missing.yaml"), timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert re.search(r"heat_inverse\.py: error: .*missing\.yaml", proc.stderr)


def test_lbfgs_minimizes_rosenbrock(load):
    lbfgs = load("_shared").lbfgs

    def rosen(p):
        x, y = p
        value = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
        return value, grad

    p, value, _ = lbfgs(rosen, [-1.2, 1.0], iters=100)
    np.testing.assert_allclose(p, [1.0, 1.0], atol=1e-5)


def test_burgers_viscosity(load, capsys):
    err = load("burgers_viscosity").main(n_steps=400, iters=10, plot=False)
    out = capsys.readouterr().out
    assert "schedule" in out and "iteration 10" in out
    assert err < 0.03


def test_lorenz96_numpy(load, capsys):
    err = load("lorenz96").main(n_steps=30, iters=8, backend="numpy", plot=False)
    assert "backend: numpy" in capsys.readouterr().out
    assert err < 0.1  # the initial guess F = 8 is 0.13 away


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_lorenz96_torch(load, capsys):
    err = load("lorenz96").main(n_steps=20, iters=3, backend="torch", plot=False)
    assert "backend: torch" in capsys.readouterr().out
    assert err < 0.13


def test_adaptive_ode_writes_its_png(load, capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    err = load("adaptive_ode").main(tol=1e-4, iters=15, plot=True)
    out = capsys.readouterr().out
    assert "online" in out and "rejected" in out
    assert err < 1e-2
    assert (tmp_path / "adaptive_ode.png").stat().st_size > 0


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_torch_training(load):
    err = load("torch_training").main(n_steps=30, iters=25, plot=False)
    assert err is not None and err < 1.0  # the untrained network is ~1.2 away
