"""The docs build: the user guide, the Markdown pages and the API reference generated from
the docstrings (Sphinx, docs/conf.py), with every warning an error, and the reference covers
the public API. Skipped only when the docs tools (the `docs` extra) are not installed."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HAS_TORCH

pytest.importorskip("sphinx", reason="the docs tools are not installed (pip install diffkit[docs])")
pytest.importorskip("myst_parser",
                    reason="the docs tools are not installed (pip install diffkit[docs])")

if not HAS_TORCH:  # the diffkit.torch page documents the bridges, which load torch
    pytest.skip("torch is not installed (pip install diffkit[torch])", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]

# Modules whose public functions and classes (their __all__) the reference must document;
# a new public module gets a page under docs/api/ and a line here.
DOCUMENTED = ["diffkit", "diffkit.tree", "diffkit.checkpoint", "diffkit.testing",
              "diffkit.extend", "diffkit.torch", "diffkit.errors", "diffkit.scipy.special",
              "diffkit.scipy.stats", "diffkit.distributed"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Build the HTML docs once, from scratch, into a temporary directory."""
    out = tmp_path_factory.mktemp("docs")
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
         "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "WARNING" not in run.stderr and "ERROR" not in run.stderr, (
        f"the docs build failed or warned (sphinx-build -W --keep-going -b html docs OUT):\n"
        f"{run.stderr[-4000:]}")
    return out / "html"


def test_docs_build_with_no_warning(built):
    pages = {p.relative_to(built).as_posix() for p in built.rglob("*.html")}
    assert {"index.html", "api/diffkit.html", "guide/index.html",
            "checkpointing.html"} <= pages


def _public(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", [])
    return [n for n in names if inspect.isfunction(getattr(module, n))
            or inspect.isclass(getattr(module, n))]


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_reference_documents_every_public_function_and_class(built, module_name):
    html = "".join(p.read_text() for p in (built / "api").glob("*.html"))
    anchors = set(re.findall(r'id="([\w.]+)"', html))
    missing = [n for n in _public(module_name) if f"{module_name}.{n}" not in anchors]
    assert not missing, (f"docs/api/ documents none of {module_name}.{missing}: add them to "
                         f"the module's page (an automodule block lists its __all__)")


@pytest.mark.parametrize("module_name", ["diffkit.numpy", "diffkit.numpy.linalg",
                                         "diffkit.numpy.fft", "diffkit.scipy.linalg",
                                         "diffkit.scipy.signal"])
def test_namespace_tables_list_every_function(built, module_name):
    module = importlib.import_module(module_name)
    text = (built / "api/numpy.html").read_text()
    listed = set(re.findall(r'<span class="pre">(\w+)</span>', text))
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    public = {n for n in names if inspect.isfunction(getattr(module, n))}
    assert public and public <= listed, (f"docs/api/numpy.md lists none of {module_name}."
                                         f"{sorted(public - listed)}: give the module a "
                                         f"diffkit-namespace table there")
