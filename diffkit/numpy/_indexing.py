"""Indexing with NumPy's names and signatures."""

from __future__ import annotations

__all__ = []
