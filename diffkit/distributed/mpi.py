"""An mpi4py communicator, packaged as a plugin (entry point `mpi`; `pip install diffkit[mpi]`).

    mpiexec -n 4 python script.py      # in script.py: dkd.init(communicator="mpi")

It implements `diffkit.distributed.comm.Communicator` on `MPI.COMM_WORLD` (or a given
communicator) with mpi4py's buffer methods: NumPy arrays go as they are, torch tensors through
their NumPy view (CPU; a CUDA tensor is staged through the host). mpi4py is imported when the
communicator is made, not when the plugin loads. MPI's default error handler aborts every
rank when one fails, so a dead rank ends the job rather than hanging it.
"""

from __future__ import annotations

import numpy as np

from diffkit.distributed.comm import Communicator, DistributedError
from diffkit.extend import hookimpl

__all__ = ["MPICommunicator"]


class MPICommunicator(Communicator):
    """`Communicator` over an mpi4py communicator (default: MPI.COMM_WORLD)."""

    name = "mpi"

    def __init__(self, comm=None, timeout_s=None):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise DistributedError("communicator 'mpi' needs mpi4py and an MPI library: pip "
                                   "install 'diffkit[mpi]' (e.g. mpi4py with mpich)") from e
        self.MPI, self.comm = MPI, comm if comm is not None else MPI.COMM_WORLD
        self._rank, self._size = self.comm.Get_rank(), self.comm.Get_size()

    def rank(self):
        return self._rank

    def world_size(self):
        return self._size

    def barrier(self):
        self.comm.Barrier()

    # -- conversions: NumPy buffers in and out ----------------------------------------------
    @staticmethod
    def _in(x):
        a = np.asarray(x) if isinstance(x, np.ndarray | np.generic) else x.detach().cpu().numpy()
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)  # keeps 0-d as 0-d

    @staticmethod
    def _out(a, like):
        if isinstance(like, np.generic):
            return a[()]
        if isinstance(like, np.ndarray):
            return a
        import torch

        return torch.from_numpy(a).to(like.device)

    # -- collectives ------------------------------------------------------------------------
    def all_reduce(self, x, op):
        a = self._in(x)
        out = np.empty_like(a)
        mpi_op = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}[op]
        self.comm.Allreduce(a, out, op=mpi_op)
        return self._out(out, x)

    def all_gather(self, x, axis):
        a = self._in(x)
        out = np.empty((self._size, *a.shape), dtype=a.dtype)
        self.comm.Allgather(a, out)
        return self._out(np.concatenate(list(out), axis=axis), x)

    def reduce_scatter(self, x, axis):
        a = np.ascontiguousarray(np.moveaxis(self._in(x), axis, 0))  # blocks along axis 0
        out = np.empty((a.shape[0] // self._size, *a.shape[1:]), dtype=a.dtype)
        self.comm.Reduce_scatter_block(a, out, op=self.MPI.SUM)
        return self._out(np.ascontiguousarray(np.moveaxis(out, 0, axis)), x)

    def broadcast(self, x, src):
        a = self._in(x).copy()
        self.comm.Bcast(a, root=src)
        return self._out(a, x)

    def reduce(self, x, dst):
        a = self._in(x)
        out = np.zeros_like(a)
        self.comm.Reduce(a, out if self._rank == dst else None, op=self.MPI.SUM, root=dst)
        return self._out(out, x)

    def shift(self, x, offset, periodic):
        n, r = self._size, self._rank
        dst, src = r + offset, r - offset
        if periodic:
            dst, src = dst % n, src % n
        a = self._in(x)
        out = np.zeros_like(a)
        null = self.MPI.PROC_NULL
        self.comm.Sendrecv(a, dest=dst if 0 <= dst < n else null, recvbuf=out,
                           source=src if 0 <= src < n else null)
        return self._out(out, x)


    def exchange(self, a, b, periodic):
        n, r, null = self._size, self._rank, self.MPI.PROC_NULL
        left, right = (r - 1) % n if periodic else r - 1, (r + 1) % n if periodic else r + 1
        left, right = left if 0 <= left < n else null, right if 0 <= right < n else null
        sa, sb = self._in(a), self._in(b)
        got_l, got_r = np.zeros_like(sb), np.zeros_like(sa)
        reqs = [self.comm.Irecv(got_l, source=left, tag=2),
                self.comm.Irecv(got_r, source=right, tag=1),
                self.comm.Isend(sa, dest=left, tag=1), self.comm.Isend(sb, dest=right, tag=2)]
        self.MPI.Request.Waitall(reqs)
        return self._out(got_l, b), self._out(got_r, a)


@hookimpl
def diffkit_communicators():
    return {"mpi": MPICommunicator}
