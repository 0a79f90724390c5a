"""`diffkit.distributed` (dkd): differentiable collectives and halo exchange across ranks.

One SPMD program per process, launched by ``torchrun --nproc-per-node 4 script.py``::

    import numpy as np, diffkit as dk, diffkit.distributed as dkd
    dkd.init()                     # joins torchrun's group; one rank alone without torchrun
    x = np.arange(3.0) + dkd.rank()
    g = dk.grad(lambda x: (dkd.all_reduce(x) ** 2).sum())(x)  # the VJP is an all_reduce too

Collectives are primitives (distributed/primitives.py) whose JVP and VJP rules are
collectives too, so they work under every transform and any order of differentiation, on
NumPy arrays (sent as zero-copy tensors) and torch tensors. Every rank must make the same
dkd calls in the same order, with the same shapes, under the same transforms; a mismatch
or a dead rank ends in a `DistributedError` within the timeout, not a hang.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta

from diffkit.distributed import primitives as _p
from diffkit.distributed.comm import Communicator, DistributedError, active, set_active

__all__ = ["init", "shutdown", "alone", "rank", "world_size", "barrier", "all_reduce",
           "all_gather", "reduce_scatter", "broadcast", "halo_exchange", "shift", "communicator",
           "DistributedError", "Communicator", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 300.0
_OPS = ("sum", "mean", "max", "min")


def init(backend: str | None = None, *, communicator: str = "torch",
         timeout_s: float = DEFAULT_TIMEOUT_S) -> Communicator:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT); gloo unless CUDA is present (then NCCL) or `backend` says.
    An already initialized torch.distributed group is adopted as is; without torchrun's
    environment this process is one rank alone. `timeout_s` bounds every collective."""
    current = active()
    if current.name == communicator and current.world_size() > 1:
        return current  # already joined: a second init changes nothing
    if communicator == "torch" and "WORLD_SIZE" in os.environ:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            if backend is None:
                backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    elif communicator == "torch":
        set_active(None)
        return active()
    comm = _factories(communicator)(timeout_s=timeout_s)
    set_active(comm)
    return comm


def _factories(name: str):
    """The communicator factory called `name`, from every plugin's diffkit_communicators."""
    from diffkit.plugins import plugin_manager

    found: dict[str, tuple] = {}
    for impl in plugin_manager().hook.diffkit_communicators.get_hookimpls():
        for key, factory in (impl.function() or {}).items():
            if key in found:
                raise DistributedError(f"communicator {key!r} is provided by two plugins, "
                                       f"{found[key][0]!r} and {impl.plugin_name!r}")
            found[key] = (impl.plugin_name, factory)
    if name not in found:
        raise DistributedError(f"dkd.init: no communicator {name!r}; installed plugins "
                               f"provide {sorted(found)}")
    return found[name][1]


def shutdown() -> None:
    """Leave the process group (every rank calls it): stops the heartbeat, then
    torch.distributed's destroy_process_group."""
    import sys

    comm = active()
    if hasattr(comm, "close"):
        comm.close()
    set_active(None)
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside the block this process computes by itself (a check, a reference run on one
    rank): collectives are the identity and checkpointed loops plan without asking the
    other ranks, who are not taking part."""
    from diffkit.distributed.comm import Local

    previous = active()
    set_active(Local())
    try:
        yield
    finally:
        set_active(previous)


def communicator() -> Communicator:
    """The communicator in use (`Local` when this process is one rank alone)."""
    return active()


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1."""
    return active().rank()


def world_size() -> int:
    """How many ranks take part (1 without a process group)."""
    return active().world_size()


def barrier() -> None:
    """Wait until every rank gets here."""
    active().barrier()


# -- differentiable collectives -------------------------------------------------------------
def _array(x, what: str):
    if not hasattr(x, "shape"):
        from diffkit import numpy as dnp

        x = dnp.asarray(x)
    return x


def _axis(x, axis: int, what: str) -> int:
    nd = len(x.shape)
    if not -nd <= axis < max(nd, 1):
        raise DistributedError(f"dkd.{what}: axis {axis} is out of bounds for an array of "
                               f"shape {tuple(x.shape)}")
    return axis % nd


def _rank_arg(r: int, what: str, name: str) -> int:
    n = world_size()
    if not isinstance(r, int) or not 0 <= r < n:
        raise DistributedError(f"dkd.{what}: {name}={r!r} is not a rank of this group "
                               f"(0 .. {n - 1})")
    return r


def all_reduce(x, op: str = "sum"):
    """The elementwise sum, mean, max or min of x over the ranks, on every rank. The
    derivative of max/min goes to the ranks holding the extreme, split equally on ties."""
    x = _array(x, "all_reduce")
    if op not in _OPS:
        raise DistributedError(f"dkd.all_reduce: op={op!r} is not one of {', '.join(_OPS)}")
    if op in ("sum", "mean"):
        return _p.psum.bind(x, mean=op == "mean")
    return _p.pmax.bind(x, op=op)


def all_gather(x, axis: int = 0):
    """Every rank's x (all of one shape) concatenated along `axis`, in rank order."""
    x = _array(x, "all_gather")
    return _p.all_gather.bind(x, axis=_axis(x, axis, "all_gather"))


def reduce_scatter(x, axis: int = 0):
    """Block `rank()` (along `axis`) of the sum of x over the ranks; x.shape[axis] must be
    a multiple of world_size()."""
    x = _array(x, "reduce_scatter")
    axis = _axis(x, axis, "reduce_scatter")
    n = world_size()
    if x.shape[axis] % n:
        raise DistributedError(f"dkd.reduce_scatter: x.shape[{axis}] = {x.shape[axis]} does "
                               f"not split into {n} equal blocks (one per rank); pad it to a "
                               f"multiple of {n}")
    return _p.reduce_scatter.bind(x, axis=axis)


def broadcast(x, src: int = 0):
    """Rank src's x on every rank (x must have the same shape everywhere)."""
    return _p.broadcast.bind(_array(x, "broadcast"), src=_rank_arg(src, "broadcast", "src"))


def halo_exchange(u, width: int = 1, axis: int = 0, periodic: bool = True):
    """u extended along `axis` by `width` ghost cells per side: on the left the last `width`
    cells of rank - 1's block, on the right the first `width` of rank + 1's (wrapping
    around when `periodic`, zeros at the global ends otherwise). Its VJP sends the ghosts'
    cotangents back and adds them to their owners' cells (the transposed exchange). Both
    directions travel at once: one message latency per exchange, not two."""
    from diffkit import numpy as dnp

    u = _array(u, "halo_exchange")
    axis = _axis(u, axis, "halo_exchange")
    if not isinstance(width, int) or not 0 <= width <= u.shape[axis]:
        raise DistributedError(f"dkd.halo_exchange: width={width!r} must be an int from 0 to "
                               f"the block's length along axis {axis}, {u.shape[axis]} "
                               f"(u has shape {tuple(u.shape)})")
    if width == 0:
        return u
    head = (slice(None),) * axis
    left, right = _p.exchange.bind(u[head + (slice(0, width),)],  # to rank - 1: its right
                                   u[head + (slice(-width, None),)],  # to rank + 1: its left
                                   periodic=bool(periodic))
    return dnp.concatenate([left, u, right], axis=axis)


def shift(x, offset: int = 1, periodic: bool = True):
    """x of rank - offset on every rank (each sends its x to rank + offset); zeros where
    that rank is off a non-periodic end. Its VJP is the shift back."""
    if not isinstance(offset, int):
        raise DistributedError(f"dkd.shift: offset={offset!r} must be an int (ranks to move)")
    return _p.shift.bind(_array(x, "shift"), offset=offset, periodic=bool(periodic))
