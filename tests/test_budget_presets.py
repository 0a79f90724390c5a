"""Budgets anywhere (issue 14): the presets of configs/ found by name from any directory, size
strings as memory-only budgets, paths as before, `diffkit budgets`; and the packaging that
makes an installed copy behave the same (the package list, py.typed, LICENSE, diffkit.torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import load_budget, plan
from diffkit.checkpoint.budget import PRESET_DIR, Costs, presets
from diffkit.cli import main
from diffkit.errors import BudgetError, DiffkitError
from diffkit.testing import to_numpy

try:
    import tomllib
except ImportError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NAMES = ["default", "disk", "laptop", "workstation"]


def test_presets_are_the_files_of_configs():
    """configs/ itself in a source tree or an editable install, diffkit/configs when installed."""
    assert presets() == {n: PRESET_DIR / f"{n}.yaml" for n in NAMES}
    for name, path in presets().items():
        assert path.read_text() == (ROOT / "configs" / f"{name}.yaml").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_a_preset_name_loads_its_file(name):
    by_name, by_path = load_budget(name), load_budget(ROOT / "configs" / f"{name}.yaml")
    assert (by_name.memory, by_name.disk, by_name.schedule, by_name.costs) == (
        by_path.memory, by_path.disk, by_path.schedule, by_path.costs)
    assert by_name.source == f"{name} ({PRESET_DIR / name}.yaml)"


@pytest.mark.parametrize("spec,memory", [
    ("512MiB", 512 * 2**20), (" 1.5 GB ", 1_500_000_000), ("4096", 4096), (2**20, 2**20),
])
def test_a_size_is_a_memory_only_budget(spec, memory):
    b = load_budget(spec)
    assert (b.memory, b.disk, b.schedule, b.costs) == (memory, None, "auto", Costs())
    assert b.source.endswith("(memory only)")


@pytest.mark.parametrize("spec,match", [
    ("lapto", r"budget 'lapto' is not a preset; presets: default, disk, laptop, workstation "
              r"\(`diffkit budgets` shows them\)\. A budget can also be a YAML file path or a "
              r"memory size such as '512MiB'"),
    ("512XB", r"budget: cannot parse '512XB'; use .*MiB"),
    ("1.5", r"budget: '1.5' is not a whole number of bytes .* e\.g\. '1\.5GiB'"),
    (3.5, r"budget 3\.5 is not a budget; give a preset name \(default, disk, laptop, "
          r"workstation\), a size such as '512MiB', a YAML file path, a dict, or a Budget"),
    ("nowhere/laptop.yaml", r"nowhere/laptop\.yaml: cannot read the budget file"),
])
def test_bad_budget_specs_say_what_is_accepted(spec, match):
    with pytest.raises(BudgetError, match=match):
        load_budget(spec)


def test_paths_still_work(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("budget: {memory: 3MiB}\n")
    (tmp_path / "mybudget").write_text("budget: {memory: 5MiB}\n")  # a file, not a preset
    assert load_budget(tmp_path / "mine.yaml").memory == 3 * 2**20
    assert load_budget(str(tmp_path / "mine.yaml")).memory == 3 * 2**20
    monkeypatch.chdir(tmp_path)
    assert load_budget("mybudget").memory == 5 * 2**20
    monkeypatch.chdir(ROOT)
    assert load_budget("configs/laptop.yaml").source == "configs/laptop.yaml"


def _heat(u, i, kappa):
    return u + kappa * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))


@pytest.mark.parametrize("spec", ["laptop", "512MiB"])
def test_loops_and_the_planner_take_names_and_sizes(spec, backend, to_backend):
    u0, kappa = to_backend(np.linspace(0.0, 1.0, 16)), 0.2

    def misfit(u0, kappa, budget):
        return dnp.sum(dk.checkpoint.loop(_heat, u0, 20, (kappa,), budget=budget) ** 2)

    got = dk.grad(misfit, argnums=(0, 1))(u0, kappa, spec)
    assert dk.checkpoint.last_report().plan.budget.source == load_budget(spec).source
    want = dk.grad(misfit, argnums=(0, 1))(u0, kappa, None)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(to_numpy(g), to_numpy(w), rtol=1e-12)

    def until(u, i, kappa):
        return i < 7

    def wl(u0):
        return dnp.sum(dk.checkpoint.while_loop(until, _heat, u0, (kappa,), budget=spec))

    dk.grad(wl)(u0)
    assert dk.checkpoint.last_report().plan.budget.source == load_budget(spec).source
    assert plan(100, 2**20, spec).budget.memory == load_budget(spec).memory


def test_cli_budgets_lists_the_presets(capsys):
    assert main(["budgets"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[1:2] == ["memory"]}
    assert sorted(rows) == NAMES
    assert "memory 2 GiB" in rows["laptop"] and "disk none" in rows["laptop"]
    assert "memory 512 MiB" in rows["disk"] and "disk 20 GiB at /tmp/diffkit" in rows["disk"]
    assert "memory 32 GiB" in rows["workstation"] and "schedule auto" in rows["workstation"]
    assert 'budget="512MiB"' in out and str(PRESET_DIR) in out


def test_cli_plan_config_takes_a_name_or_a_size(capsys):
    assert main(["plan", "--config", "laptop", "--steps", "100", "--state-bytes", "1MiB"]) == 0
    assert f"laptop ({PRESET_DIR / 'laptop.yaml'})" in capsys.readouterr().out
    assert main(["plan", "--config", "64MiB", "--steps", "100", "--state-bytes", "1MiB"]) == 0
    assert "64MiB (memory only)" in capsys.readouterr().out
    assert main(["plan", "--config", "lapto", "--steps", "100", "--state-bytes", "1MiB"]) == 2
    assert "budget 'lapto' is not a preset; presets: default" in capsys.readouterr().out


_FROM_ELSEWHERE = """
import numpy as np, diffkit as dk, diffkit.numpy as dnp
def misfit(u0):
    return dnp.sum(dk.checkpoint.loop(lambda u, i: 0.5 * u, u0, 10, budget="laptop"))
print(dk.grad(misfit)(np.ones(3))[0], dk.checkpoint.last_report().plan.budget.source)
"""


def test_a_preset_loads_from_an_empty_working_directory(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _FROM_ELSEWHERE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    value, source = done.stdout.split(maxsplit=1)
    assert float(value) == 0.5**10
    assert source.strip() == f"laptop ({presets()['laptop']})" and not list(tmp_path.iterdir())


def test_the_package_list_covers_the_tree():
    """`packages` is listed in pyproject.toml (for diffkit.configs): no subpackage left out."""
    tool = PYPROJECT["tool"]["setuptools"]
    dirs = {name: (ROOT / path) for name, path in tool["package-dir"].items()}
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("diffkit/**/*.py")}
    found |= {p.parent.name for p in ROOT.glob("plugins/*/__init__.py")}
    assert sorted(tool["packages"]) == sorted(found | {"diffkit.configs"})
    assert dirs["diffkit.configs"] == ROOT / "configs"
    assert all((dirs.get(name, ROOT / name.replace(".", "/")) / "__init__.py").is_file()
               for name in tool["packages"] if name != "diffkit.configs")
    assert tool["package-data"] == {"diffkit": ["py.typed"], "diffkit.configs": ["*.yaml"]}


def test_license_typing_marker_and_classifiers():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) 2026 the "
                                                     "diffkit authors\n")
    assert (ROOT / "diffkit" / "py.typed").is_file() and "Typing :: Typed" in project[
        "classifiers"]


def test_diffkit_torch_imports_without_loading_torch():
    code = "import sys, diffkit, diffkit.torch; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_diffkit_torch_is_the_plugins_bridges():
    pytest.importorskip("torch")
    import diffkit_torch

    from diffkit.torch import from_torch, module_params, to_torch

    assert (to_torch, from_torch, module_params) == (
        diffkit_torch.to_torch, diffkit_torch.from_torch, diffkit_torch.module_params)
    assert dk.torch.to_torch is to_torch  # an attribute after a plain `import diffkit`


def test_diffkit_torch_without_torch_says_how_to_install(monkeypatch):
    import diffkit_torch

    import diffkit.torch as bridges

    monkeypatch.setattr(diffkit_torch, "torch_installed", lambda: False)
    monkeypatch.delitem(vars(bridges), "to_torch", raising=False)
    with pytest.raises(DiffkitError, match=r"diffkit\.torch\.to_torch: the torch backend needs "
                                           r"PyTorch: pip install 'diffkit\[torch\]'"):
        bridges.to_torch  # noqa: B018
    with pytest.raises(AttributeError, match="module 'diffkit.torch' has no attribute 'nope'"):
        bridges.nope  # noqa: B018
