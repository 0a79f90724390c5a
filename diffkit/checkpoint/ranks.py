"""One checkpoint plan across ranks: what the executor and the loops agree on by a collective.

Under `diffkit.distributed` with more than one rank, every rank must run the same schedule,
so that a recomputation re-runs the same collectives in the same order everywhere. The plan
is made from the largest state, step tape and working set, and the smallest memory and disk
budget over the ranks (one all_reduce at planning time); a `while_loop`'s stopping decision
is compared across ranks (one all_reduce of two integers per step) and a disagreement is an
error; a disk tier gets one subdirectory per rank. With no process group these are no-ops.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

__all__ = ["communicator", "agree_plan", "agree_cond", "disk_path"]


def communicator():
    """The active communicator when more than one rank takes part, else None (cheap: it
    looks at diffkit.distributed only when it has been imported)."""
    mod = sys.modules.get("diffkit.distributed.comm")
    if mod is None:
        return None
    comm = mod.active()
    return comm if comm.world_size() > 1 else None


_MAX_TIERS = 8  # storage tiers below RAM whose sizes are agreed (a budget has one or two)


def agree_plan(state_bytes: int, tape: int, reverse: int, budget):
    """(state_bytes, tape, reverse, budget) agreed across ranks: the largest measurements and
    the smallest memory, disk and tier sizes of any rank (one all_reduce)."""
    comm = communicator()
    if comm is None:
        return state_bytes, tape, reverse, budget
    tiers = tuple(getattr(budget, "tiers", ()))
    disk = budget.disk.size if budget.disk is not None else 0
    sizes = [t.size for t in tiers[:_MAX_TIERS]]
    v = comm.all_reduce(np.array(
        [state_bytes, tape, reverse, -budget.memory, -disk, len(tiers), -len(tiers)]
        + [-x for x in sizes] + [0] * (_MAX_TIERS - len(sizes)), dtype=np.int64), "max")
    if v[5] != -v[6]:
        from diffkit.distributed.comm import DistributedError

        raise DistributedError(
            f"the ranks' budgets ({budget.source} here) list different numbers of storage "
            f"tiers ({-v[6]} to {v[5]}); give every rank the same tiers (sizes may differ)")
    agreed = {"memory": int(-v[3])}
    if budget.disk is not None:
        agreed["disk"] = dataclasses.replace(budget.disk, size=int(-v[4]))
    if tiers:
        agreed["tiers"] = tuple(dataclasses.replace(t, size=int(-v[7 + k]))
                                if k < _MAX_TIERS else t for k, t in enumerate(tiers))
    return int(v[0]), int(v[1]), int(v[2]), dataclasses.replace(budget, **agreed)


def agree_cond(value, i: int, name: str = "checkpoint.while_loop") -> bool:
    """`bool(value)`, checked equal on every rank: a while_loop whose ranks disagree on
    stopping would deadlock in its next collective. One all_reduce (a tree in NCCL/MPI:
    ~2 log2 P latencies), an all_gather only to name the ranks of a disagreement."""
    flag = bool(value)
    comm = communicator()
    if comm is None:
        return flag
    top = comm.all_reduce(np.array([flag, -flag], dtype=np.int64), "max")  # any, not all
    if top[0] != -top[1]:  # somebody disagrees: find out who, to say so
        from diffkit.distributed.comm import DistributedError

        flags = comm.all_gather(np.array([flag], dtype=np.int64), 0)
        on = [r for r, f in enumerate(flags) if f]
        off = [r for r, f in enumerate(flags) if not f]
        raise DistributedError(
            f"{name}: cond disagrees across ranks at step {i} (True on ranks {on}, False on "
            f"ranks {off}); every rank must stop at the same step, so compute cond from "
            f"values agreed by a collective (e.g. dkd.all_reduce(residual, 'max') < tol)")
    return flag


def disk_path(path):
    """The disk tier's directory for this rank: `path/rank<r>` under several ranks."""
    comm = communicator()
    if comm is None or path is None:
        return path
    return os.path.join(path, f"rank{comm.rank()}")
