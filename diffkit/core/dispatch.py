"""Kernel dispatch: the active registry slot and the slow path of `Primitive.impl`.

The core holds the active `Registry` but does not know how one is built: `diffkit.plugins`
(which adapts pluggy onto it) installs a factory with `set_factory`, called on first use.
Facts about backends (the default one, which dtypes are inexact) come from the `Backend`
objects, so nothing here knows NumPy or torch.
"""

from __future__ import annotations

from collections.abc import Callable

from diffkit.core import defaults
from diffkit.errors import BackendMismatchError, DiffkitError, RegistryError

__all__ = ["SCALAR_TYPES", "registry", "activate", "set_factory", "dispatch_slow",
           "kernel_failed", "is_inexact", "default_backend", "WEAK", "weak_type"]

SCALAR_TYPES = frozenset({int, float, complex, bool, type(None)})

# (this module sits below `core.primitive` and `core.registry`, so it names their classes
# in words only: a `Registry` is what the factory returns)
_active = None  # the active Registry
WEAK: dict[type, bool] = {}  # array type -> belongs to the default backend (weak constants)
_factory: Callable[[], object] | None = None


def set_factory(factory: Callable[[], object]) -> None:
    """Install what builds the default registry on first use (`diffkit.plugins` does)."""
    global _factory
    _factory = factory


def registry():
    """The active registry (the factory builds it on first use)."""
    if _active is None:
        if _factory is None:
            raise RegistryError(
                "no registry: diffkit.plugins, which builds it from the installed plugins, "
                "was not imported (the primitives layer imports it: import diffkit.primitives)"
            )
        activate(_factory())
    return _active


def activate(reg) -> None:
    """Make `reg` the active registry; the primitives' kernel caches start empty."""
    global _active
    WEAK.clear()
    if _active is not None:
        for p in _active.primitives.values():
            p.kernels = {}
    for p in reg.primitives.values():
        p.kernels = {}
    _active = reg


def weak_type(t: type) -> bool:
    """Whether arrays of type `t` are weak constants: the registry's default backend's
    (NumPy's), or no backend's (lists, which dispatch converts); cached in `WEAK`."""
    b = registry().backend_of(t)
    WEAK[t] = weak = b is None or b.default
    return weak


def is_inexact(x) -> bool:
    """Whether `x` (an array, a traced value or a Python number) carries derivatives: a
    floating or complex dtype, as the backend that owns the dtype says."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return isinstance(x, float | complex)
    return registry().is_inexact(dt)


def dispatch_slow(prim, args: tuple, params: dict):
    """Resolve the backend and kernel of a call, cache it on the primitive, and run it.

    Arrays of the registry's default backend (NumPy arrays and scalars) are weak constants:
    next to an array of another backend they move to it, on its device (a 0-d one keeps its
    dtype, which torch's promotion treats like a Python number's). Two arrays of two other
    backends are an error. A call of Python numbers only runs on the default backend."""
    reg = registry()
    if reg.primitives.get(prim.name) is not prim:
        raise RegistryError(
            f"primitive {prim.name!r} is not in the active registry; the plugin that "
            f"declares it is not installed or registered (see `diffkit plugins`)"
        )
    args = list(args)
    backend = first = None
    weak = []  # positions of default-backend arrays: they follow a strong array
    for i, a in enumerate(args):
        if type(a) in SCALAR_TYPES:
            continue
        b = reg.backend_of(type(a))
        if b is None:
            args[i] = a = _coerce(reg, prim, i, a)
            b = reg.backend_of(type(a))
        if b.default:
            weak.append(i)
        elif backend is None:
            backend, first = b, a
        elif b is not backend:
            raise BackendMismatchError(
                f"{prim.name!r} got arguments on two backends: {backend.describe(first)} "
                f"and {b.describe(a)}; convert one with dk.asarray(x, backend=...)"
            )
    if backend is not None:
        for i in weak:
            args[i] = _move(prim, i, args[i], backend, first)
    elif weak:
        backend = reg.default_backend
    else:
        backend = _numbers_to_default(reg, args)
    kernel = reg.kernel(prim, backend.name)
    for a in args:
        if type(a) not in SCALAR_TYPES:
            prim.kernels[type(a)] = kernel
    try:
        return kernel(*args, **params)
    except Exception as e:
        better = kernel_failed(prim, args, e)
        if better is e:
            raise
        raise better from e


def _move(prim, position: int, value, backend, strong):
    """Weak constant `value` on the backend and device of the strong array `strong`."""
    try:
        return backend.asarray(value, device=getattr(strong, "device", None))
    except Exception as e:
        raise BackendMismatchError(
            f"argument {position} of {prim.name!r}, a {type(value).__name__} of dtype "
            f"{getattr(value, 'dtype', '?')}, cannot move to {backend.describe(strong)} "
            f"like the other arguments: {e}"
        ) from None


def default_backend(reg=None):
    """The backend and `Defaults` that creation and number-only calls use (`dk.default_backend`
    sets them; unset: the registry's default backend, NumPy)."""
    reg = registry() if reg is None else reg
    d = defaults.current()
    if d.backend is None:
        return reg.default_backend, d
    b = reg.backends.get(d.backend)
    if b is None:
        raise DiffkitError(
            f"the default backend {d.backend!r} (set by {d.source}) is not available; "
            f"available backends: {', '.join(reg.backends)}"
        )
    return b, d


def _numbers_to_default(reg, args: list):
    """The backend of a call of Python numbers only; with a default backend other than the
    registry's (NumPy's), the numbers become 0-d arrays of it (its kernels need arrays), and
    with a default dtype the floats become 0-d arrays of that dtype."""
    backend, d = default_backend(reg)
    if not backend.default or d.dtype is not None:
        for i, a in enumerate(args):
            if isinstance(a, float) or (a is not None and not backend.default):
                dtype = d.dtype if isinstance(a, float) else None
                args[i] = backend.asarray(a, dtype=dtype, device=d.device)
    return backend


def kernel_failed(prim, args, exc: Exception) -> BaseException:
    """The error to raise for a kernel that raised `exc`: the backend's explanation when
    it has one (tensors on two devices, ...), else `exc` itself."""
    reg = registry()
    for a in args:
        backend = reg.backend_of(type(a)) if type(a) not in SCALAR_TYPES else None
        if backend is not None:
            if backend.explain is None:
                return exc
            return backend.explain(prim.name, args, exc) or exc
    return exc


def _coerce(reg, prim, position: int, value):
    """Lists, tuples and foreign scalars become arrays of the default backend (a weak
    NumPy array, or one of the backend `dk.default_backend` set)."""
    backend, d = default_backend(reg)
    try:
        out = backend.asarray(value, device=d.device)
    except Exception as e:
        raise TypeError(
            f"argument {position} of {prim.name!r} is a {type(value).__name__}, which is "
            f"not an array of any diffkit backend ({', '.join(reg.backends)}): {e}"
        ) from None
    if out.dtype == object:
        raise TypeError(
            f"argument {position} of {prim.name!r} is a {type(value).__name__} that does "
            f"not convert to a numeric array: {value!r}"
        )
    if d.dtype is not None and str(out.dtype).endswith("float64"):  # Python floats
        out = backend.asarray(out, dtype=d.dtype)
    return out
