"""The PyTorch backend (CPU and CUDA). Imports torch lazily: see issue 3."""

from __future__ import annotations
