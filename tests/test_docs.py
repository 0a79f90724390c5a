"""Documentation that is generated from the code stays identical to it."""

from __future__ import annotations

from pathlib import Path

from diffkit.cli import subgradient_table

ROOT = Path(__file__).resolve().parents[1]


def test_subgradient_table_in_the_docs_matches_the_registry():
    doc = (ROOT / "docs/conventions.md").read_text()
    start = doc.index("<!-- subgradient-table -->\n") + len("<!-- subgradient-table -->\n")
    end = doc.index("\n<!-- /subgradient-table -->")
    assert doc[start:end] == subgradient_table(), (
        "docs/conventions.md is stale: regenerate the table with "
        "`diffkit plugins --subgradients`"
    )


def test_every_primitive_with_a_kink_declares_its_choice():
    from diffkit.plugins import registry

    kinks = {"abs", "maximum", "minimum", "clip", "max", "min", "sign", "floor", "sqrt",
             "std", "vector_norm2", "quantile", "hypot"}
    prims = registry().primitives
    assert all(prims[name].subgradient for name in kinks)
