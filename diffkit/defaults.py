"""`dk.default_backend`: where creation functions put arrays when nothing else says.

Called, it sets the default for the whole process; used in a `with` block, it restores the
previous default at the block's end. ``$DIFFKIT_DEFAULT_BACKEND`` / ``_DEVICE`` / ``_DTYPE``
or a ``defaults:`` mapping in the user configuration file set the initial default.
"""

from __future__ import annotations

from diffkit.core import defaults
from diffkit.core.dispatch import registry
from diffkit.errors import DiffkitError
from diffkit.numpy import _core  # noqa: F401 (installs the configuration file's reader)

__all__ = ["default_backend"]


class default_backend:  # noqa: N801 (a function to users, like torch.no_grad)
    """Make `backend` (on `device`, floats of `dtype`) the default of creation functions
    (`dnp.zeros`, `eye`, `arange`, `linspace`, `array` of numbers, ...) and of calls on Python
    numbers only. `like=` still decides per call; arrays passed in keep their backend.
    `default_backend()` restores NumPy with NumPy's dtypes.

    >>> import diffkit as dk, diffkit.numpy as dnp
    >>> with dk.default_backend("numpy", dtype="float32"):
    ...     dnp.zeros(2).dtype
    dtype('float32')
    >>> dnp.zeros(2).dtype
    dtype('float64')
    """

    def __init__(self, backend: str | None = None, *, device=None, dtype=None):
        reg = registry()
        name = reg.default_backend.name if backend is None else backend
        if name not in reg.backends:
            hint = " (pip install 'diffkit[torch]')" if name == "torch" else ""
            raise DiffkitError(f"dk.default_backend: backend {name!r} is not available{hint}; "
                               f"available backends: {', '.join(reg.backends)}")
        _check(reg, reg.backends[name], device, dtype)
        new = defaults.Defaults(backend, device, dtype, source=(
            f"dk.default_backend({backend!r}, device={device!r}, dtype={dtype!r})"))
        self._previous = defaults.replace(new)

    @staticmethod
    def current() -> defaults.Defaults:
        """The default in force: backend (None: NumPy), device, dtype and where it was set."""
        return defaults.current()

    def __enter__(self) -> default_backend:
        return self

    def __exit__(self, *exc) -> None:
        defaults.replace(self._previous)


def _check(reg, backend, device, dtype) -> None:
    """An empty array of the setting must be creatable, and `dtype` must be a float dtype."""
    try:
        probe = backend.asarray([0.0], dtype=dtype, device=device)
    except Exception as e:
        raise DiffkitError(f"dk.default_backend: backend {backend.name!r} cannot create "
                           f"arrays with device={device!r}, dtype={dtype!r}: {e}") from None
    dt = probe.dtype
    if dtype is not None and not (reg.is_inexact(dt) and "complex" not in str(dt)):
        raise DiffkitError(f"dk.default_backend: dtype={dtype!r} is not a float dtype; the "
                           f"default dtype is the one Python floats become (float32, float64)")
