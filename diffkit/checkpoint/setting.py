"""A process-wide mode ('auto', True or False) that a call sets, or a `with` block sets for
the block: `compile_steps` and `fuse_steps` are two."""

from __future__ import annotations

from diffkit.errors import TransformError

__all__ = ["ModeSetting", "mode_of"]

_WORDS = {"auto": "auto", "1": True, "true": True, "on": True, "0": False, "false": False,
          "off": False}


def mode_of(value, where: str, what: str):
    """'auto', True or False from a value or an environment word ('on', '0', ...)."""
    if isinstance(value, str) and value.lower() in _WORDS:
        return _WORDS[value.lower()]
    if value is True or value is False or value == "auto":
        return value
    raise TransformError(f"{where}: {what} must be 'auto', True or False, got {value!r}")


class ModeSetting:
    """Subclasses give `_default` (a one-item list: the current mode) and `_parse(mode,
    where)`; constructing one sets the mode, and leaving its `with` block puts it back."""

    _default: list
    _parse = staticmethod(lambda mode, where: mode)

    def __init__(self, mode):
        self._previous = self._default[0]
        self._default[0] = self._parse(mode, type(self).__name__)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._default[0] = self._previous
