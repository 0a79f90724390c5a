"""`diffkit.numpy.fft`: NumPy's fft functions, differentiable."""

from __future__ import annotations

__all__ = []
