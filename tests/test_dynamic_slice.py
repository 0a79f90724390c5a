"""A slice with a traced start and a constant length (`obs[i:i + 3]` in a compiled loop step)
is the operand of a `Window` of `dynamic_getitem`: one program serves every step, its
gradients are the eager path's, and a window NumPy would shorten is never clamped."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import CompileError
from diffkit.primitives import indexing as P
from diffkit.testing import check_grads, to_numpy

N, W = 48, 40  # steps, state width
STORE_ALL = {"budget": {"memory": "1GiB"}}
rng = np.random.default_rng(5)
OBS = rng.standard_normal((N + 6, W))


def smooth(u, k):
    return u + k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))


READS = {  # a (W,) forcing read from obs through a window starting at the step index
    "obs[i:i+3]": lambda obs, i: dnp.sum(obs[i:i + 3], axis=0),
    "obs[j-1:j+2], j=i+1": lambda obs, i: dnp.mean(obs[(i + 1) - 1:(i + 1) + 2], axis=0),
    "obs.T[:, i:i+2]": lambda obs, i: dnp.sum(obs.T[:, i:i + 2] ** 2, axis=1),
    "obs[i:i+3, ::2]": lambda obs, i: dnp.repeat(dnp.sum(obs[i:i + 3, ::2], axis=0), 2),
    "obs[2+i:i+8:2]": lambda obs, i: obs[2 + i:i + 8:2][1] * obs[2 + i:i + 8:2][2],
    "obs[i:i+2, i]": lambda obs, i: obs[i:i + 2, i % W][0] * obs[i],
}


def _loop(read, budget, compile):
    def step(u, i, obs, k):
        d = u - read(obs, i)
        return smooth(u, k) - 0.05 * d * dnp.tanh(d)

    def J(u0, obs, k):
        return dnp.sum(dk.checkpoint.loop(step, u0, N, (obs, k), budget,
                                          compile=compile) ** 2)

    return J


def _inputs(to_backend):
    return to_backend(rng.standard_normal(W) * 0.5), to_backend(OBS), 0.2


def _assert_close(got, want, tol=1e-12):
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tol, atol=tol)


def _one_program_set():
    compiled = dk.checkpoint.last_report().compiled
    assert compiled.startswith("compiled: 1 program set(s)"), compiled


@pytest.mark.parametrize("read", list(READS), ids=list(READS))
def test_a_step_reading_a_window_compiles_to_one_program_set(backend, to_backend, read):
    """Each window read every step: one program set for all 48 steps, store-all and a
    Revolve budget, and the gradient in u0, obs (overlapping windows add) and k is the
    eager path's."""
    x = _inputs(to_backend)
    grad = lambda budget, compile: dk.grad(_loop(READS[read], budget, compile),
                                           argnums=(0, 1, 2))(*x)
    want = grad(STORE_ALL, False)
    got = grad(STORE_ALL, True)
    _one_program_set()
    _assert_close(got, want)
    report = dk.checkpoint.last_report()
    memory = report.reverse_bytes + report.work_bytes + 7 * report.state_bytes  # + u0
    got = grad({"budget": {"memory": memory}, "schedule": "revolve"}, True)
    report = dk.checkpoint.last_report()
    assert "snapshots=8" in repr(report.plan.schedule) and report.advances > 2 * N
    _one_program_set()
    _assert_close(got, want)


def test_overlapping_windows_add_their_cotangents(backend, to_backend):
    """Row r of obs is read by the windows of steps r-2..r: its cotangent is their sum,
    as finite differences say; rows no window reaches get none."""
    obs = to_backend(OBS[:9, :4])

    def J(obs, compile):
        step = lambda u, i, o: u * 0.8 + dnp.sin(o[i:i + 3]).sum(axis=0) * u
        u = dk.checkpoint.loop(step, obs[0] * 0 + 1.0, 5, (obs,), STORE_ALL, compile=compile)
        return dnp.sum(u ** 2)

    g = dk.grad(lambda o: J(o, True))(obs)
    _one_program_set()
    _assert_close([g], [dk.grad(lambda o: J(o, False))(obs)])
    assert np.all(to_numpy(g)[7:] == 0) and np.all(to_numpy(g)[:7] != 0)
    check_grads(lambda o: J(o, True), (obs,), order=1, modes=("rev",))


def test_at_window_add_and_set_compile(backend, to_backend):
    """u.at[j:j + 2].add(s) and traj.at[i:i + 2].set(...) in a step: one program set,
    the eager gradient (overwritten entries of traj pass none)."""
    def J(u0, s, compile):
        def step(st, i, s):
            u, traj = st
            j = i % (W - 2)  # a point source moving along u
            u = smooth(u, 0.2).at[j:j + 2].add(s * dnp.cos(u[j:j + 2]))
            return u, traj.at[i:i + 2].set(u[:2] * traj[i + 1:i + 3])

        st = (u0, dnp.ones(N + 2, like=u0))
        u, traj = dk.checkpoint.loop(step, st, N, (s,), STORE_ALL, compile=compile)
        return dnp.sum(u ** 2) + dnp.sum(traj * dnp.arange(N + 2.0, like=u0))

    u0, s = to_backend(rng.standard_normal(W)), 0.3
    got = dk.grad(lambda u, s: J(u, s, True), argnums=(0, 1))(u0, s)
    _one_program_set()
    _assert_close(got, dk.grad(lambda u, s: J(u, s, False), argnums=(0, 1))(u0, s))


def test_hvp_through_a_compiled_step_reading_a_window(backend, to_backend):
    u0, obs, k = _inputs(to_backend)
    J = lambda c: lambda u: _loop(READS["obs[i:i+3]"], STORE_ALL, c)(u, obs, k)
    t = to_backend(rng.standard_normal(W))
    got = dk.hvp(J(True), (u0,), (t,))
    _assert_close(dk.tree.leaves(got), dk.tree.leaves(dk.hvp(J(False), (u0,), (t,))))


@pytest.mark.parametrize("rows,shift", [(N, 0), (N + 2, -1)], ids=["past-end", "negative"])
def test_a_window_numpy_would_shorten_retraces_with_the_eager_result(backend, to_backend,
                                                                     rows, shift):
    """obs[i:i + 3] past the end of obs (NumPy: 2 rows, then 1) and obs[i-1:i+2] at i = 0
    (NumPy: obs[-1:2], empty) are never clamped: the in-range guard fails, the step is traced
    again at that i (its slice a guarded constant), and the gradient is the eager one."""
    obs = to_backend(OBS[:rows])

    def J(u, o, compile):
        step = lambda u, i, o: u * 0.9 + dnp.sum(o[i + shift:i + 3 + shift] ** 2) * u
        return dnp.sum(dk.checkpoint.loop(step, u, N, (o,), STORE_ALL, compile=compile) ** 2)

    u0 = to_backend(rng.standard_normal(W) * 0.1)
    got = dk.grad(lambda u, o: J(u, o, True), argnums=(0, 1))(u0, obs)
    assert dk.checkpoint.last_report().compiled.startswith(
        "compiled: 3 program set(s)" if shift == 0 else "compiled: 2 program set(s)")
    _assert_close(got, dk.grad(lambda u, o: J(u, o, False), argnums=(0, 1))(u0, obs))


def test_make_program_prints_a_window_as_one_equation_with_its_range_guard():
    f = lambda obs, i: obs[i - 1:i + 2, 1:]
    prog = dk.make_program(f)(OBS, np.asarray(3))
    (gather,) = [e for e in prog.equations if e.prim.name == "dynamic_getitem"]
    assert gather.params["idx"] == (P.Window(3), slice(1, None, None))
    assert "idx=(<arg>:<arg>+3, slice(1, None, None))" in str(prog)
    assert [g.kind for g in prog.guards] == ["bool"]  # 0 <= i - 1 <= len(obs) - 3
    for i in (1, 17, N + 4):
        np.testing.assert_array_equal(prog(OBS, np.asarray(i)), f(OBS, i))
    for i in (0, N + 5):  # NumPy: obs[-1:2] (empty) and 2 rows: the guard refuses
        with pytest.raises(CompileError, match="does not apply to these arguments"):
            prog(OBS, np.asarray(i))


def test_the_window_kernel_never_clamps(backend, to_backend):
    obs = to_backend(OBS[:5])
    for i in (3, -1):
        with pytest.raises(IndexError, match=r"runs outside an axis of length 5"):
            P.dynamic_getitem.bind(obs, np.asarray(i), idx=(P.Window(3),), shape=(5, W))
    np.testing.assert_array_equal(
        to_numpy(P.dynamic_getitem.bind(obs, np.asarray(1), idx=(P.Window(3, 2),),
                                        shape=(5, W))), OBS[1:4:2])


@pytest.mark.parametrize("name,f", [
    ("independent ends", lambda x, i, j: x[i:j]),
    ("scaled stop", lambda x, i, j: x[i:2 * i + 1]),
    ("constant stop", lambda x, i, j: x[i:5]),
    ("open stop", lambda x, i, j: x[i:]),
    ("negative step", lambda x, i, j: x[i + 2:i - 1:-1]),
    ("empty", lambda x, i, j: x[i + 1:i + 1]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_slice_of_unproven_length_keeps_guarding_its_values(name, f):
    """Conservative: only `v + c1 : v + c2` with c2 > c1 and a positive step is a window;
    any other traced slice is guarded on its values (a program per value), as before."""
    prog = dk.make_program(f)(OBS, np.asarray(2), np.asarray(4))
    assert not [e for e in prog.equations if e.prim.name == "dynamic_getitem"]
    assert any(g.kind == "value" for g in prog.guards)
    np.testing.assert_array_equal(prog(OBS, np.asarray(2), np.asarray(4)), f(OBS, 2, 4))


def test_bounds_of_a_narrower_integer_type_keep_their_guards():
    """int8 bounds could wrap around between start and stop: guarded, not a window."""
    f = lambda x, i: x[i:i + 3]
    prog = dk.make_program(f)(OBS, np.asarray(2, dtype=np.int8))
    assert not [e for e in prog.equations if e.prim.name == "dynamic_getitem"]
    np.testing.assert_array_equal(prog(OBS, np.asarray(2, dtype=np.int8)), OBS[2:5])


def test_eager_slicing_is_unchanged(backend, to_backend):
    """Outside a program the bounds are data as before: a static getitem whose gradient
    scatters into x, for Python ints and for integer tracers of a transform alike."""
    x = to_backend(rng.standard_normal(8))
    f = lambda x, i: dnp.sum(x[i:i + 3] ** 2)
    want = np.zeros(8)
    want[2:5] = 2 * to_numpy(x)[2:5]
    np.testing.assert_allclose(to_numpy(dk.grad(f)(x, 2)), want)
    np.testing.assert_allclose(to_numpy(dk.grad(f)(x, np.asarray(2))), want)
    g = dk.grad(lambda x: f(x, dnp.argmax(x * 0 + dnp.arange(8.0, like=x)) - 5))(x)
    np.testing.assert_allclose(to_numpy(g), want)
