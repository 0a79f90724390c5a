"""A traced integer index used as data (`obs[i]` in a compiled loop step) is an operand of
`dynamic_getitem`, so one program serves every step; gradients equal the eager path's."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import CompileError
from diffkit.primitives import indexing as P
from diffkit.testing import check_grads, to_numpy
from tests.test_indexing import INDICES

N, M, W = 56, 5, 64  # steps, rows of the periodic forcing, state width
STORE_ALL = {"budget": {"memory": "1GiB"}}
rng = np.random.default_rng(3)
OBS = rng.standard_normal((N, W))
FORCING = rng.standard_normal((M, W))


def smooth(u, k):
    return u + k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))


READS = {
    "obs[i]": lambda obs, i: obs[i],
    "obs[i, :]": lambda obs, i: obs[i, :],
    "take": lambda obs, i: dnp.take(obs, i, axis=0),
    "obs[n-1-i]": lambda obs, i: obs[N - 1 - i],
    "obs[i-1]": lambda obs, i: obs[i - 1],  # -1 at step 0: the last row, as in NumPy
    "obs[:, i]^T": lambda obs, i: obs.T[:, i],
}


def _loop(read, budget, compile):
    def step(u, i, obs, f, k):
        d = u - read(obs, i)
        return smooth(u, k) - 0.05 * d * dnp.tanh(d) + 0.01 * f[i % M]

    def J(u0, obs, f, k):
        return dnp.sum(dk.checkpoint.loop(step, u0, N, (obs, f, k), budget,
                                          compile=compile) ** 2)

    return J


def _inputs(to_backend):
    u0 = to_backend(rng.standard_normal(W) * 0.5)
    return u0, to_backend(OBS), to_backend(FORCING), 0.2


def _assert_close(got, want, tol=1e-12):
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tol, atol=tol)


def _revolve(report) -> dict:
    """A Revolve budget of 8 states beside what the compiled store-all run reported (state
    0's snapshot is the caller's u0: 7 new states)."""
    memory = report.reverse_bytes + report.work_bytes + 7 * report.state_bytes
    return {"budget": {"memory": memory}, "schedule": "revolve"}


@pytest.mark.parametrize("read", list(READS), ids=list(READS))
def test_a_step_reading_row_i_compiles_to_one_program_set(backend, to_backend, read):
    """obs[i] and its spellings, read every step (and a forcing f[i % m]): one program set
    for all 56 steps, store-all and Revolve, and the gradient in u0, obs (f's rows are read
    at several steps) and k is the eager path's."""
    x = _inputs(to_backend)
    grad = lambda budget, compile: dk.grad(_loop(READS[read], budget, compile),
                                           argnums=(0, 1, 2, 3))(*x)
    want = grad(STORE_ALL, False)
    for budget in (STORE_ALL, None):
        got = grad(budget or _revolve(dk.checkpoint.last_report()), True)
        report = dk.checkpoint.last_report()
        assert report.compiled.startswith("compiled: 1 program set(s)"), report.compiled
        if budget is None:
            assert "snapshots=8" in repr(report.plan.schedule) and report.advances > 2 * N
        _assert_close(got, want)


def test_the_gradient_in_obs_is_a_scatter_add(backend, to_backend):
    """Reading one row twice in a step and one row at several steps accumulates its
    cotangent (the VJP is a scatter-add): compiled and eager equal finite differences."""
    obs = to_backend(OBS[:6])

    def step(u, i, obs):
        return u * 0.9 + obs[i % 3] * obs[i % 3] + obs[2 - i % 3] * u

    def J(obs, compile):
        u = dk.checkpoint.loop(step, obs[5] * 0.0, 7, (obs,), STORE_ALL, compile=compile)
        return dnp.sum(u * dnp.sin(u))

    g = dk.grad(lambda o: J(o, True))(obs)
    assert dk.checkpoint.last_report().compiled.startswith("compiled: 1 program set(s)")
    _assert_close([g], [dk.grad(lambda o: J(o, False))(obs)])
    assert np.all(to_numpy(g)[3:] == 0)  # rows never read get no cotangent
    check_grads(lambda o: J(o, True), (obs,), order=1, modes=("rev",))


def test_hvp_through_a_compiled_step_reading_row_i(backend, to_backend):
    u0, obs, f, k = _inputs(to_backend)
    J = lambda c: lambda u: _loop(READS["obs[i]"], STORE_ALL, c)(u, obs, f, k)
    t = to_backend(rng.standard_normal(W))
    got = dk.hvp(J(True), (u0,), (t,))
    _assert_close(dk.tree.leaves(got), dk.tree.leaves(dk.hvp(J(False), (u0,), (t,))))


def test_make_program_prints_obs_i_as_one_equation():
    prog = dk.make_program(lambda obs, i: obs[i, :])(OBS, np.asarray(3))
    assert [e.prim.name for e in prog.equations] == ["dynamic_getitem"] and not prog.guards
    assert "dynamic_getitem(v0, v1, idx=(<arg>, slice(None, None, None)), shape=(56, 64))" \
        in str(prog)
    for i in (0, 17, -1, -N):  # any index replays: negative ones count from the end
        np.testing.assert_array_equal(prog(OBS, np.asarray(i)), OBS[i])


def _is_int(i) -> bool:
    if isinstance(i, np.ndarray):
        return i.dtype.kind in "iu"
    return isinstance(i, int | np.integer) and not isinstance(i, bool)


def _with(idx: tuple, slots: list, values: list) -> tuple:
    full = list(idx)
    for k, v in zip(slots, values, strict=True):
        full[k] = v
    return tuple(full)


FORMS = {k: v if isinstance(v, tuple) else (v,) for k, v in INDICES.items()}
SLOTS = [(name, k) for name, idx in FORMS.items() for k, i in enumerate(idx) if _is_int(i)]


@pytest.mark.parametrize("name,slot", SLOTS, ids=[f"{n}-{k}" for n, k in SLOTS])
def test_every_index_form_takes_a_traced_integer_entry_as_operand(backend, to_backend, name,
                                                                    slot):
    """Each integer entry of test_indexing's index forms made a program input in turn: the
    program replays NumPy's x[idx] for another value of it, and the gradient of its
    dynamic_getitem (a scatter-add) and its tangent are those of eager indexing."""
    idx = FORMS[name]
    a = rng.standard_normal((3, 4, 5))
    f = lambda x, i: x[_with(idx, [slot], [i])] ** 2

    prog = dk.make_program(f)(to_backend(a), np.asarray(idx[slot]))
    (gather,) = [e for e in prog.equations if e.prim.name == "dynamic_getitem"]
    assert not prog.guards and gather.params["idx"] == _with(idx, [slot], [P.OPERAND])
    other = np.asarray(idx[slot]) - 1  # another value: -1 wraps to the end
    plain = int(other) if other.ndim == 0 else other
    np.testing.assert_allclose(to_numpy(prog(to_backend(a), other)), f(a, plain), rtol=1e-15)
    dyn = lambda x: gather.prim.bind(x, to_backend(other), **gather.params) ** 2
    t = rng.standard_normal(a.shape)
    np.testing.assert_allclose(to_numpy(dk.grad(lambda x: dnp.sum(dyn(x)))(to_backend(a))),
                               dk.grad(lambda x: dnp.sum(f(x, plain)))(a), rtol=1e-15)
    np.testing.assert_allclose(to_numpy(dk.jvp(dyn, (to_backend(a),), (to_backend(t),))[1]),
                               dk.jvp(lambda x: f(x, plain), (a,), (t,))[1], rtol=1e-15)


def test_several_traced_integers_in_a_basic_index_are_taken_one_at_a_time():
    a = rng.standard_normal((3, 4, 5))
    f = lambda x, i, j: x[i, ..., j] + x[None, j, 1:3, i][0].sum() + x[i, j, 1:5]
    prog = dk.make_program(f)(a, np.asarray(1), np.asarray(2))
    assert not prog.guards
    for i, j in [(-1, 2), (0, 0), (2, -3)]:
        np.testing.assert_array_equal(prog(a, np.asarray(i), np.asarray(j)), f(a, i, j))


def test_an_index_a_program_cannot_take_as_operand_says_why():
    f = lambda x, i, j: x[i, j]
    with pytest.raises(CompileError, match="two traced integer arrays"):
        dk.make_program(f)(OBS, np.array([0, 1]), np.array([2, 2]))
    np.testing.assert_array_equal(f(OBS, np.array([0, 1]), np.array([2, 2])), OBS[[0, 1], 2])


def test_out_of_range_and_float_indices_raise_as_numpy_does(backend, to_backend):
    """Never clamped (JAX clamps): out of range raises IndexError, in a program as eagerly;
    a float index is refused."""
    obs = to_backend(OBS)
    prog = dk.make_program(lambda o, i: o[i])(obs, np.asarray(3))
    with pytest.raises(IndexError, match="out of bounds"):
        prog(obs, np.asarray(N))
    with pytest.raises(IndexError, match="out of bounds"):
        prog(obs, np.asarray(-N - 1))
    with pytest.raises(IndexError, match="integer or boolean"):
        dk.make_program(lambda o, i: o[i])(obs, np.asarray(3.0))

    def J(u, compile):  # reads obs[i + 1]: out of range at the last step
        step = lambda u, i, o: u * 0.9 + o[i + 1]
        return dnp.sum(dk.checkpoint.loop(step, u, N, (obs,), STORE_ALL, compile=compile))

    for compile in (True, False):
        with pytest.raises(IndexError, match="out of bounds"):
            dk.grad(lambda u, c=compile: J(u, c))(obs[0])


def test_at_i_add_with_a_traced_index_compiles(backend, to_backend):
    """A point source moving with the step: u.at[i % W].add(s) is a dynamic_index_add."""
    def J(u, s, compile):
        step = lambda u, i, s: smooth(u, 0.2).at[i % W].add(s * dnp.cos(u[i % W]))
        return dnp.sum(dk.checkpoint.loop(step, u, N, (s,), STORE_ALL, compile=compile) ** 2)

    u0, s = to_backend(rng.standard_normal(W)), 0.3
    got = dk.grad(lambda u, s: J(u, s, True), argnums=(0, 1))(u0, s)
    assert dk.checkpoint.last_report().compiled.startswith("compiled: 1 program set(s)")
    _assert_close(got, dk.grad(lambda u, s: J(u, s, False), argnums=(0, 1))(u0, s))


def test_a_trajectory_buffer_filled_by_at_i_set_compiles(backend, to_backend):
    """traj.at[i].set(u) records each state into a buffer carried in the state (JAX style):
    one program set, the eager gradient (the overwritten zeros of traj get none)."""
    def J(u0, k, compile):
        def step(s, i, k):
            u, traj = s
            return smooth(u, k) - 0.01 * u ** 3, traj.at[i].set(u)

        s0 = (u0, dnp.zeros((N, W), like=u0))
        u, traj = dk.checkpoint.loop(step, s0, N, (k,), STORE_ALL, compile=compile)
        return dnp.sum(traj * dnp.asarray(OBS, like=u0)) + dnp.sum(u ** 2)

    u0 = to_backend(rng.standard_normal(W))
    got = dk.grad(lambda u, k: J(u, k, True), argnums=(0, 1))(u0, 0.2)
    assert dk.checkpoint.last_report().compiled.startswith("compiled: 1 program set(s)")
    _assert_close(got, dk.grad(lambda u, k: J(u, k, False), argnums=(0, 1))(u0, 0.2))
    prog = dk.make_program(lambda t, u, i: t.at[i].set(u))(OBS, OBS[0], np.asarray(2))
    np.testing.assert_array_equal(prog(OBS, OBS[0], np.asarray(-1))[-1], OBS[0])


def test_eager_indexing_is_unchanged(backend, to_backend):
    """Outside a program an integer index, traced or not, is data as before: getitem with
    a static index; gradients scatter-add into x."""
    x = to_backend(rng.standard_normal(6))
    idx = np.array([1, 1, 4])
    want = np.zeros(6)
    np.add.at(want, idx, 2 * to_numpy(x)[idx])
    np.testing.assert_allclose(to_numpy(dk.grad(lambda x: dnp.sum(x[idx] ** 2))(x)), want)
    t = to_backend(np.arange(6.0))
    np.testing.assert_allclose(to_numpy(dk.jvp(lambda x: x[idx], (x,), (t,))[1]), idx * 1.0)

    def f(x):  # a traced integer array used as an index: still a static getitem
        j = dnp.argsort(x)[:3]
        return dnp.sum(x[j] ** 2) + x[j[0]]

    order = np.argsort(to_numpy(x))
    want = np.zeros(6)
    want[order[:3]] = 2 * to_numpy(x)[order[:3]]
    want[order[0]] += 1
    np.testing.assert_allclose(to_numpy(dk.grad(f)(x)), want)
