"""The README stays true: CI runs its test command, and its tour's code runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import HAS_TORCH

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def fenced(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    test_command = fenced("bash")[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert test_command == "python -m pytest -q"
    assert ci_lines[-1] == test_command


def test_readme_main_job_is_the_heat_example():
    assert "python examples/heat_inverse.py" in fenced("bash")[0]
    assert (ROOT / "examples/heat_inverse.py").exists()


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_tour_snippets_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    for block in fenced("python"):
        exec(block.replace("100_000", "2_000"), namespace)  # a shortened simulation
    assert namespace["g"].shape == (3,) and namespace["h"].shape == (3, 3)
    assert namespace["gt"].shape == (3,)
    assert namespace["g_torch"].numpy() == pytest.approx(namespace["g_np"], rel=1e-12)
    assert str(namespace["g_32"].dtype) == "torch.float32"  # the backend-neutral snippet
    assert namespace["w_t"].grad.numpy() == pytest.approx(namespace["g"])
    assert namespace["g_u0"].shape == (1000,)
    assert namespace["g_kappa"].shape == ()  # the scan snippet ran
    assert "forward advances" in capsys.readouterr().out
