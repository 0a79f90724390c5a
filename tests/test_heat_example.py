"""The README's main job, shortened: the heat inverse problem solves and improves on the data,
and a checkpointed run under a small budget gives the same answer as keeping every step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_example():
    """Import examples/heat_inverse.py, with examples/ on the path for its `_shared`."""
    spec = importlib.util.spec_from_file_location("heat_inverse", ROOT / "examples/heat_inverse.py")
    example = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        spec.loader.exec_module(example)
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return example


def test_heat_inverse_recovers_the_initial_field(capsys):
    example = load_example()
    err = example.main(grid=24, n_steps=400, iters=6, plot=False)
    out = capsys.readouterr().out
    assert "schedule" in out and "CG iteration  6" in out
    assert err < 0.15  # the blurred observation itself is 0.23 away
    small = {"budget": {"memory": "256KiB"}}
    err_small = example.main(grid=24, n_steps=400, iters=6, plot=False, budget=small)
    assert "StoreAll" not in capsys.readouterr().out
    assert err_small == pytest.approx(err, rel=1e-9)


def test_heat_inverse_command_line_draws_where_asked(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "heat.png"
    err = load_example().cli(["--steps", "30", "--grid", "12", "--iters", "2", "--png", str(png)])
    assert f"saved {png}" in capsys.readouterr().out
    assert png.stat().st_size > 0 and err < 0.2


@pytest.mark.parametrize(("spec", "store_all"), [("256KiB", False), ("laptop", True)])
def test_heat_inverse_budget_as_a_size_or_a_preset_name(spec, store_all, capsys):
    example = load_example()
    small = ["--steps", "400", "--grid", "24", "--iters", "3", "--no-plot"]
    err = example.cli(small)
    capsys.readouterr()
    err_spec = example.cli([*small, "--budget", spec])
    out = capsys.readouterr().out
    assert f"budget: {spec}" in out
    assert ("StoreAll" in out) == store_all  # 256 KiB cannot keep 400 states: it recomputes
    assert err_spec == pytest.approx(err, rel=1e-9)
