"""Memory budgets written in YAML, loaded into a frozen ``Budget``.

A budget is named by a preset (``"laptop"``: a file of ``configs/``, installed with the package
as ``diffkit/configs``; :func:`presets` lists them), a size (``"512MiB"``: a memory-only budget),
a YAML file path, or a parsed dict. The format (``configs/default.yaml`` is this module's
``DEFAULT_YAML``, the budget used when none is given)::

    budget:
      memory: 256MiB                              # RAM for snapshots + one step's tape
      disk: {path: /tmp/diffkit, size: 20GiB}     # optional second tier (overlap: false
                                                  # runs its I/O in the caller's thread;
                                                  # sync: true fsyncs each snapshot file)
    schedule: auto      # auto | store_all | periodic | revolve | mixed | online | multilevel
    costs: {forward: 1.0, reverse: 2.0, disk_write: 0.5, disk_read: 0.5}

Instead of ``disk``, ``budget.tiers`` lists any number of tiers below RAM, fastest first, each
a directory with a size and its own costs (``write``/``read`` default to ``costs.disk_write``/
``disk_read``); ``disk: {path, size}`` is the one-tier list ``[{name: disk, ...}]``.
``sync: true`` (on ``disk`` or a tier) flushes each snapshot file to the device (``fsync``)
before it counts as written: durable checkpoints for a resumable run that may outlive its
node::

    budget:
      memory: 8GiB
      tiers:
        - {name: host, path: /dev/shm/diffkit, size: 64GiB, write: 0.1, read: 0.1}
        - {name: disk, path: $SCRATCH/diffkit, size: 2TiB, write: 4.0, read: 0.5}

Sizes are bytes: a plain integer, or a number with a unit -- decimal ``kB MB GB TB`` (powers of
1000) or binary ``KiB MiB GiB TiB`` (powers of 1024); :func:`parse_bytes` is the one place
that reads them. Costs are relative to one untaped forward step: ``reverse`` is the VJP of one
step, ``disk_write``/``disk_read`` the time to write/read one state. Every bad value is a
``BudgetError`` naming the file, the key, the value and what is accepted.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from diffkit.config import read_yaml, show
from diffkit.errors import BudgetError

__all__ = ["Budget", "Costs", "Disk", "StorageTier", "SCHEDULES", "DEFAULT_YAML", "load_budget",
           "parse_bytes", "presets", "PRESET_DIR"]

SCHEDULES = ("auto", "store_all", "periodic", "revolve", "online", "multilevel", "mixed")

DEFAULT_YAML = """\
# The budget diffkit uses when none is given (also embedded in diffkit/checkpoint/budget.py).
budget:
  memory: 256MiB      # RAM for saved states plus the tape of the one step being reversed
schedule: auto        # auto | store_all | periodic | revolve | mixed | online | multilevel
costs:                # relative to one untaped forward step
  forward: 1.0        # one forward step
  reverse: 2.0        # the VJP of one step, given its tape
  disk_write: 0.5     # writing one state to the disk tier
  disk_read: 0.5      # reading one state back
"""

_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")
_ACCEPTED_SIZE = "a byte count such as 1048576, or a number with a unit: " + ", ".join(_UNITS)


def parse_bytes(value: object, where: str = "size") -> int:
    """Bytes from an int or a string with a unit: ``'1.5GiB'`` -> 1610612736.

    ``where`` names the value in the error (the budget loader passes file and key).

    >>> parse_bytes("256MiB"), parse_bytes("2GB"), parse_bytes(4096)
    (268435456, 2000000000, 4096)
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BudgetError(f"{where}: {show(value)} is not a size; use {_ACCEPTED_SIZE}")
    if isinstance(value, int):
        if value < 0:
            raise BudgetError(f"{where}: {show(value)} is negative; sizes are >= 0 bytes")
        return value
    match = _SIZE.fullmatch(value)
    if value.strip().startswith("-"):
        raise BudgetError(f"{where}: {show(value)} is negative; sizes are >= 0 bytes")
    if match is None or match.group(2) not in ("", *_UNITS):
        raise BudgetError(f"{where}: cannot parse {show(value)}; use {_ACCEPTED_SIZE}")
    number, unit = match.group(1), match.group(2) or "B"
    if unit == "B" and not number.isdigit():
        raise BudgetError(f"{where}: {show(value)} is not a whole number of bytes (a number "
                          f"without a unit counts bytes); write the unit, e.g. "
                          f"'{number[:20]}GiB' or '{number[:20]}MB'")
    size = float(number) * _UNITS[unit]
    if not math.isfinite(size):
        raise BudgetError(f"{where}: {show(value)} is too large; use {_ACCEPTED_SIZE}")
    return int(size)


@dataclass(frozen=True, slots=True)
class Disk:
    """The optional disk tier: a writable directory and how many bytes it may hold."""

    path: Path
    size: int
    overlap: bool = True  # writes in a background thread, loads read ahead (writer.py)
    sync: bool = False  # each snapshot file fsync-ed before it counts as written (storage.py)


@dataclass(frozen=True, slots=True)
class StorageTier:
    """A tier below RAM: its name (as in ``Save(step, name)``), directory, bytes, and the
    time to write and to read one state (relative to one forward step)."""

    name: str
    path: Path
    size: int
    write: float
    read: float
    sync: bool = False  # each snapshot file fsync-ed before it counts as written


@dataclass(frozen=True, slots=True)
class Costs:
    """Times relative to one untaped forward step (see the module docstring)."""

    forward: float = 1.0
    reverse: float = 2.0
    disk_write: float = 0.5
    disk_read: float = 0.5


@dataclass(frozen=True, slots=True)
class Budget:
    """A validated budget: RAM bytes, optional disk tier, schedule choice and step costs.

    ``tiers`` lists every tier below RAM, fastest first (``disk`` alone is the one-tier list
    named ``"disk"``); ``disk`` is the tier named ``"disk"``, if any.
    """

    memory: int
    disk: Disk | None = None
    schedule: str = "auto"
    costs: Costs = field(default_factory=Costs)
    source: str = "<default>"
    tiers: tuple[StorageTier, ...] = ()


_KEYS = {"": ("budget", "schedule", "costs"), "budget": ("memory", "disk", "tiers"),
         "budget.disk": ("path", "size", "overlap", "sync"),
         "costs": tuple(Costs.__dataclass_fields__),
         "budget.tiers[]": ("name", "path", "size", "write", "read", "sync")}
_TIER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def load_budget(spec: str | int | os.PathLike | dict | None = None) -> Budget:
    """Load a budget from a preset name, a size (bytes of memory, all else default), a YAML
    file path, an already parsed dict, or ``None`` (the default).

    >>> load_budget().memory
    268435456
    >>> load_budget("laptop").memory, load_budget("512MiB").memory
    (2147483648, 536870912)
    >>> load_budget({"budget": {"memory": "1GiB"}, "schedule": "revolve"}).schedule
    'revolve'
    """
    if spec is None:
        return _from_dict(yaml.safe_load(DEFAULT_YAML), "<default>")
    if isinstance(spec, dict):
        return _from_dict(spec, "<dict>")
    if isinstance(spec, int) and not isinstance(spec, bool):
        return Budget(parse_bytes(spec, "budget"), source=f"{spec} bytes (memory only)")
    if isinstance(spec, str) and spec in presets():
        path = presets()[spec]
        return _from_dict(read_yaml(path, BudgetError, "budget file"), f"{spec} ({path})")
    if isinstance(spec, str) and _looks_like_size(spec):
        return Budget(parse_bytes(spec, "budget"), source=f"{spec.strip()} (memory only)")
    if isinstance(spec, str) and _bare_word(spec) and not Path(spec).exists():
        raise BudgetError(f"budget {show(spec)} is not a preset; presets: "
                          f"{', '.join(presets())} (`diffkit budgets` shows them). A budget "
                          "can also be a YAML file path or a memory size such as '512MiB'")
    if not isinstance(spec, (str, os.PathLike)):
        raise BudgetError(f"budget {show(spec)} is not a budget; give a preset name "
                          f"({', '.join(presets())}), a size such as '512MiB', a YAML file "
                          "path, a dict, or a Budget")
    return _from_dict(read_yaml(spec, BudgetError, "budget file"), str(spec))


def presets() -> dict[str, Path]:
    """The installed budget presets: name -> YAML file, sorted by name (``configs/*.yaml``)."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def _preset_dir() -> Path:
    """``diffkit/configs`` in an installed package, else the source tree's ``configs/`` (an
    editable install or a checkout on ``PYTHONPATH``)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


PRESET_DIR = _preset_dir()  # where `presets` looks


def _looks_like_size(text: str) -> bool:
    """A number first and no file suffix or directory: ``'512MiB'``, ``'1.5 GB'``, ``'4096'``."""
    return bool(re.match(r"\s*[\d.]", text)) and _bare_word(text)


def _bare_word(text: str) -> bool:
    """No directory part and no ``.yaml``/``.yml`` suffix: meant as a name, not a path."""
    return (os.sep not in text and "/" not in text
            and not text.lower().endswith((".yaml", ".yml")))


def _section(data: object, key: str, source: str) -> dict[str, Any]:
    """Check ``data`` is a mapping with only the keys allowed at ``key``."""
    name = key or "the top level"
    if not isinstance(data, dict):
        raise BudgetError(f"{source}: {name} must be a mapping with keys "
                          f"{', '.join(_KEYS[key])}, got {show(data)}")
    for k in data:
        if k not in _KEYS[key]:
            full = f"{key}.{k}" if key else k
            raise BudgetError(f"{source}: unknown key {show(full)} (value {show(data[k])}); "
                              f"accepted keys here: {', '.join(_KEYS[key])}")
    return data


def _from_dict(data: object, source: str) -> Budget:
    top = _section(data if data is not None else {}, "", source)
    section = _section(top.get("budget", {}), "budget", source)
    if "memory" not in section:
        raise BudgetError(f"{source}: budget.memory is missing; give it, e.g. memory: 256MiB")
    memory = parse_bytes(section["memory"], f"{source}: budget.memory")
    disk = _disk(section.get("disk"), source)
    costs = _costs(top.get("costs", {}), source)
    if disk is not None and "tiers" in section:
        raise BudgetError(f"{source}: give budget.disk or budget.tiers, not both (disk is the "
                          "tier list [{name: disk, path: ..., size: ...}])")
    if disk is not None:
        tiers = (StorageTier("disk", disk.path, disk.size, costs.disk_write, costs.disk_read,
                             disk.sync),)
    else:
        tiers = _tiers(section.get("tiers", []), costs, source)
        disk = next((Disk(t.path, t.size, sync=t.sync) for t in tiers if t.name == "disk"), None)
    schedule = top.get("schedule", "auto")
    if schedule not in SCHEDULES:
        raise BudgetError(f"{source}: schedule {show(schedule)} is unknown; accepted: "
                          f"{', '.join(SCHEDULES)}")
    if schedule == "multilevel" and not tiers:
        raise BudgetError(f"{source}: schedule 'multilevel' needs budget.disk "
                          "({path: ..., size: ...}) or budget.tiers for its second tier")
    return Budget(memory, disk, schedule, costs, source, tiers)


def _tiers(data: object, costs: Costs, source: str) -> tuple[StorageTier, ...]:
    """``budget.tiers``: a list of mappings, each a named directory with a size and costs."""
    if not isinstance(data, list):
        raise BudgetError(f"{source}: budget.tiers must be a list of tiers ({{name, path, size, "
                          f"write, read}}, fastest first), got {show(data)}")
    out: list[StorageTier] = []
    for i, item in enumerate(data):
        key = f"budget.tiers[{i}]"
        if not isinstance(item, dict):
            raise BudgetError(f"{source}: {key} must be a mapping with keys "
                              f"{', '.join(_KEYS['budget.tiers[]'])}, got {show(item)}")
        for k in item:
            if k not in _KEYS["budget.tiers[]"]:
                raise BudgetError(f"{source}: unknown key {show(f'{key}.{k}')} (value "
                                  f"{show(item[k])}); accepted keys here: "
                                  f"{', '.join(_KEYS['budget.tiers[]'])}")
        for k in ("name", "path", "size"):
            if k not in item:
                raise BudgetError(f"{source}: {key}.{k} is missing; a tier needs name, path "
                                  "and size")
        name = item["name"]
        if not isinstance(name, str) or not _TIER_NAME.fullmatch(name) or name == "ram" \
                or name in (t.name for t in out):
            raise BudgetError(f"{source}: {key}.name = {show(name)} is not a tier name; use a "
                              "lowercase identifier (a-z, 0-9, _), unique, not 'ram'")
        size = parse_bytes(item["size"], f"{source}: {key}.size")
        path = _writable(_disk_path(item["path"], source, f"{key}.path"), source, f"{key}.path")
        write, read = (_cost(item.get(k, default), f"{key}.{k}", source)
                       for k, default in (("write", costs.disk_write), ("read", costs.disk_read)))
        sync = _flag(item.get("sync", False), f"{key}.sync", source, _SYNC)
        out.append(StorageTier(name, path, size, write, read, sync))
    return tuple(out)


def _disk(data: object, source: str) -> Disk | None:
    if data is None:
        return None
    section = _section(data, "budget.disk", source)
    for k in ("path", "size"):
        if k not in section:
            raise BudgetError(f"{source}: budget.disk.{k} is missing; a disk tier needs "
                              "both path and size")
    size = parse_bytes(section["size"], f"{source}: budget.disk.size")
    path = _writable(_disk_path(section["path"], source), source, "budget.disk.path")
    overlap = _flag(section.get("overlap", True), "budget.disk.overlap", source,
                    "false: disk writes and reads in the caller's thread")
    sync = _flag(section.get("sync", False), "budget.disk.sync", source, _SYNC)
    return Disk(path, size, overlap, sync)


_SYNC = "true: each snapshot file flushed to the device (fsync) before it counts as written"


def _flag(value: object, key: str, source: str, meaning: str) -> bool:
    if not isinstance(value, bool):
        raise BudgetError(f"{source}: {key} = {show(value)} is not true or false ({meaning})")
    return value


def _writable(path: Path, source: str, key: str) -> Path:
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not (existing.is_dir() and _can_write(existing)):
        raise BudgetError(f"{source}: {key} {show(str(path))} is not writable "
                          f"({show(str(existing))} is not a writable directory); give a "
                          "directory you can write, e.g. under the system temp dir")
    return path


def _disk_path(value: object, source: str, key: str = "budget.disk.path") -> Path:
    """The disk tier's directory, with ``~`` and ``$VARIABLES`` expanded. An empty path, or
    one naming an unset variable, would silently become a directory under the working
    directory (``$SCRATCH/x`` with SCRATCH unset is ``./$SCRATCH/x``): both are errors."""
    where = f"{source}: {key} = {show(value)}"
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise BudgetError(f"{where} is not a directory; give one, e.g. /tmp/diffkit or "
                          "$TMPDIR/diffkit")
    text = os.path.expanduser(str(value))
    if text.startswith("~"):
        raise BudgetError(f"{where}: {show(text.split('/')[0])} is not a known user's home")
    expanded = os.path.expandvars(text)
    unset = _VARIABLE.search(expanded)
    if unset is not None:
        name = unset.group(1) or unset.group(2)
        raise BudgetError(f"{where} uses the environment variable {name}, which is not set; "
                          f"set it, or write the directory out")
    return Path(expanded)


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _can_write(directory: Path) -> bool:
    """Try it: `os.access` says yes to root everywhere, even in /proc."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".diffkit-probe-", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.remove(probe)
    return True


def _costs(data: object, source: str) -> Costs:
    section = _section(data, "costs", source)
    values = {k: _cost(v, f"costs.{k}", source) for k, v in section.items()}
    if values.get("forward", 1.0) <= 0:
        raise BudgetError(f"{source}: costs.forward = {values['forward']!r} must be > 0: "
                          "all costs are relative to it")
    return Costs(**values)


def _cost(v: object, key: str, source: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
        raise BudgetError(f"{source}: {key} = {show(v)} is not a cost; use a number >= 0 "
                          "and finite (relative to one forward step)")
    return float(v)
