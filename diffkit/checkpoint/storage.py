"""Storage tiers for snapshots of a loop's state: memory, and disk with checksums.

The memory tier keeps references: the loop hands its step read-only NumPy arrays, and
records torch tensors' version counters at save and checks them at load, so a snapshot that
was written into in place is an error rather than a wrong gradient. The disk tier writes
one `.npz` file per snapshot into a fresh directory under the budget's path, verifies a
SHA-256 checksum on every load, and removes the directory when the gradient is done, when
it fails, (through `weakref.finalize`) when it is abandoned, and on SIGTERM; a later run
in the same path removes those of killed processes (`cleanup`).
"""

from __future__ import annotations

import hashlib
import io
import os
import weakref

import numpy as np

from diffkit.checkpoint.cleanup import make_run_directory, release_run_directory
from diffkit.core import pytree
from diffkit.core.tracer import Tracer
from diffkit.errors import CheckpointStorageError, InternalError, TransformError

__all__ = ["Storage", "tree_nbytes"]


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


class Storage:
    """The snapshots of one gradient computation, by (tier, step)."""

    def __init__(self, disk_path: str | None = None):
        self.ram: dict[int, object] = {}
        self.versions: dict[int, list] = {}  # tensor version counters of the RAM snapshots
        self.disk: dict[int, tuple[str, str, object, list]] = {}
        self.disk_dir = None
        self._cleanup = None
        self.bytes_written = self.bytes_read = 0
        self.peak = {"ram": 0, "disk": 0}
        self._disk_path = disk_path

    # -- memory ----------------------------------------------------------------------
    def save(self, step: int, tier: str, state) -> None:
        if tier == "ram":
            self.ram[step] = state
            versions = [getattr(x, "_version", None) for x in pytree.leaves(state)]
            if any(v is not None for v in versions):  # torch tensors: check them at load
                self.versions[step] = versions
        elif tier == "disk":
            self._write(step, state)
        else:
            raise InternalError(f"unknown storage tier {tier!r}: a diffkit bug")
        held = len(self.ram) if tier == "ram" else len(self.disk)
        self.peak[tier] = max(self.peak[tier], held)

    def load(self, step: int, tier: str):
        if tier == "ram":
            state = self.ram[step]
            if step in self.versions:
                self._check_versions(step, state)
            return state
        return self._read(step)

    def discard(self, step: int, tier: str) -> None:
        if tier == "ram":
            del self.ram[step]
            self.versions.pop(step, None)
            return
        path = self.disk.pop(step)[0]
        os.remove(path)

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

    # -- disk ------------------------------------------------------------------------
    def _directory(self) -> str:
        if self.disk_dir is None:
            self.disk_dir = make_run_directory(str(self._disk_path))
            self._cleanup = weakref.finalize(self, release_run_directory, self.disk_dir)
        return self.disk_dir

    def _write(self, step: int, state) -> None:
        from diffkit.plugins import registry

        leaves, tree = pytree.flatten(state)
        if any(isinstance(x, Tracer) for x in leaves):
            raise InternalError("traced state reached the disk tier: a diffkit bug")
        reg = registry()
        backends = [reg.backend_of(type(x)) for x in leaves]
        arrays = {f"a{k}": (np.asarray(b.to_numpy(x)) if b is not None else np.asarray(x))
                  for k, (x, b) in enumerate(zip(leaves, backends, strict=True))}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        path = os.path.join(self._directory(), f"state_{step}.npz")
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except OSError as e:
            raise CheckpointStorageError(
                f"could not write snapshot of step {step} to {path}: {e.strerror or e}. "
                f"Free space there, or point budget.disk.path at a larger disk."
            ) from e
        kinds = [_kind(x, b) for x, b in zip(leaves, backends, strict=True)]
        self.disk[step] = (path, hashlib.sha256(data).hexdigest(), tree, kinds)
        self.bytes_written += len(data)

    def _read(self, step: int):
        path, digest, tree, kinds = self.disk[step]
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise CheckpointStorageError(f"could not read snapshot {path}: {e}") from e
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointStorageError(
                f"snapshot {path} is corrupted (its SHA-256 checksum changed since it was "
                f"written); the gradient cannot be trusted. Check the disk, or use a "
                f"memory-only budget."
            )
        self.bytes_read += len(data)
        with np.load(io.BytesIO(data)) as npz:
            leaves = [_restore(npz[f"a{k}"], kind) for k, kind in enumerate(kinds)]
        return pytree.unflatten(tree, leaves)

    def close(self) -> None:
        """Drop every snapshot and remove the disk directory (idempotent)."""
        self.ram.clear()
        self.versions.clear()
        self.disk.clear()
        if self._cleanup is not None:
            self._cleanup()


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
