"""diffkit.distributed across 2 and 4 gloo processes on 127.0.0.1 (issue 16).

Each launch starts the ranks as subprocesses with torchrun's environment (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT on a free port) running tests/distributed_cases.py, which checks
many things per launch (a launch costs a torch import per rank). Every launch has a
deadline: a hang kills the ranks and fails the test.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import diffkit as dk
import diffkit.distributed as dkd

from .conftest import HAS_TORCH

CASES = Path(__file__).with_name("distributed_cases.py")
ROOT = Path(__file__).resolve().parents[1]
# the ranks import the diffkit this test runs (a checkout's), not whatever is installed
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(n: int, cases: list[str], deadline: float, env: dict | None = None):
    """Run `n` ranks of distributed_cases.py; [(returncode, output)] per rank, in `deadline`
    seconds or the test fails (every rank killed)."""
    base = {**os.environ, "PYTHONPATH": PYTHONPATH, "WORLD_SIZE": str(n),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
            **(env or {})}
    procs = [subprocess.Popen([sys.executable, str(CASES), *cases],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(n)]
    end, out = time.monotonic() + deadline, []
    try:
        for p in procs:
            out.append((p.communicate(timeout=max(1.0, end - time.monotonic()))[0], p))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"{n} ranks running {cases} did not finish within {deadline} s")
    return [(p.returncode, text) for text, p in out]


def expect_ok(results, cases_per_rank):
    for r, (rc, text) in enumerate(results):
        assert rc == 0, f"rank {r} failed:\n{text[-4000:]}"
        oks = re.findall(r"^ok (.*)$", text, re.M)
        assert len(oks) == cases_per_rank, f"rank {r} ran {len(oks)} checks:\n{text[-3000:]}"
    return results


# -- across processes -----------------------------------------------------------------------
# per backend: 6 all_reduce + 2 all_gather + 2 reduce_scatter + 1 broadcast + 4 shifts,
# 8 halos, 4 loop checks (3 with one rank), 1 disk
CHECKS = 2 * (15 + 8 + 4 + 1)


@needs_torch
def test_two_ranks_collectives_halos_and_checkpointed_loops(tmp_path):
    """Values, gradients, JVPs and hvps of every collective and of halo exchanges, and a
    checkpointed loop (revolve, recomputing) and while_loop of halo-exchanging heat steps,
    against the same computation in one process, to 1e-12, on NumPy and torch."""
    results = launch(2, ["collectives", "halos", "loops", "disk"], deadline=240,
                     env={"DIFFKIT_TEST_DISK": str(tmp_path)})
    expect_ok(results, CHECKS)
    assert os.listdir(tmp_path) == [] or all(
        not os.listdir(tmp_path / d) for d in os.listdir(tmp_path))  # snapshots removed


@needs_torch
def test_four_ranks_collectives_halos_and_checkpointed_loops():
    """The same on 4 ranks (non-neighbours, uneven blocks 4-3-3-3), less the disk case."""
    expect_ok(launch(4, ["collectives", "halos", "loops"], deadline=300), CHECKS - 2)


@needs_torch
def test_a_killed_rank_is_named_by_the_others_within_the_timeout():
    """Rank 1 of 3 dies (SIGKILL) mid-loop: ranks 0 and 2 raise DistributedError naming it,
    well within the collectives' 20 s timeout."""
    t0 = time.monotonic()
    results = launch(3, ["killed"], deadline=120, env={"DIFFKIT_TEST_TIMEOUT": "20"})
    assert results[1][0] == -9
    for r in (0, 2):
        rc, text = results[r]
        assert rc == 0, f"rank {r}:\n{text[-3000:]}"
        assert re.search(r"DistributedError after .* rank 1 stopped \(its heartbeat ended",
                         text), text[-3000:]
    assert time.monotonic() - t0 < 60


def _mpi_runtime() -> str | None:
    """mpiexec, when mpi4py and an MPI library are installed (pip install 'diffkit[mpi]')."""
    import importlib.util
    import shutil

    return shutil.which("mpiexec") if importlib.util.find_spec("mpi4py") else None


@needs_torch
@pytest.mark.skipif(_mpi_runtime() is None,
                    reason="no MPI runtime (pip install mpi4py mpich to test the mpi plugin)")
def test_the_mpi_communicator_plugin_passes_the_same_checks(tmp_path):
    """The same checks with `dkd.init(communicator="mpi")` under `mpiexec -n 2`: the
    communicator is a plugin (entry point `mpi`), the transport mpi4py's."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "DIFFKIT_TEST_COMM": "mpi",
           "DIFFKIT_TEST_DISK": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([_mpi_runtime(), "-n", "2", sys.executable, str(CASES),
                           "collectives", "halos", "loops", "disk"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert proc.stdout.count("ok ") == 2 * CHECKS, proc.stdout[-3000:]


# -- one process: the same API, every collective the identity --------------------------------
def test_one_rank_without_a_process_group(to_backend):
    x = to_backend(np.arange(6.0).reshape(2, 3))
    assert (dkd.rank(), dkd.world_size()) == (0, 1)
    for op in ("sum", "mean", "max", "min"):
        np.testing.assert_array_equal(dk.asarray(dkd.all_reduce(x, op), backend="numpy"),
                                      np.arange(6.0).reshape(2, 3))
    ext = dkd.halo_exchange(x, 1, axis=1, periodic=False)
    np.testing.assert_array_equal(dk.asarray(ext, backend="numpy"),
                                  [[0, 0, 1, 2, 0], [0, 3, 4, 5, 0]])
    g = dk.grad(lambda x: (dkd.halo_exchange(x, 1, axis=1) ** 2).sum())(x)
    np.testing.assert_array_equal(dk.asarray(g, backend="numpy"),
                                  [[0, 2, 8], [12, 8, 20]])


def test_bad_arguments_are_errors_naming_them():
    x = np.ones((3, 4))
    with pytest.raises(dkd.DistributedError, match=r"all_reduce: op='prod' is not one of"):
        dkd.all_reduce(x, "prod")
    with pytest.raises(dkd.DistributedError, match=r"all_gather: axis 2 is out of bounds"):
        dkd.all_gather(x, axis=2)
    with pytest.raises(dkd.DistributedError, match=r"broadcast: src=1 is not a rank"):
        dkd.broadcast(x, src=1)
    with pytest.raises(dkd.DistributedError, match=r"halo_exchange: width=4 must be an int "
                                                   r"from 0 to the block's length along axis 0"):
        dkd.halo_exchange(x, 4)
    with pytest.raises(dkd.DistributedError, match=r"no communicator 'shmem'; installed "
                                                   r"plugins provide \['local', 'mpi', 'torch'\]"):
        dkd.init(communicator="shmem")


def test_reduce_scatter_needs_equal_blocks(monkeypatch):
    from diffkit.distributed import comm

    class Three(comm.Local):
        def world_size(self):
            return 3

    monkeypatch.setattr(comm, "_active", Three())
    with pytest.raises(dkd.DistributedError, match=r"x.shape\[0\] = 4 does not split into 3"):
        dkd.reduce_scatter(np.ones((4, 2)))


@needs_torch
def test_heat_example_under_torchrun_matches_one_process():
    """`torchrun --nproc-per-node 2 examples/heat_distributed.py`, shortened: rank 0's check
    of the gathered gradient against one process, and CG's answer equal to one rank's."""
    example = ROOT / "examples" / "heat_distributed.py"
    short = ["--steps", "30", "--grid", "12", "--iters", "2", "--no-plot"]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node=2", str(example), *short],
                          capture_output=True, text=True, timeout=180, env=env,
                          cwd=example.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = re.search(r"on 2 rank\(s\) against one process .* = (\S+)", proc.stdout)
    assert diff and float(diff.group(1)) < 1e-12, proc.stdout
    sys.path.insert(0, str(example.parent))
    try:  # the same run in this process: one rank
        import heat_distributed

        alone = heat_distributed.cli(short)
    finally:
        sys.path.remove(str(example.parent))
    assert re.search(r"recovered initial field: (\S+);", proc.stdout).group(1) == f"{alone:.3f}"


def test_the_mpi_communicator_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if not installed
    with pytest.raises(dkd.DistributedError, match=r"communicator 'mpi' needs mpi4py and an "
                                                   r"MPI library: pip install 'diffkit\[mpi\]'"):
        dkd.init(communicator="mpi")
