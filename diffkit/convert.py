"""`dk.asarray`: move data between backends and devices (outside of traced code)."""

from __future__ import annotations

from diffkit.core.tracer import Tracer
from diffkit.errors import DiffkitError

__all__ = ["asarray"]


def asarray(x, backend: str | None = None, device=None, dtype=None):
    """Convert `x` (an array of any backend, a list or a scalar) to `backend` on `device`.

    With no backend, arrays stay on their own backend; lists and numbers go to the default
    backend (NumPy unless `dk.default_backend` says otherwise).

    >>> import diffkit as dk
    >>> dk.asarray([1.0, 2.0], backend="numpy").dtype
    dtype('float64')
    """
    from diffkit import numpy as dnp
    from diffkit.plugins import registry

    if backend is None and device is None:
        return dnp.asarray(x, dtype)
    reg = registry()
    if backend is None:
        own = reg.backend_of(type(x))
        backend = own.name if own is not None else "numpy"
    if backend not in reg.backends:
        hint = " (pip install 'diffkit[torch]')" if backend == "torch" else ""
        raise DiffkitError(
            f"backend {backend!r} is not available{hint}; available backends: "
            f"{', '.join(reg.backends)}"
        )
    if isinstance(x, Tracer):
        if reg.backend_of(type(x._base())) is reg.backends[backend] and device is None:
            return x if dtype is None else dnp.astype(x, dtype)
        raise DiffkitError(
            "dk.asarray cannot move a traced value to another backend or device inside a "
            "transform; convert the inputs before calling grad/vjp/jvp"
        )
    return reg.backends[backend].asarray(x, dtype=dtype, device=device)
