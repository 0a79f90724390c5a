"""Plugin loading with pluggy, the active registry, and the slow path of dispatch.

The default registry is built on first use from the `diffkit` entry-point group (where the
built-in NumPy and PyTorch backends and the core primitives are declared, exactly like a
third-party plugin). `register(obj)` adds a plugin at run time; `use_registry` swaps in a
registry built from a fresh PluginManager (what tests do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pluggy

from diffkit import hookspecs
from diffkit.core.primitive import SCALAR_TYPES, Primitive
from diffkit.core.registry import Registry
from diffkit.errors import BackendMismatchError, RegistryError

__all__ = [
    "ENTRY_POINT_GROUP", "make_plugin_manager", "plugin_manager", "registry", "register",
    "unregister",
    "use_registry", "dispatch_slow", "kernel_failed",
]

ENTRY_POINT_GROUP = "diffkit"

_pm: pluggy.PluginManager | None = None
_active: Registry | None = None


def make_plugin_manager(entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh PluginManager with diffkit's hookspecs, loading entry points if asked."""
    pm = pluggy.PluginManager("diffkit")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        if not pm.get_plugins():
            raise RegistryError(
                "no diffkit plugins were found in the 'diffkit' entry-point group; "
                "install diffkit (pip install -e . from a checkout) so that its core "
                "primitives and NumPy backend are registered"
            )
    pm.check_pending()
    return pm


def registry() -> Registry:
    """The active registry (built from the entry points on first use)."""
    global _active, _pm
    if _active is None:
        if _pm is None:
            _pm = make_plugin_manager()
        _activate(Registry(_pm))
    return _active


def plugin_manager() -> pluggy.PluginManager:
    """The PluginManager behind the active registry (built on first use)."""
    registry()
    return _pm


def register(plugin, name: str | None = None) -> None:
    """Register a plugin object at run time and rebuild the active registry."""
    registry()
    _pm.register(plugin, name=name)
    _pm.check_pending()
    try:
        _activate(Registry(_pm))
    except Exception:
        _pm.unregister(plugin)
        raise


def unregister(plugin) -> None:
    """Remove a plugin registered with `register` and rebuild the active registry."""
    registry()
    _pm.unregister(plugin)
    _activate(Registry(_pm))


@contextlib.contextmanager
def use_registry(reg: Registry) -> Iterator[Registry]:
    """Make `reg` the active registry inside the block (tests build one per case)."""
    previous = registry()
    _activate(reg)
    try:
        yield reg
    finally:
        _activate(previous)


def _activate(reg: Registry) -> None:
    global _active
    if _active is not None:
        for p in _active.primitives.values():
            p.kernels = {}
    for p in reg.primitives.values():
        p.kernels = {}
    _active = reg


def dispatch_slow(prim: Primitive, args: tuple, params: dict):
    """Resolve the backend and kernel of a call, cache it on the primitive, and run it."""
    reg = registry()
    if reg.primitives.get(prim.name) is not prim:
        raise RegistryError(
            f"primitive {prim.name!r} is not in the active registry; the plugin that "
            f"declares it is not installed or registered (see `diffkit plugins`)"
        )
    args = list(args)
    backend = None
    first = None
    for i, a in enumerate(args):
        if type(a) in SCALAR_TYPES:
            continue
        b = reg.backend_of(type(a))
        if b is None:
            args[i] = a = _coerce(reg, prim, i, a)
            b = reg.backend_of(type(a))
        if backend is None:
            backend, first = b, a
        elif b is not backend:
            raise BackendMismatchError(
                f"{prim.name!r} got arguments on two backends: {backend.describe(first)} "
                f"and {b.describe(a)}; convert one with dk.asarray(x, backend=...)"
            )
    if backend is None:
        backend = reg.backends["numpy"]
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


def kernel_failed(prim: Primitive, args, exc: Exception) -> BaseException:
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


def _coerce(reg: Registry, prim: Primitive, position: int, value):
    """Lists, tuples and foreign scalars become arrays of the default (NumPy) backend."""
    try:
        out = reg.backends["numpy"].asarray(value)
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
    return out
