"""The default backend: where arrays go when nothing else says (`dk.default_backend`).

Creation functions with no array to imitate, lists and Python-number-only calls use it.
The state is read from ``$DIFFKIT_DEFAULT_BACKEND`` / ``_DEVICE`` / ``_DTYPE`` (or a loader
installed from above, reading the user configuration) on first use. `backend=None` means
the registry's default backend (NumPy); `dtype=None` means NumPy's defaults (float64).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Defaults", "current", "replace", "set_loader", "ENV"]

ENV = {"backend": "DIFFKIT_DEFAULT_BACKEND", "device": "DIFFKIT_DEFAULT_DEVICE",
       "dtype": "DIFFKIT_DEFAULT_DTYPE"}


@dataclass(frozen=True)
class Defaults:
    """Where creation puts arrays: a backend name, a device and a float dtype (None: the
    registry's default backend, its default device, NumPy's float64). `source` names where
    the setting came from, for error messages."""

    backend: str | None = None
    device: object = None
    dtype: object = None
    source: str = "the built-in default"


_state: Defaults | None = None
_loader: Callable[[], dict] | None = None  # the user configuration's `defaults:` mapping


def set_loader(loader: Callable[[], dict]) -> None:
    """Install what reads the configured defaults (the namespace layer reads the YAML)."""
    global _loader
    _loader = loader


def current() -> Defaults:
    """The defaults in force (read from the environment / configuration on first use)."""
    global _state
    if _state is None:
        _state = _initial()
    return _state


def replace(new: Defaults | None) -> Defaults:
    """Set the defaults (None: read them again from the environment); returns the old ones."""
    global _state
    old = current()
    _state = new
    return old


def _initial() -> Defaults:
    env = {k: os.environ.get(v) or None for k, v in ENV.items()}
    if any(env.values()):
        names = ", ".join(f"${ENV[k]}" for k, v in env.items() if v)
        return Defaults(**env, source=names)
    conf = _loader() if _loader is not None else {}
    if conf:
        return Defaults(**{k: conf.get(k) for k in ENV}, source="the user configuration "
                        "file's 'defaults:' mapping")
    return Defaults()
