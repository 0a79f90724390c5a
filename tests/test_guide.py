"""The user guide stays true: every code block in docs/guide/*.md runs, in order, one
namespace per page, in an empty working directory. A ```text block right after a python or
bash block is that block's output, compared with what it prints (whitespace-insensitive; the
folder of the budget presets is written <presets> and measured seconds as <t> s); an
```output block is a sample of a table whose numbers vary with the machine and the memory
model (a loop's report): its rows, named by their first column, must be the printed ones.
A yaml block is a budget that load_budget must accept."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from diffkit.checkpoint.budget import PRESET_DIR, load_budget

from .conftest import HAS_TORCH

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs/guide").glob("*.md"))


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of a Markdown page as (language, body); directives are left out."""
    return re.findall(r"^```(\w+)\n(.*?)^```$", text, flags=re.S | re.M)


def normalized(text: str) -> str:
    text = text.replace(str(PRESET_DIR), "<presets>")
    text = re.sub(r"\b\d+\.\d{3} s\b", "<t> s", text)
    return " ".join(text.split())


def row_names(text: str) -> list[str]:
    """The first column of each line of a table printed as text (columns: 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip())[0] for line in text.splitlines() if line.strip()]


def run_python(body: str, namespace: dict, where: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(body, where, "exec"), namespace)
    return out.getvalue()


def run_bash(body: str, cwd: Path) -> str:
    env = {**os.environ,  # the `diffkit` command of this Python, on the diffkit under test
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(["bash", "-euc", body], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"{body!r} failed:\n{run.stdout}\n{run.stderr}"
    return run.stdout


@pytest.fixture
def clean_logging():
    """A page may configure logging as a user would; put the root logger back after it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_guide_page_runs_and_prints_what_it_shows(page, tmp_path, monkeypatch, clean_logging):
    text = page.read_text()
    if "import torch" in text and not HAS_TORCH:
        pytest.skip("torch is not installed (pip install diffkit[torch])")
    if "import scipy" in text:
        pytest.importorskip("scipy", reason="scipy is not installed (pip install diffkit[scipy])")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"guide_{page.stem}"}
    output = None  # what the previous python/bash block printed
    for k, (lang, body) in enumerate(blocks(text)):
        where = f"docs/guide/{page.name}, block {k} ({lang})"
        if lang == "python":
            output = run_python(body, namespace, where)
        elif lang == "bash":
            output = run_bash(body, tmp_path)
        elif lang == "text":
            assert output is not None, f"{where}: a text block must follow the code it shows"
            assert normalized(output) == normalized(body), (
                f"{where}: the page shows\n{body}\nbut the code printed\n{output}")
            output = None
        elif lang == "output":
            assert output is not None, f"{where}: an output block must follow the code it shows"
            assert row_names(output) == row_names(body), (
                f"{where}: the page shows the rows {row_names(body)} but the code printed "
                f"{row_names(output)}:\n{output}\n(explain a new row on the page)")
            output = None
        elif lang == "yaml":
            (tmp_path / "budget.yaml").write_text(body)
            load_budget(str(tmp_path / "budget.yaml"))
            output = None
        else:
            raise AssertionError(f"{where}: no runner for a {lang!r} block")


def test_every_guide_page_has_code_that_runs():
    assert len(PAGES) >= 5
    for page in PAGES:
        if page.stem != "index":
            assert any(lang == "python" for lang, _ in blocks(page.read_text())), page.name


def resolve(dotted: str):
    """The object a dotted name written in the guide stands for (dk = diffkit, dnp =
    diffkit.numpy), importing submodules as Python would."""
    import importlib

    head, *rest = dotted.split(".")
    path = {"dk": "diffkit", "dnp": "diffkit.numpy"}.get(head, head)
    obj = importlib.import_module(path)
    for part in rest:
        if not hasattr(obj, part):
            path = f"{path}.{part}"
            obj = importlib.import_module(path)  # a submodule not yet imported
        else:
            obj = getattr(obj, part)
            path = f"{path}.{part}"
    return obj


def test_every_diffkit_name_in_the_guide_exists():
    names = {m for page in PAGES
             for m in re.findall(r"\b((?:dk|dnp|diffkit)(?:\.\w+)+)", page.read_text())}
    if not HAS_TORCH:
        names = {n for n in names if not n.startswith("diffkit.torch.")}
    assert len(names) > 40
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (AttributeError, ImportError):
            missing.append(name)
    assert not missing, f"the guide names what diffkit does not have: {missing}"


def test_scipy_recipe_works_on_every_backend(backend, to_backend):
    """guide/scipy.md's flat_objective, as the page defines it, on each backend: SciPy gets a
    float and a float64 NumPy gradient, and the fitted parameters come back on the backend."""
    pytest.importorskip("scipy", reason="scipy is not installed (pip install diffkit[scipy])")
    import numpy as np
    from scipy.optimize import minimize

    import diffkit as dk
    import diffkit.numpy as dnp

    (source,) = [body for lang, body in blocks((ROOT / "docs/guide/scipy.md").read_text())
                 if lang == "python" and "def flat_objective" in body]
    namespace = {"np": np, "dk": dk, "dnp": dnp}
    exec(source, namespace)
    t_np = np.linspace(0.0, 4.0, 50)
    t, observed = to_backend(t_np), to_backend(2.0 * np.exp(-0.7 * t_np))
    params0 = to_backend({"a": np.array(1.0), "b": np.array(0.1)})

    def misfit(p):
        return dnp.sum((p["a"] * dnp.exp(-p["b"] * t) - observed) ** 2)

    fun, x0, unravel = namespace["flat_objective"](misfit, params0)
    value, grad = fun(x0)
    assert type(value) is float and grad.dtype == np.float64 and grad.shape == (2,)
    expected = dk.grad(misfit)(params0)
    assert np.allclose(grad, [float(expected["a"]), float(expected["b"])])
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(None, None), (0.0, None)])
    fitted = unravel(res.x)
    assert type(fitted["a"]) is type(t) and res.success
    assert np.allclose([float(fitted["a"]), float(fitted["b"])], [2.0, 0.7], atol=1e-4)


def test_readme_links_the_guide_and_the_reference_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert {"docs/guide/index.md", "docs/api/index.md"} <= set(links)
    broken = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"
