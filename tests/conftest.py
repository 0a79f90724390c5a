"""Shared fixtures: the backends every test is parametrized over.

`backend` yields "numpy", "torch" (CPU; skipped when torch is not installed) and
"torch-cuda" (marked `cuda`; skipped with the reason when no GPU is present).
`to_backend(x)` converts NumPy test data to the backend under test.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _cuda_available() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("torch", id="torch-cpu", marks=pytest.mark.skipif(
        not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")),
    pytest.param("torch-cuda", id="torch-cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not _cuda_available(), reason="no CUDA GPU present"),
    ]),
]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def to_backend(backend):
    """Convert NumPy arrays (or pytrees of them) to the backend under test."""
    import diffkit as dk

    def convert(x):
        if backend == "numpy":
            return np.asarray(x)
        device = "cuda" if backend == "torch-cuda" else "cpu"
        return dk.asarray(np.asarray(x), backend="torch", device=device)

    return lambda tree: dk.tree.map(convert, tree)
