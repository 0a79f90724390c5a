"""diffkit: exact gradients of long numerical programs, on NumPy and PyTorch.

    import diffkit as dk
    import diffkit.numpy as dnp

The transforms and `dk.checkpoint` load on first use (PEP 562), so that importing the
core (`diffkit.core.*`) alone loads no namespace, no primitive and no plugin.
"""

import importlib

from diffkit.errors import DiffkitError

__version__ = "0.1.0"

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "hessian", "hvp",
    "custom_vjp", "custom_jvp", "stop_gradient", "tree", "asarray", "checkpoint", "remat",
    "default_backend", "make_program", "DiffkitError",
]

_LAZY = {  # public name -> the module that defines it
    **dict.fromkeys(("grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev",
                     "hessian", "hvp", "stop_gradient"), "diffkit.transforms"),
    "custom_vjp": "diffkit.custom", "custom_jvp": "diffkit.custom",
    "asarray": "diffkit.convert", "checkpoint": "diffkit.checkpoint", "tree": "diffkit.tree",
    "remat": "diffkit.checkpoint", "torch": "diffkit.torch",
    "default_backend": "diffkit.defaults", "make_program": "diffkit.programs",
}


def __getattr__(name: str):
    """Load a public name's module on first use, and keep the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'diffkit' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if module == f"diffkit.{name}" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
