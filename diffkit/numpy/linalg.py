"""`diffkit.numpy.linalg`: NumPy's linalg functions, differentiable."""

from __future__ import annotations

__all__ = []
