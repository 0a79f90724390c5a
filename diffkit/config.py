"""Reading diffkit's YAML files safely, and the user configuration file.

Budget files and the user configuration are small hand-written YAML. `read_yaml` reads one
defensively: a bounded size, UTF-8 text, no aliases (a 300-byte file of nested aliases
expands to gigabytes), bounded nesting; `show` caps every value echoed in an error message.

The user configuration is the YAML file named by ``$DIFFKIT_CONFIG``, else
``$XDG_CONFIG_HOME/diffkit/config.yaml`` (``~/.config/diffkit/config.yaml``) when it exists::

    plugins:
      disable: [stencil, my_plugin]   # plugins diffkit does not load (by entry-point name)
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path

import yaml

from diffkit.errors import DiffkitError

__all__ = ["MAX_YAML_BYTES", "read_yaml", "show", "user_config_path", "user_config"]

MAX_YAML_BYTES = 1 << 20  # budgets and configs are a few hundred bytes
_SHOWN = 80  # characters of a value echoed in an error message


def show(value: object, limit: int = _SHOWN) -> str:
    """``repr(value)`` cut to `limit` characters with an ellipsis: an error message stays short
    whatever a file holds. Containers are abbreviated while they are formatted
    (`reprlib`), so a huge value costs no more than a small one."""
    text = repr(value[: limit + 1]) if isinstance(value, (str, bytes)) else _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxother, _REPR.maxstring, _REPR.maxlong = 3, _SHOWN, _SHOWN, _SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses aliases (``*name``) instead of expanding them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasFound(event.anchor, event.start_mark)
        return super().compose_node(parent, index)


class _AliasFound(Exception):
    def __init__(self, anchor, mark):
        super().__init__(anchor)
        self.anchor, self.mark = anchor, mark


def read_yaml(path: str | os.PathLike, error: type[DiffkitError], what: str) -> object:
    """The data of the YAML file `path`, or `error` saying what is wrong with the file
    (unreadable, too large, not UTF-8 text, not YAML, aliases, nested too deeply).
    `what` names the file's role in messages ("budget file")."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error(f"{source}: cannot read the {what} ({exc.strerror or exc})") from exc
    if len(raw) > MAX_YAML_BYTES:
        raise error(f"{source}: the {what} is larger than {MAX_YAML_BYTES} bytes; a {what} "
                    "is a few lines of YAML. Is this the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{source}: the {what} is not UTF-8 text (byte {exc.start} is "
                    f"{show(raw[exc.start:exc.start + 1])}); give a YAML text file") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except _AliasFound as exc:
        raise error(f"{source}: line {exc.mark.line + 1}: YAML aliases (*{exc.anchor[:40]}) "
                    f"are not accepted in a {what}; write the value out") from None
    except RecursionError:
        raise error(f"{source}: the {what} is nested too deeply; a {what} has at most "
                    "three levels of keys") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {show(str(exc), 400)}") from exc


def user_config_path() -> Path | None:
    """The user configuration file: ``$DIFFKIT_CONFIG`` if set, else the XDG default when it
    exists, else None."""
    named = os.environ.get("DIFFKIT_CONFIG")
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    default = Path(base) / "diffkit" / "config.yaml"
    return default if default.is_file() else None


def user_config(error: type[DiffkitError]) -> dict:
    """The user configuration as a dict ({} when there is none); `error` for a bad file."""
    path = user_config_path()
    if path is None:
        return {}
    data = read_yaml(path, error, "diffkit configuration file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: the top level must be a mapping such as "
                    f"'plugins: {{disable: [name]}}', got {show(data)}")
    return data
