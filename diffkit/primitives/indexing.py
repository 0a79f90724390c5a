"""Indexing primitives (being written; see docs/architecture.md)."""

from __future__ import annotations

PRIMITIVES = ()
