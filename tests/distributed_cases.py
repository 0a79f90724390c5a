"""What each rank runs for tests/test_distributed.py (one launch runs many checks).

    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 \
        python tests/distributed_cases.py collectives loop

Each rank builds every rank's data from seeds, so it also computes the whole problem in one
process (NumPy's and diffkit's single-process functions) and compares its own block of the
distributed values and gradients with it, to 1e-12, on NumPy arrays and torch tensors.
A rank prints "ok <check>" per check; any mismatch raises, so the rank exits non-zero.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import diffkit as dk
import diffkit.distributed as dkd
import diffkit.numpy as dnp

TOL = 1e-12
R, N = 0, 1  # this rank, the number of ranks (set in main)


def conv(backend):
    return (lambda a: np.asarray(a)) if backend == "numpy" else (
        lambda a: dk.asarray(np.asarray(a), backend="torch"))


def close(a, b, what):
    a, b = np.asarray(dk.asarray(a, backend="numpy")), np.asarray(dk.asarray(b, backend="numpy"))
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=f"rank {R}: {what}")


def data(shape, seed, k=None):
    """Every rank's array (a list), or rank k's."""
    out = [np.random.default_rng(seed + 1000 * s).standard_normal(shape) for s in range(N)]
    return out if k is None else out[k]


def ok(what):
    print(f"ok {what}", flush=True)


# -- collectives ------------------------------------------------------------------------------
REDUCE = {"sum": lambda X: dnp.sum(X, axis=0), "mean": lambda X: dnp.mean(X, axis=0),
          "max": lambda X: dnp.max(X, axis=0), "min": lambda X: dnp.min(X, axis=0)}


def check(name, local, whole, x_shape, out_shape, c, tie=False):
    """Values, gradient (of the sum over ranks of <w_r, out_r>) and JVP of `local` (one
    rank's block in, its output out) against `whole(X, s)`, the output of rank s computed
    from every rank's blocks X in one process."""
    xs = data(x_shape, 1)
    if tie:  # integer values: ranks tie on many elements
        xs = [np.round(2 * x) for x in xs]
    ws, ts = data(out_shape, 2), data(x_shape, 3)
    X = [c(x) for x in xs]
    close(local(c(xs[R])), whole(X, R), f"{name} value")
    g = dk.grad(lambda x: dnp.sum(c(ws[R]) * local(x)))(c(xs[R]))
    G = dk.grad(lambda X: sum(dnp.sum(c(ws[s]) * whole(X, s)) for s in range(N)))(X)
    close(g, G[R], f"{name} gradient")
    _, t = dk.jvp(local, (c(xs[R]),), (c(ts[R]),))
    _, T = dk.jvp(lambda X: whole(X, R), (X,), ([c(t) for t in ts],))
    close(t, T, f"{name} jvp")
    ok(name)


def collectives(backend):
    c = conv(backend)
    for op, red in REDUCE.items():
        for tie in ((False, True) if op in ("max", "min") else (False,)):
            check(f"all_reduce {op}{' ties' if tie else ''} {backend}",
                  lambda x, op=op: dkd.all_reduce(x, op),
                  lambda X, s, red=red: red(dnp.stack(X)), (3, 4), (3, 4), c, tie)
    for axis in (0, 1):
        gathered = (2 * N, 3) if axis == 0 else (2, 3 * N)
        check(f"all_gather axis={axis} {backend}", lambda x, a=axis: dkd.all_gather(x, a),
              lambda X, s, a=axis: dnp.concatenate(X, axis=a), (2, 3), gathered, c)
        block = [slice(None), slice(None)]

        def whole_rs(X, s, a=axis, block=block):
            block[a] = slice(2 * s, 2 * s + 2)
            return sum(X[1:], X[0])[tuple(block)]

        check(f"reduce_scatter axis={axis} {backend}", lambda x, a=axis: dkd.reduce_scatter(x, a),
              whole_rs, (2 * N, 3) if axis == 0 else (3, 2 * N), (2, 3) if axis == 0 else (3, 2),
              c)
    check(f"broadcast {backend}", lambda x: dkd.broadcast(x, src=N - 1),
          lambda X, s: X[N - 1] + 0.0, (4,), (4,), c)
    for off in (1, -1):
        for periodic in (True, False):
            check(f"shift offset={off} periodic={periodic} {backend}",
                  lambda x, o=off, p=periodic: dkd.shift(x, o, p),
                  lambda X, s, o=off, p=periodic: X[(s - o) % N] * 1.0
                  if p or 0 <= s - o < N else X[0] * 0.0, (3,), (3,), c)
    top = dkd.all_reduce(np.float64(R), "max")  # a NumPy scalar comes back as one
    assert type(top) is np.float64 and top == N - 1, f"rank {R}: {top!r}"


def halos(backend):
    for axis in (0, 1):
        for width in (1, 2):
            for periodic in (True, False):
                halo(backend, axis, width, periodic)


def halo(backend, axis, width, periodic):
    """halo_exchange of uneven blocks of a (3N+1)-long axis: values, gradient and hvp."""
    c = conv(backend)
    n_glob = 3 * N + 1
    shape = (n_glob, 3) if axis == 0 else (3, n_glob)
    U = np.random.default_rng(7).standard_normal(shape)
    V = np.random.default_rng(9).standard_normal(shape)
    blocks = np.array_split(U, N, axis=axis)
    starts = np.cumsum([0] + [b.shape[axis] for b in blocks])
    ws = [np.random.default_rng(8 + s).standard_normal(
        tuple(d + 2 * width if k == axis else d for k, d in enumerate(b.shape)))
        for s, b in enumerate(blocks)]

    def ext(U, s):
        idx = np.arange(starts[s] - width, starts[s + 1] + width)
        if periodic:
            return dnp.take(U, idx % n_glob, axis=axis)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (width, width)
        return dnp.take(dnp.pad(U, pad), idx + width, axis=axis)

    def mine(G):
        return np.array_split(np.asarray(dk.asarray(G, backend="numpy")), N, axis=axis)[R]

    def loss(u):
        return dnp.sum(c(ws[R]) * dnp.sin(dkd.halo_exchange(u, width, axis, periodic)) ** 2)

    def whole(U):
        return sum(dnp.sum(c(ws[s]) * dnp.sin(ext(U, s)) ** 2) for s in range(N))

    what = f"halo axis={axis} width={width} periodic={periodic} {backend}"
    u = c(blocks[R])
    close(dkd.halo_exchange(u, width, axis, periodic), ext(c(U), R), what)
    close(dk.grad(loss)(u), mine(dk.grad(whole)(c(U))), what + " gradient")
    close(dk.hvp(loss, (u,), (c(mine(V)),)), mine(dk.hvp(whole, (c(U),), (c(V),))),
          what + " hvp")
    ok(what)


# -- checkpointed loops with halo exchanges ------------------------------------------------
ROWS, COLS, STEPS = None, 6, 14


def heat_step(u, i, kappa):
    """A strip's explicit heat step: ghost rows from the neighbours, periodic columns, and a
    global mean taken out (a collective in every step)."""
    ext = dkd.halo_exchange(u, 1, axis=0, periodic=True)
    lap = ext[2:] + ext[:-2] + dnp.roll(u, 1, 1) + dnp.roll(u, -1, 1) - 4 * u
    u = u + kappa * lap
    return u - 0.01 * dkd.all_reduce(dnp.sum(u)) / (ROWS * COLS)


def heat_step_whole(U, i, kappa):
    lap = dnp.roll(U, 1, 0) + dnp.roll(U, -1, 0) + dnp.roll(U, 1, 1) + dnp.roll(U, -1, 1) - 4 * U
    U = U + kappa * lap
    return U - 0.01 * dnp.sum(U) / (ROWS * COLS)


def loops(backend):
    global ROWS, COLS
    ROWS, COLS = 3 * N + 1, 6
    c = conv(backend)
    U0 = np.random.default_rng(11).standard_normal((ROWS, COLS))
    W = np.random.default_rng(12).standard_normal((ROWS, COLS))
    u0, w = c(np.array_split(U0, N)[R]), c(np.array_split(W, N)[R])
    # alone, rank 0 (the largest block, the smallest budget) would recompute (Periodic) and
    # the others keep every step (StoreAll): the agreed plan recomputes on every rank
    small = {"budget": {"memory": "40KiB" if R == 0 else "1MiB"}}
    ref = dk.checkpoint.loop(heat_step_whole, c(U0), STEPS, (0.1,))
    close(dk.checkpoint.loop(heat_step, u0, STEPS, (0.1,)), np.array_split(
        np.asarray(dk.asarray(ref, backend="numpy")), N)[R], f"loop value {backend}")

    def loss(u, kappa, budget=small):
        return dnp.sum(w * dk.checkpoint.loop(heat_step, u, STEPS, (kappa,), budget) ** 2)

    def whole(U, kappa):
        return dnp.sum(c(W) * dk.checkpoint.loop(heat_step_whole, U, STEPS, (kappa,)) ** 2)

    g_u, g_k = dk.grad(loss, argnums=(0, 1))(u0, c(np.float64(0.1)))
    rep = dk.checkpoint.last_report()
    G_u, G_k = dk.grad(whole, argnums=(0, 1))(c(U0), c(np.float64(0.1)))
    close(g_u, np.array_split(np.asarray(dk.asarray(G_u, backend="numpy")), N)[R],
          f"loop gradient {backend}")
    close(dkd.all_reduce(g_k), G_k, f"loop gradient of the shared kappa {backend}")
    plans = dkd.all_gather(np.array([rep.advances, rep.n_steps], dtype=np.int64), 0)
    assert rep.advances > STEPS, f"rank {R}: the small budget did not recompute ({rep})"
    assert len(set(plans[0::2].tolist())) == 1, f"rank {R}: ranks ran different plans {plans}"
    ok(f"loop gradient, one plan across ranks ({rep.advances} steps for {STEPS}) {backend}")

    T0 = np.random.default_rng(13).standard_normal((ROWS, COLS))
    _, t = dk.jvp(lambda u: dk.checkpoint.loop(heat_step, u, STEPS, (0.1,), small), (u0,),
                  (c(np.array_split(T0, N)[R]),))
    _, T = dk.jvp(lambda U: dk.checkpoint.loop(heat_step_whole, U, STEPS, (0.1,)), (c(U0),),
                  (c(T0),))
    close(t, np.array_split(np.asarray(dk.asarray(T, backend="numpy")), N)[R],
          f"loop jvp {backend}")
    ok(f"loop jvp {backend}")

    cond = lambda u, i, kappa: dkd.all_reduce(dnp.max(dnp.abs(u)), "max") > 0.5 * float(
        np.abs(U0).max()) and i < 40
    cond_whole = lambda U, i, kappa: dnp.max(dnp.abs(U)) > 0.5 * float(np.abs(U0).max()) \
        and i < 40
    online = {**small, "schedule": "online"}
    g = dk.grad(lambda u: dnp.sum(w * dk.checkpoint.while_loop(cond, heat_step, u, (0.1,),
                                                                 online) ** 2))(u0)
    G = dk.grad(lambda U: dnp.sum(c(W) * dk.checkpoint.while_loop(cond_whole, heat_step_whole,
                                                                     U, (0.1,)) ** 2))(c(U0))
    close(g, np.array_split(np.asarray(dk.asarray(G, backend="numpy")), N)[R],
          f"while_loop gradient {backend}")
    ok(f"while_loop gradient {backend}")

    if N == 1:
        return
    try:
        dk.grad(lambda u: dnp.sum(dk.checkpoint.while_loop(lambda u, i, k: i < 3 + R,
                                                           heat_step, u, (0.1,))))(u0)
    except dkd.DistributedError as e:
        assert "cond disagrees across ranks at step 3" in str(e), str(e)
        ok(f"while_loop cond disagreement is an error {backend}")
    else:
        raise AssertionError(f"rank {R}: a disagreeing cond was not refused")


def disk(backend):
    """The disk tier writes under <path>/rank<r>, and the gradient is unchanged (wide strips,
    so that the budget holds one snapshot in RAM and the rest go to disk)."""
    global ROWS, COLS
    ROWS, COLS = 3 * N + 1, 400
    c = conv(backend)
    U0 = np.random.default_rng(11).standard_normal((ROWS, COLS))
    u0 = c(np.array_split(U0, N)[R])
    path = os.environ["DIFFKIT_TEST_DISK"]
    seen = []

    def step(u, i, kappa):
        if i == 29:
            seen.append(sorted(os.listdir(path)))
        return heat_step(u, i, kappa)

    for kib in range(200, 400, 16):  # the smallest budget that fits (agreed by every rank)
        budget = {"budget": {"memory": f"{kib}KiB", "disk": {"path": path, "size": "64MiB"}},
                  "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}
        try:
            g = dk.grad(lambda u, b=budget: dnp.sum(dk.checkpoint.loop(step, u, 30, (0.1,),
                                                                       b) ** 2))(u0)
            break
        except dk.DiffkitError as e:
            assert "cannot hold one saved state" in str(e), str(e)
    assert dk.checkpoint.last_report().disk_written > 0, f"rank {R}: nothing went to disk"
    g_ram = dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(heat_step, u, 30, (0.1,)) ** 2))(u0)
    close(g, g_ram, f"disk gradient {backend}")
    assert seen and f"rank{R}" in seen[0], f"rank {R}: no rank{R} directory in {seen}"
    mixed = budget if R == 0 else {"budget": {"memory": "1MiB"}}  # a disk on rank 0 only
    try:
        dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(heat_step, u, 30, (0.1,), mixed)))(u0)
    except dkd.DistributedError as e:
        assert "list different numbers of storage tiers (0 to 1)" in str(e), str(e)
    else:
        raise AssertionError(f"rank {R}: budgets with different tiers were accepted")
    ok(f"disk tier in {path}/rank{R} {backend}")


def killed():
    """Rank 1 kills itself in the middle of a checkpointed loop's forward sweep; the others
    must end with a DistributedError naming it."""
    global ROWS
    ROWS = 3 * N + 1
    u0 = np.array_split(np.random.default_rng(11).standard_normal((ROWS, COLS)), N)[R]

    def step(u, i, kappa):
        if R == 1 and i == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return heat_step(u, i, kappa)

    t0 = time.perf_counter()
    try:
        dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(step, u, 20, (0.1,)) ** 2))(u0)
    except dkd.DistributedError as e:
        print(f"DistributedError after {time.perf_counter() - t0:.1f} s: {e}", flush=True)
        os._exit(0)  # the group is broken: skip its teardown
    raise AssertionError(f"rank {R}: the loop finished although rank 1 died")


def main(cases):
    global R, N
    name = os.environ.get("DIFFKIT_TEST_COMM", "torch")
    dkd.init(communicator=name, timeout_s=float(os.environ.get("DIFFKIT_TEST_TIMEOUT", "60")))
    R, N = dkd.rank(), dkd.world_size()
    assert dkd.init(communicator=name) is dkd.communicator()  # a second init changes nothing
    for case in cases:
        if case == "killed":
            killed()
        for backend in ("numpy", "torch"):
            {"collectives": collectives, "halos": halos, "loops": loops, "disk": disk}[case](
                backend)
    dkd.barrier()
    dkd.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
