"""Plugin loading with pluggy: builds the registry that `diffkit.core.dispatch` holds.

The default registry is built on first use from the `diffkit` entry-point group (where the
built-in NumPy and PyTorch backends and the core primitives are declared, exactly like a
third-party plugin). `register(obj)` adds a plugin at run time; `use_registry` swaps in a
registry built from a fresh PluginManager (what tests do).

An installed plugin that fails to import, fails pluggy's checks, or whose hook raises is left
out with one `PluginWarning` naming it (and listed by `diffkit plugins`); the rest work.
A plugin registered at run time is checked at once instead: any such failure is an error.
Plugins named in ``$DIFFKIT_DISABLE_PLUGINS`` (comma-separated) or under ``plugins: disable:``
in the user configuration file (`diffkit.config`) are not loaded.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import warnings
from collections.abc import Iterator

import pluggy

from diffkit import hookspecs
from diffkit.config import show, user_config, user_config_path
from diffkit.core import dispatch
from diffkit.core.registry import Registry
from diffkit.errors import RegistryError

__all__ = [
    "ENTRY_POINT_GROUP", "DISABLE_ENV", "REQUIRED", "PluginWarning", "make_plugin_manager",
    "plugin_manager", "registry", "register", "unregister", "use_registry", "broken_plugins",
    "disabled_plugins", "hookimpl",
]

ENTRY_POINT_GROUP = "diffkit"
DISABLE_ENV = "DIFFKIT_DISABLE_PLUGINS"
REQUIRED = ("core", "numpy")  # diffkit's own primitives and default backend

hookimpl = pluggy.HookimplMarker("diffkit")

_pm: pluggy.PluginManager | None = None
_broken: dict[str, str] = {}  # installed plugins left out, and why (what `diffkit plugins` shows)


class PluginWarning(UserWarning):
    """An installed plugin is broken and was left out; the others work."""


def make_plugin_manager(entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh PluginManager with diffkit's hookspecs, loading entry points if asked: each
    on its own, so that a broken one is left out (with a warning) and the rest load."""
    pm = pluggy.PluginManager("diffkit")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        disabled = disabled_plugins()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or ep.module in disabled or pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                _leave_out(ep.name, f"importing {ep.value} raised {type(exc).__name__}: {exc}")
                continue
            why = _add(pm, plugin, ep.name)
            if why:
                _leave_out(ep.name, why)
        if not pm.get_plugins():
            raise RegistryError(
                "no diffkit plugins were found in the 'diffkit' entry-point group; "
                "install diffkit (pip install -e . from a checkout) so that its core "
                "primitives and NumPy backend are registered"
            )
    pm.check_pending()
    return pm


def _add(pm: pluggy.PluginManager, plugin, name: str) -> str | None:
    """Register `plugin` and check its hooks against the specs: None, or what is wrong
    (the plugin is then not registered)."""
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # pluggy.PluginValidationError: a hook with a wrong signature
        return f"pluggy refused it: {' '.join(str(exc).split())}"
    try:
        pm.check_pending()
    except Exception as exc:  # a diffkit_* function that is no diffkit hook
        pm.unregister(plugin)
        return f"pluggy refused it: {' '.join(str(exc).split())}"
    return None


def _leave_out(name: str, why: str) -> None:
    """Record a broken installed plugin and warn, once per plugin and reason."""
    why = why[:300]
    if name in REQUIRED:
        raise RegistryError(f"diffkit's built-in plugin {name!r} is broken ({why}); diffkit "
                            "cannot work without it: reinstall diffkit")
    if _broken.get(name) != why:
        _broken[name] = why
        warnings.warn(f"diffkit plugin {name!r} is broken and was left out ({why}); the "
                      f"other plugins work. Fix or uninstall it, or disable it with "
                      f"{DISABLE_ENV}={name}", PluginWarning, stacklevel=4)


def broken_plugins() -> dict[str, str]:
    """The installed plugins left out because they are broken, with the reason of each."""
    return dict(_broken)


def disabled_plugins() -> frozenset[str]:
    """Plugin names disabled by ``$DIFFKIT_DISABLE_PLUGINS`` (comma-separated) and by the
    ``plugins: {disable: [...]}`` key of the user configuration file."""
    names = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    plugins = user_config(RegistryError).get("plugins", {})
    where = f"{user_config_path()}: plugins"
    if not isinstance(plugins, dict) or set(plugins) - {"disable"}:
        raise RegistryError(f"{where} = {show(plugins)} is not understood; write "
                            "'plugins: {disable: [name, ...]}'")
    listed = plugins.get("disable") or []
    if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
        raise RegistryError(f"{where}.disable = {show(listed)} is not a list of plugin names; "
                            "write e.g. 'disable: [stencil]'")
    names.update(listed)
    required = sorted(names & set(REQUIRED))
    if required:
        raise RegistryError(f"plugins {', '.join(required)} cannot be disabled ({DISABLE_ENV} "
                            f"or {where}.disable): diffkit needs its core primitives and "
                            "NumPy backend")
    return frozenset(names)


def registry() -> Registry:
    """The active registry (built from the entry points on first use)."""
    return dispatch.registry()


def _default_registry() -> Registry:
    """The registry of the installed plugins: what the core builds on first use."""
    global _pm
    if _pm is None:
        _pm = make_plugin_manager()
    return _build(_pm)


def _build(pm: pluggy.PluginManager) -> Registry:
    """A registry of `pm`'s plugins, without those whose diffkit_primitives or
    diffkit_backends hook raises (reported, unregistered, and the registry built again);
    a diffkit_kernels hook that raises later is reported and left out by the registry."""
    reg = Registry(pm, on_broken=_report)
    while reg.broken:
        for name in reg.broken:
            pm.unregister(name=name)
        reg = Registry(pm, on_broken=_report)
    return reg


def _report(name: str, hook: str, exc: Exception) -> None:
    """A diffkit_kernels hook raised while a backend's kernels were collected."""
    _leave_out(name, f"its {hook}() raised {type(exc).__name__}: {exc}")


def plugin_manager() -> pluggy.PluginManager:
    """The PluginManager behind the active registry (built on first use)."""
    registry()
    return _pm


def register(plugin, name: str | None = None) -> None:
    """Register a plugin object at run time and rebuild the active registry.

    Its hooks are called at once (its kernels for every backend in use), so that a plugin
    that raises is refused here with an error naming it, not accepted to break every call.
    """
    reg = registry()
    label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    if name in disabled_plugins():
        raise RegistryError(f"plugin {name!r} is disabled ({DISABLE_ENV} or the user "
                            "configuration file); enable it there to register it")
    why = _add(_pm, plugin, name)
    if why:
        raise RegistryError(f"plugin {label!r} was not registered: {why}")
    mine, checking = _pm.get_name(plugin), [True]

    def on_broken(name, hook, exc):  # the new plugin's failures are errors, below
        if not (checking[0] and name == mine):
            _report(name, hook, exc)

    try:
        new = Registry(_pm, on_broken=on_broken)
        for backend in ("numpy", *reg.collected):
            new.kernels(backend)
    except Exception:
        _pm.unregister(plugin)
        raise
    checking[0] = False
    if mine in new.broken:
        _pm.unregister(plugin)
        raise RegistryError(f"plugin {mine!r} was not registered: {new.broken[mine]}; "
                            "fix that hook of the plugin")
    dispatch.activate(new)


def unregister(plugin) -> None:
    """Remove a plugin registered with `register` and rebuild the active registry."""
    registry()
    _pm.unregister(plugin)
    dispatch.activate(_build(_pm))


@contextlib.contextmanager
def use_registry(reg: Registry) -> Iterator[Registry]:
    """Make `reg` the active registry inside the block (tests build one per case)."""
    previous = registry()
    dispatch.activate(reg)
    try:
        yield reg
    finally:
        dispatch.activate(previous)


dispatch.set_factory(_default_registry)
