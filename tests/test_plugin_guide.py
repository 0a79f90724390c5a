"""docs/plugins.md is executed: its Python snippets in order in one namespace, its
`$ diffkit ...` commands through `diffkit.cli.main`; the plugin module and pyproject it
shows are the files in examples/custom_primitive/."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

import diffkit.plugins
from diffkit.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
PACKAGE = ROOT / "examples" / "custom_primitive"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(GUIDE.read_text()) if kind == lang]


@pytest.fixture
def package_on_path():
    sys.path.insert(0, str(PACKAGE))
    try:
        yield
    finally:
        sys.path.remove(str(PACKAGE))
        module = sys.modules.pop("diffkit_huber", None)
        if module is not None and diffkit.plugins.registry().origin.get("huber_loss"):
            diffkit.plugins.unregister(module)


def test_the_guide_shows_the_example_package_files():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    assert (PACKAGE / "diffkit_huber.py").read_text() in blocks("python")
    (toml,) = blocks("toml")
    assert toml == (PACKAGE / "pyproject.toml").read_text()
    assert tomllib.loads(toml)["project"]["entry-points"]["diffkit"] == {"huber": "diffkit_huber"}


def test_every_snippet_runs(package_on_path, capsys):
    namespace: dict = {"__name__": "plugins_guide"}
    commands = [line[2:] for body in blocks("console") for line in body.splitlines()
                if line.startswith("$ diffkit ")]
    assert commands == ["diffkit plugins", "diffkit check huber --backend all"]
    python = blocks("python")
    assert len(python) >= 6
    for k, body in enumerate(python):
        exec(compile(body, f"{GUIDE}:python block {k}", "exec"), namespace)
        if "diffkit.plugins.register(" in body:
            for cmd in commands:  # the shell snippets, with the plugin registered
                assert cli_main(shlex.split(cmd)[1:]) == 0, cmd
    out = capsys.readouterr().out
    assert "primitives from plugin huber (1)" in out
    assert re.search(r"huber_loss +kernels: numpy, torch", out) or "torch" not in out
    assert "ok    numpy  huber_loss" in out
    assert "fitted rate 0.3" in out
