"""Shortened runs of the examples in examples/ (each exposes `main(...)` with its sizes)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def load():
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(EXAMPLES))


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
