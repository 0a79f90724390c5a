"""Torch kernels of the products primitives."""

from __future__ import annotations

KERNELS = {}
