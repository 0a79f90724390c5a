"""Communicators: the transport under diffkit's collectives (torch.distributed by default).

A communicator moves raw arrays of either backend (np.ndarray, torch.Tensor) between the
ranks of one SPMD program and returns the same type. The collective primitives' kernels call
the active one; `Local` (one rank, no process group) makes every collective the identity, so
a program written for N ranks runs unchanged on one. Communicators come from the hook
`diffkit_communicators` (diffkit/hookspecs.py): an mpi4py one is a plugin away.

Failures: every torch.distributed call runs under the process group's timeout. A call that
fails (a peer closed its socket, or the timeout ran out) is re-raised as `DistributedError`
naming the ranks whose heartbeat stopped: each rank bumps a counter in the rendezvous store
every `HEARTBEAT_S` seconds from a daemon thread, so a killed or exited rank is named.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import warnings
from datetime import timedelta

import numpy as np

from diffkit.errors import DiffkitError

__all__ = ["DistributedError", "Communicator", "Local", "TorchCommunicator", "active",
           "set_active", "HEARTBEAT_S"]

HEARTBEAT_S = 0.5  # a rank whose counter stands still for 3 beats is gone
LINGER_S = 5.0  # how long a failing store host waits for the other survivors to read why


class DistributedError(DiffkitError, RuntimeError):
    """A collective failed: a rank died or stopped answering, or the ranks disagreed."""


class Communicator:
    """What a transport implements (raw arrays in, raw arrays of the same type out).

    `shift(x, offset, periodic)` sends x to rank + offset and returns what rank - offset
    sent (zeros where that rank is off the end and `periodic` is False).
    """

    name = "?"

    def rank(self) -> int:
        raise NotImplementedError

    def world_size(self) -> int:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def all_reduce(self, x, op: str):  # op: "sum", "max" or "min"
        raise NotImplementedError

    def all_gather(self, x, axis: int):
        raise NotImplementedError

    def reduce_scatter(self, x, axis: int):
        raise NotImplementedError

    def broadcast(self, x, src: int):
        raise NotImplementedError

    def reduce(self, x, dst: int):  # the sum on dst, zeros elsewhere
        raise NotImplementedError

    def shift(self, x, offset: int, periodic: bool):
        raise NotImplementedError

    def exchange(self, a, b, periodic: bool):
        """(b of rank - 1, a of rank + 1): a goes left and b right. Two shifts here; a
        transport overrides it to send both at once (one latency instead of two)."""
        return self.shift(b, 1, periodic), self.shift(a, -1, periodic)


def _zeros(x):
    return np.zeros_like(x) if isinstance(x, np.ndarray | np.generic) else x.new_zeros(x.shape)


class Local(Communicator):
    """One rank: every collective is the identity (a shift that leaves the domain, zeros)."""

    name = "local"

    def rank(self):
        return 0

    def world_size(self):
        return 1

    def barrier(self):
        pass

    def all_reduce(self, x, op):
        return x

    def all_gather(self, x, axis):
        return x

    def reduce_scatter(self, x, axis):
        return x

    def broadcast(self, x, src):
        return x

    def reduce(self, x, dst):
        return x

    def shift(self, x, offset, periodic):
        return x if periodic or offset == 0 else _zeros(x)


class TorchCommunicator(Communicator):
    """torch.distributed's default process group (gloo on CPU, NCCL on CUDA).

    NumPy arrays travel as zero-copy tensors (`torch.from_numpy`); a result is a fresh
    buffer, returned as a NumPy view of it. With NCCL, CPU data is staged on this rank's GPU.
    """

    name = "torch"

    def __init__(self, timeout_s: float | None = None):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self._rank, self._size = dist.get_rank(), dist.get_world_size()
        self.nccl = dist.get_backend() == "nccl"
        self.timeout_s = timeout_s
        self.store = self.beat = None
        if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ and self._size > 1:
            self.prefix = f"diffkit/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/hb/"
            self.beat = _Heartbeat(self._rank, self.prefix)
            self.beat.start()

    def rank(self):
        return self._rank

    def world_size(self):
        return self._size

    def close(self):
        """Stop the heartbeat once every rank got here (so none reads a stopped one as
        dead), and again before anyone leaves (the store may live in rank 0)."""
        if self.beat is not None:
            self.barrier()
            self.beat.stop()
            self.barrier()
            self.beat = None

    # -- conversions --------------------------------------------------------------------
    def _in(self, x, copy=False):
        """x as a contiguous tensor (a NumPy array without a copy unless `copy`)."""
        if isinstance(x, np.ndarray | np.generic):
            x = np.asarray(x)  # a NumPy scalar as a 0-d array (ascontiguousarray makes 1-d)
            if not x.flags.c_contiguous:
                x = np.ascontiguousarray(x)
            if not x.flags.writeable:  # only read here; from_numpy warns on read-only data
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    t = self.torch.from_numpy(x)
            else:
                t = self.torch.from_numpy(x)
        else:
            t = x.contiguous()
        if self.nccl and t.device.type == "cpu":
            return t.to(f"cuda:{self.torch.cuda.current_device()}")
        return t.clone() if copy else t

    def _out(self, t, like):
        if isinstance(like, np.generic):  # a NumPy scalar (dnp.sum's result) stays one
            return t.cpu().numpy()[()]
        if isinstance(like, np.ndarray):
            return t.cpu().numpy()
        return t.to(like.device)

    # -- collectives --------------------------------------------------------------------
    def barrier(self):
        self._guard("barrier", self.dist.barrier)

    def all_reduce(self, x, op):
        t = self._in(x, copy=True)  # reduced in place: never into the caller's array
        red = {"sum": self.dist.ReduceOp.SUM, "max": self.dist.ReduceOp.MAX,
               "min": self.dist.ReduceOp.MIN}[op]
        self._guard("all_reduce", self.dist.all_reduce, t, op=red)
        return self._out(t, x)

    def all_gather(self, x, axis):
        t = self._in(x)
        parts = [self.torch.empty_like(t) for _ in range(self._size)]
        self._guard("all_gather", self.dist.all_gather, parts, t)
        return self._out(self.torch.cat(parts, dim=axis), x)

    def reduce_scatter(self, x, axis):
        t = self._in(x, copy=True)  # gloo has no reduce_scatter: all_reduce, keep my block
        self._guard("reduce_scatter", self.dist.all_reduce, t)
        block = t.shape[axis] // self._size
        return self._out(t.narrow(axis, self._rank * block, block).contiguous(), x)

    def broadcast(self, x, src):
        t = self._in(x, copy=True)
        self._guard("broadcast", self.dist.broadcast, t, src=src)
        return self._out(t, x)

    def reduce(self, x, dst):
        t = self._in(x, copy=True)
        self._guard("reduce", self.dist.reduce, t, dst=dst)
        return self._out(t if self._rank == dst else self.torch.zeros_like(t), x)

    def shift(self, x, offset, periodic):
        n, r = self._size, self._rank
        dst, src = r + offset, r - offset
        if periodic:
            dst, src = dst % n, src % n
        if dst == r and src == r:
            return x
        t = self._in(x)
        out = self.torch.zeros_like(t)
        ops = []
        if 0 <= dst < n:
            ops.append(self.dist.P2POp(self.dist.isend, t, dst))
        if 0 <= src < n:
            ops.append(self.dist.P2POp(self.dist.irecv, out, src))
        if ops:
            self._guard("shift", _exchange, self.dist, ops, self.timeout_s)
        return self._out(out, x)

    def exchange(self, a, b, periodic):
        n, r = self._size, self._rank
        left, right = (r - 1) % n if periodic else r - 1, (r + 1) % n if periodic else r + 1
        if n == 1:
            return Communicator.exchange(self, a, b, periodic)
        ta, tb = self._in(a), self._in(b)
        got_l, got_r = self.torch.zeros_like(tb), self.torch.zeros_like(ta)
        p2p, send, recv, ops = self.dist.P2POp, self.dist.isend, self.dist.irecv, []
        if 0 <= left < n:  # tags: with two ranks, left and right are the same peer
            ops += [p2p(send, ta, left, tag=1), p2p(recv, got_l, left, tag=2)]
        if 0 <= right < n:
            ops += [p2p(send, tb, right, tag=2), p2p(recv, got_r, right, tag=1)]
        self._guard("exchange (halo_exchange)", _exchange, self.dist, ops, self.timeout_s)
        return self._out(got_l, b), self._out(got_r, a)

    # -- failures -----------------------------------------------------------------------
    def _guard(self, what, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except DiffkitError:
            raise
        except Exception as exc:  # gloo: connection closed, timed out, ...
            raise DistributedError(self._explain(what, exc)) from exc

    def _explain(self, what, exc) -> str:
        head = f"dkd {what} failed on rank {self._rank} of {self._size}"
        tail = f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        if self.beat is None:
            return f"{head}: a rank died or stopped answering {tail}"
        gone = self.beat.stopped(self._size)
        if gone is None:
            return (f"{head}: the rendezvous store at {os.environ['MASTER_ADDR']}:"
                    f"{os.environ['MASTER_PORT']} is unreachable, so its host (rank 0 or the "
                    f"torchrun agent) is gone {tail}")
        if gone:
            names = ", ".join(str(g) for g in gone)
            return (f"{head}: rank {names} stopped (its heartbeat ended: the process exited "
                    f"or was killed) {tail}")
        return (f"{head}: every rank is alive, so they called different collectives or one "
                f"is stuck; all ranks must make the same dkd calls in the same order {tail}")


def _exchange(dist, ops, timeout_s):
    for req in dist.batch_isend_irecv(ops):
        if timeout_s is None:
            req.wait()
        elif not req.wait(timedelta(seconds=timeout_s)):
            raise TimeoutError(f"no answer within {timeout_s:g} s")


class _Heartbeat(threading.Thread):
    """Bumps this rank's counter in the rendezvous store; `stopped` names standing ones."""

    def __init__(self, rank: int, prefix: str):
        super().__init__(name=f"diffkit-heartbeat-{rank}", daemon=True)
        self.rank, self.prefix = rank, prefix
        self.done = threading.Event()
        self.store = self._connect()
        self.store.add(f"{prefix}{rank}", 1)  # beating before init returns
        atexit.register(self.stop)  # a thread inside a store call at exit aborts the process

    def _connect(self):
        import torch.distributed as dist

        return dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                             is_master=False, timeout=timedelta(seconds=5))

    def run(self):
        key = f"{self.prefix}{self.rank}"
        while not self.done.wait(HEARTBEAT_S):
            try:
                self.store.add(key, 1)
            except Exception:  # the store is gone: so is the run
                return

    def stop(self):
        self.done.set()
        if self.is_alive():
            self.join(timeout=10)

    def stopped(self, size: int) -> list[int] | None:
        """The ranks whose counter did not move over 3 beats (None: store unreachable).

        The first rank to find out posts its verdict; later ones read it. A rank that hosts
        the store (rank 0, launched without torchrun's agent) waits up to `LINGER_S` for the
        other survivors to know before it may exit and take the store with it."""
        verdict, readers = f"{self.prefix}verdict", f"{self.prefix}readers"
        try:
            store = self._connect()
            if store.check([verdict]):
                gone = [int(r) for r in store.get(verdict).decode().split(",") if r]
            else:
                before = [store.add(f"{self.prefix}{r}", 0) for r in range(size)]
                time.sleep(3 * HEARTBEAT_S)
                after = [store.add(f"{self.prefix}{r}", 0) for r in range(size)]
                gone = [r for r in range(size) if after[r] == before[r]]
                store.set(verdict, ",".join(map(str, gone)))
            store.add(readers, 1)  # one more survivor knows
            if self.rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
                end = time.monotonic() + LINGER_S
                while store.add(readers, 0) < size - len(gone) and time.monotonic() < end:
                    time.sleep(0.1)
            return gone
        except Exception:
            return None


_LOCAL = Local()
_active: Communicator | None = None


def active() -> Communicator:
    """The communicator collectives use: the one `dkd.init` chose, torch.distributed's
    default group when someone else initialized it, else `Local` (one rank)."""
    global _active
    if _active is not None:
        return _active
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        _active = TorchCommunicator()
        return _active
    return _LOCAL


def set_active(comm: Communicator | None) -> None:
    """Make `comm` the communicator of this process (None: back to automatic)."""
    global _active
    _active = comm
