"""Storage tiers for snapshots of a loop's state: memory, and directories (disk) with checksums.

The memory tier keeps references: the loop hands its step read-only NumPy arrays, and records
torch tensors' version counters at save and checks them at load, so a snapshot that was
written into in place is an error rather than a wrong gradient. A tier below RAM (the budget's
disk, or any of its `tiers`) writes one file per snapshot -- its leaves as consecutive
``.npy`` records, written and read without a copy -- into a fresh directory under the tier's
path, verifies a CRC-32 checksum of the leaves and their shapes and dtypes on every load
(`Checksum`), and removes the directory when the gradient is done, when it fails, (through
`weakref.finalize`) when it is abandoned, and on SIGTERM; a later run in the same path removes
those of killed processes (`cleanup`). With `overlap`, writes and reads run in a background
thread (`writer.DiskIO`); with a tier's ``sync: true`` each file and its directory entry are
flushed to the device (``fsync``) before the write counts as done. A resumable run
(`resume.Run`) gives its own directories, kept unless the gradient succeeds, and is told of
every completed write and every discard.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import weakref
import zlib
from typing import NamedTuple

import numpy as np

from diffkit.checkpoint.cleanup import make_run_directory, release_run_directory
from diffkit.checkpoint.writer import DiskIO
from diffkit.core import pytree
from diffkit.core.tracer import Tracer
from diffkit.errors import CheckpointStorageError, InternalError, TransformError

__all__ = ["CHECKSUM", "Checksum", "Entry", "Storage", "synced_tiers", "tier_paths",
           "tree_nbytes"]


_LEAF_OVERHEAD = 192  # array header (112 B for NumPy) and its slot in a snapshot dict


def tree_nbytes(tree) -> int:
    """Bytes held by the array leaves of a pytree (tracers count their base array),
    including each array's Python object, which dominates for small states."""
    total = 0
    for leaf in pytree.leaves(tree):
        while isinstance(leaf, Tracer):
            leaf = leaf.primal
        total += int(getattr(leaf, "nbytes", 8)) + _LEAF_OVERHEAD
    return total


class Entry(NamedTuple):
    """A snapshot on file: where, its leaves' checksum ("crc32:<hex>"), how to rebuild it,
    (shape, dtype)s."""

    path: str
    digest: str
    tree: object
    kinds: list
    layout: tuple


class Storage:
    """The snapshots of one gradient computation, by (tier, step)."""

    def __init__(self, disk_path=None, *, tiers: dict | None = None, overlap: bool = False,
                 run=None, sync=()):
        self.ram: dict[int, object] = {}
        self.versions: dict[int, list] = {}  # tensor version counters of the RAM snapshots
        self.files: dict[tuple, Entry] = {}  # (tier, step) -> file, set when written
        self.saved: dict[str, set] = {}  # steps saved below RAM, by tier (the caller's view)
        self.bytes_written = self.bytes_read = 0
        self.peak = {"ram": 0, "disk": 0}
        self._paths = dict(tiers or {})
        if disk_path is not None:
            self._paths.setdefault("disk", disk_path)
        self._dirs: dict[str, str] = {}
        self._sync = frozenset(sync)  # tiers whose files are fsync-ed
        self._cleanups: list = []
        self._lock = threading.Lock()  # the byte counters, updated from the I/O thread
        self.io = DiskIO() if overlap and self._paths else None
        if self.io is not None:  # an abandoned storage stops its thread too
            self._cleanups.append(weakref.finalize(self, self.io.close))
        self.run = run

    # -- memory ----------------------------------------------------------------------
    def save(self, step: int, tier: str, state) -> None:
        if tier == "ram":
            self.ram[step] = state
            versions = [getattr(x, "_version", None) for x in pytree.leaves(state)]
            if any(v is not None for v in versions):  # torch tensors: check them at load
                self.versions[step] = versions
            held = len(self.ram)
        else:
            self._save_file((tier, step), state)
            held = len(self.saved[tier])
        self.peak[tier] = max(self.peak.get(tier, 0), held)

    def load(self, step: int, tier: str):
        if tier == "ram":
            state = self.ram[step]
            if step in self.versions:
                self._check_versions(step, state)
            return state
        key = (tier, step)
        if self.io is not None:
            ahead = self.io.take(key)
            if ahead is not None:
                return ahead[0]
            self.io.reap(self._written, key=key)
        return self._read(key)

    def discard(self, step: int, tier: str) -> None:
        if tier == "ram":
            del self.ram[step]
            self.versions.pop(step, None)
            return
        key = (tier, step)
        if self.io is not None:
            self.io.drop(key)
            self.io.reap(self._written, wait=self.run is not None, key=key)
        self.saved[tier].discard(step)
        if self.run is not None:
            self.run.discarding(key)
        os.remove(self.files.pop(key).path)

    def _check_versions(self, step: int, state) -> None:
        """A tensor whose version counter moved since the save was written into in place."""
        from diffkit.checkpoint.stepcheck import leaf_paths

        flat, tree = pytree.flatten(state)
        for k, (x, v) in enumerate(zip(flat, self.versions[step], strict=True)):
            if v is not None and x._version != v:
                raise TransformError(
                    f"checkpoint loop: the snapshot of state {step} was written into in place "
                    f"after it was saved ({leaf_paths(tree)[k]}): the step, or code holding "
                    f"that tensor, modified it. Return new tensors from the step."
                )

    # -- files -----------------------------------------------------------------------
    def directory(self, tier: str) -> str:
        """The run directory of `tier` (made on first use)."""
        if tier not in self._dirs:
            if tier not in self._paths:
                raise InternalError(f"unknown storage tier {tier!r}: a diffkit bug")
            if self.run is not None:
                self._dirs[tier] = self.run.directory(tier, self._paths[tier])
            else:
                path = make_run_directory(str(self._paths[tier]), on_signal=self._stopper())
                self._dirs[tier] = path
                self._cleanups.append(weakref.finalize(self, release_run_directory, path))
        return self._dirs[tier]

    def _stopper(self):
        """What SIGTERM calls before removing a directory: stop the I/O thread's writes."""
        io = self.io
        return None if io is None else io.close

    def _save_file(self, key, state) -> None:
        tier, step = key
        leaves = pytree.leaves(state)
        if any(isinstance(x, Tracer) for x in leaves):
            raise InternalError("traced state reached the disk tier: a diffkit bug")
        self.directory(tier)
        self.saved.setdefault(tier, set()).add(step)
        if self.io is None:
            self._write(key, state)
            self._written(key)
        else:
            self.io.write(key, lambda: self._write(key, state), self._written)

    def _written(self, key) -> None:
        if self.run is not None:
            self.run.written(key, self.files[key])

    def adopt(self, key, entry: Entry) -> None:
        """Take over a snapshot file of an earlier run (a resumed one)."""
        self.files[key] = entry
        self.saved.setdefault(key[0], set()).add(key[1])
        self.peak[key[0]] = max(self.peak.get(key[0], 0), len(self.saved[key[0]]))

    def _write(self, key, state) -> None:
        """Write a snapshot's file (in the I/O thread when overlapping)."""
        from diffkit.plugins import registry

        tier, step = key
        leaves, tree = pytree.flatten(state)
        reg = registry()
        backends = [reg.backend_of(type(x)) for x in leaves]
        arrays = [np.asarray(b.to_numpy(x)) if b is not None else np.asarray(x)
                  for x, b in zip(leaves, backends, strict=True)]
        path = os.path.join(self._dirs[tier], f"state_{step}.npy")
        digest = Checksum()
        try:
            with open(path, "wb") as fh:
                for k, a in enumerate(arrays):
                    if a.dtype.hasobject:
                        raise CheckpointStorageError(
                            f"leaf {k} of the state at step {step} is an object array, which "
                            f"the {tier} tier cannot store; use numeric arrays in the state")
                    np.lib.format.write_array(fh, a, allow_pickle=False)
                    digest.update(a)
                size = fh.tell()
                if tier in self._sync:
                    fh.flush()
                    os.fsync(fh.fileno())
            if tier in self._sync:
                _fsync_directory(self._dirs[tier])
        except OSError as e:
            raise CheckpointStorageError(
                f"could not write snapshot of step {step} to {path}: {e.strerror or e}. "
                f"Free space there, or point the budget's {tier} path at a larger disk."
            ) from e
        kinds = [_kind(x, b) for x, b in zip(leaves, backends, strict=True)]
        self.files[key] = Entry(path, digest.text(), tree, kinds,
                                tuple((a.shape, a.dtype.str) for a in arrays))
        with self._lock:
            self.bytes_written += size

    def prefetch(self, step: int, tier: str) -> None:
        """Start reading snapshot (tier, step) in the I/O thread (`writer.Lookahead`)."""
        self.io.prefetch((tier, step), lambda: self._read((tier, step)))

    def _read(self, key):
        entry = self.files[key]
        path = entry.path
        digest = Checksum(entry.digest.partition(":")[0])
        try:
            with open(path, "rb") as fh:
                arrays = [np.lib.format.read_array(fh, allow_pickle=False) for _ in entry.layout]
                size = fh.tell()
                trailing = fh.read(1)
        except OSError as e:
            raise CheckpointStorageError(f"could not read snapshot {path} (the state saved at "
                                         f"step {key[1]} in the {key[0]} tier): {e}") from e
        except ValueError:
            arrays, trailing = None, b""
        for a in arrays or ():
            digest.update(a)
        if (arrays is None or trailing or digest.text() != entry.digest
                or tuple((a.shape, a.dtype.str) for a in arrays) != entry.layout):
            raise self._corrupted(key, path, digest.name)
        with self._lock:
            self.bytes_read += size
        leaves = [_restore(a, kind) for a, kind in zip(arrays, entry.kinds, strict=True)]
        return pytree.unflatten(entry.tree, leaves)

    def _corrupted(self, key, path, checksum) -> CheckpointStorageError:
        what = (f"Check the disk; to start the run over, delete its directory (rm -r "
                f"{self.run.home})" if self.run is not None
                else "Check the disk, or use a memory-only budget")
        return CheckpointStorageError(
            f"snapshot {path} is corrupted: the state saved at step {key[1]} in the {key[0]} "
            f"tier no longer matches the {checksum} checksum, shapes and dtypes recorded when "
            f"it was written, so the gradient cannot be trusted. {what}."
        )

    def close(self, success: bool = False) -> None:
        """Drop every snapshot and remove the directories (idempotent). A resumable run's are
        kept unless `success`: its finished writes are recorded first."""
        if self.io is not None:
            if self.run is not None and not success:
                with contextlib.suppress(Exception):  # a failed write is not recorded
                    self.io.reap(self._written, wait=True)
            self.io.close()
        self.ram.clear()
        self.versions.clear()
        self.files.clear()
        if self.run is not None:
            self.run.close(success)
        for cleanup in self._cleanups:
            cleanup()


def _fsync_directory(path: str) -> None:
    """Make a new file's directory entry durable (a file fsync-ed alone may be unnamed after
    a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


CHECKSUM = "crc32"  # what new snapshot files are checked with; "sha256": resume journals v1


class Checksum:
    """A running checksum of a snapshot's leaves, as text "<algorithm>:<hex>".

    CRC-32 (zlib) by default: 7-8 ms per 16 MiB here against SHA-256's 11-12 ms (with this
    CPU's SHA instructions) and BLAKE2b's 18 ms, paid at every write and every verified read.
    It guards against accidental corruption -- torn or truncated writes, bad sectors, a file
    overwritten -- which it misses once in 4e9 at worst (never a burst of up to 32 bits or an
    odd number of flipped bits); a malicious edit could rewrite the journal's checksum too,
    so no hash would stop it. SHA-256 checks files that resume
    journals of version 1 recorded."""

    NAMES = {"crc32": "CRC-32", "sha256": "SHA-256"}

    def __init__(self, algorithm: str | None = None):
        algorithm = algorithm or CHECKSUM  # read at each call: a benchmark may set it
        if algorithm not in self.NAMES:
            raise CheckpointStorageError(
                f"unknown snapshot checksum {algorithm!r}: this diffkit checks "
                f"{' and '.join(self.NAMES)}; the snapshot was written by another version")
        self.algorithm, self.name = algorithm, self.NAMES[algorithm]
        self._crc, self._sha = 0, hashlib.sha256() if algorithm == "sha256" else None

    def update(self, a: np.ndarray) -> None:
        raw = _raw(a)
        if self._sha is not None:
            self._sha.update(raw)
        else:
            self._crc = zlib.crc32(raw, self._crc)

    def text(self) -> str:
        hexa = self._sha.hexdigest() if self._sha is not None else f"{self._crc:08x}"
        return f"{self.algorithm}:{hexa}"


def _raw(a: np.ndarray) -> np.ndarray:
    """An array's elements as bytes in C order (no copy when already C-contiguous)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _kind(leaf, backend) -> tuple:
    """What a leaf was, so that it can be rebuilt without keeping it in memory."""
    if backend is None:
        return ("scalar", type(leaf))
    if backend.name == "numpy":
        return ("numpy",)
    return ("backend", backend.name, leaf.dtype, getattr(leaf, "device", None))


def _restore(array: np.ndarray, kind: tuple):
    """A loaded array back as the kind of leaf it was (backend, dtype, device)."""
    if kind[0] == "numpy":
        return array
    if kind[0] == "scalar":
        return kind[1](array.item())
    from diffkit.plugins import registry

    _, name, dtype, device = kind
    return registry().backends[name].asarray(array, dtype=dtype, device=device)


def tier_paths(budget) -> dict:
    """The budget's tiers below RAM: name -> directory (this rank's, under several ranks)."""
    from diffkit.checkpoint import ranks

    tiers = getattr(budget, "tiers", ())
    paths = ({t.name: t.path for t in tiers} if tiers
             else {"disk": budget.disk.path} if budget.disk is not None else {})
    return {name: ranks.disk_path(path) for name, path in paths.items()}


def synced_tiers(budget) -> frozenset:
    """The names of the budget's tiers below RAM whose files are fsync-ed (``sync: true``)."""
    tiers = getattr(budget, "tiers", ())
    if tiers:
        return frozenset(t.name for t in tiers if getattr(t, "sync", False))
    disk = getattr(budget, "disk", None)
    return frozenset({"disk"} if getattr(disk, "sync", False) else ())
