"""Sphinx configuration: the user guide and the Markdown docs (MyST) and the API reference
generated from the docstrings (autodoc). Built with warnings as errors by
tests/test_docs_build.py: ``sphinx-build -W --keep-going -b html docs <out>``."""

from __future__ import annotations

import importlib
import inspect

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

import diffkit

project = "diffkit"
author = "the diffkit authors"
copyright = "the diffkit authors (MIT licence)"  # noqa: A001 (Sphinx's name)
release = version = diffkit.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# The docstrings are written with Markdown's habits: `name` means code, not RST's italics.
default_role = "code"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"  # as Python writes them; the docstrings say what each means
autodoc_default_options = {"members": True}
napoleon_numpy_docstring = False

myst_heading_anchors = 3  # `page.md#a-heading` links resolve

html_theme = "alabaster"
html_title = f"diffkit {release}"


def _summary(obj) -> str:
    """The first line of an object's docstring, or what it stands for when it has none."""
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0] if doc else f"NumPy's `{obj.__name__}`."


def _inline(text: str) -> list:
    """Text with its `backticked` spans as inline code (the docstrings' Markdown habit)."""
    parts = text.split("`")
    return [nodes.literal(text=p) if k % 2 else nodes.Text(p) for k, p in enumerate(parts) if p]


class NamespaceTable(SphinxDirective):
    """``{diffkit-namespace} module``: a table of the module's public functions, each with
    its first docstring line, read when the docs are built (so a new function is listed)."""

    required_arguments = 1

    def run(self):
        module = importlib.import_module(self.arguments[0])
        names = sorted(getattr(module, "__all__", None) or
                       [n for n in dir(module) if not n.startswith("_")])
        rows = [(n, getattr(module, n)) for n in names]
        rows = [(n, obj) for n, obj in rows if callable(obj) and not inspect.isclass(obj)]
        table = nodes.table(classes=["longtable"])
        group = nodes.tgroup(cols=2)
        table += group
        group += [nodes.colspec(colwidth=20), nodes.colspec(colwidth=80)]
        body = nodes.tbody()
        group += body
        for name, obj in rows:
            row = nodes.row()
            row += nodes.entry("", nodes.paragraph("", "", nodes.literal(text=name)))
            row += nodes.entry("", nodes.paragraph("", "", *_inline(_summary(obj))))
            body += row
        return [table]


def setup(app):
    app.add_directive("diffkit-namespace", NamespaceTable)
