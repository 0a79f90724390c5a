"""diffkit: exact gradients of long numerical programs, on NumPy and PyTorch.

    import diffkit as dk
    import diffkit.numpy as dnp
"""

from diffkit import tree
from diffkit import checkpoint
from diffkit.core import tracer as _tracer  # noqa: F401  (first: breaks the import cycle)
from diffkit.core.custom import custom_jvp, custom_vjp
from diffkit.core.transforms import (
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    linearize,
    stop_gradient,
    value_and_grad,
    vjp,
)
from diffkit.convert import asarray
from diffkit.errors import DiffkitError

__version__ = "0.1.0"

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "hessian", "hvp",
    "custom_vjp", "custom_jvp", "stop_gradient", "tree", "asarray", "checkpoint", "DiffkitError",
]
