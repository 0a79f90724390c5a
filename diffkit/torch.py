"""The PyTorch bridges, importable as ``diffkit.torch``: ``to_torch`` (a diffkit function as a
torch autograd function), ``from_torch`` (a torch function or ``nn.Module`` as a diffkit
operation) and ``module_params`` (a module's parameters as a dict of tensors).

They are the torch plugin's functions (``diffkit_torch.to_torch`` is the same object).
Importing this module imports neither the plugin's kernels nor torch: torch loads on the
first use of a bridge, and without torch installed that use says to install ``diffkit[torch]``.
"""

from __future__ import annotations

from diffkit.errors import DiffkitError

__all__ = ["to_torch", "from_torch", "module_params"]  # noqa: F822 (defined by __getattr__)


def __getattr__(name: str):
    """Load a bridge from ``diffkit_torch.bridge`` on first use, and keep it."""
    if name not in __all__:
        raise AttributeError(f"module 'diffkit.torch' has no attribute {name!r}")
    import diffkit_torch

    if not diffkit_torch.torch_installed():
        raise DiffkitError(f"diffkit.torch.{name}: {diffkit_torch.INSTALL_HINT}")
    from diffkit_torch import bridge

    value = getattr(bridge, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
