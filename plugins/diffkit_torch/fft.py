"""Torch kernels of the fft primitives."""

from __future__ import annotations

KERNELS = {}
