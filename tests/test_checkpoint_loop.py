"""Checkpointed loops: exact gradients within the planned memory, every transform, storage."""

from __future__ import annotations

import os
import sys
import tracemalloc

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import CheckpointStorageError, TransformError
from diffkit.testing import to_numpy

N, STEPS = 2000, 300


def burgers_step(u, i, nu):
    """Viscous Burgers, periodic, explicit: diffusion minus advection (conservative form)."""
    lap = dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)
    flux = 0.5 * u * u
    return u + nu * lap - 0.05 * (dnp.roll(flux, -1) - dnp.roll(flux, 1))


def misfit(budget, n=STEPS):
    def J(u0, nu):
        u = dk.checkpoint.loop(burgers_step, u0, n, (nu,), budget=budget)
        return dnp.sum(u * dnp.sin(u))

    return J


def initial(rng=0, n=N):
    x = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return 0.5 * np.sin(x) + 0.05 * np.random.default_rng(rng).standard_normal(n)


BIG = {"budget": {"memory": "4GiB"}}


def store_all_need(u0, n=STEPS):
    dk.grad(misfit(BIG, n))(u0, 0.1)
    rep = dk.checkpoint.last_report()
    assert type(rep.plan.schedule).__name__ == "StoreAll"
    return rep.plan.peak_bytes


@pytest.mark.parametrize(("schedule", "fraction"),
                         [("auto", 20), ("revolve", 20), ("periodic", 6)])
def test_checkpointed_gradient_equals_store_all_and_keeps_its_memory_promise(schedule, fraction):
    u0, nu = initial(), 0.1
    g_all = dk.grad(misfit(BIG), argnums=(0, 1))(u0, nu)
    budget = {"budget": {"memory": store_all_need(u0) // fraction}, "schedule": schedule}

    def J(u0, nu):  # a loss that keeps nothing big on the caller's tape
        return dnp.sum(dk.checkpoint.loop(burgers_step, u0, STEPS, (nu,), budget=budget))

    dk.grad(J)(u0, nu)  # warm up: first calls allocate caches
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, f_vjp = dk.vjp(J, u0, nu)
        g = f_vjp(1.0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    rep = dk.checkpoint.last_report()
    assert type(rep.plan.schedule).__name__ != "StoreAll"
    assert schedule == "auto" or type(rep.plan.schedule).__name__.lower() == schedule
    assert rep.advances == rep.plan.forward_advances > STEPS  # recomputation happened
    assert peak <= rep.plan.peak_bytes <= budget["budget"]["memory"]
    g_ck = dk.grad(misfit(budget), argnums=(0, 1))(u0, nu)
    for a, b in zip(g_ck, g_all, strict=True):
        assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(b))
    assert g[0].shape == u0.shape


def test_taylor_remainder_falls_as_h_squared(to_backend):
    budget = {"budget": {"memory": "2MiB"}}
    J = misfit(budget, n=200)
    u0, nu = initial(1), 0.1
    du = np.random.default_rng(2).standard_normal(N) * 0.1
    dnu = 0.01
    j0 = float(J(to_backend(u0), nu))
    gu, gnu = dk.grad(J, argnums=(0, 1))(to_backend(u0), nu)
    slope = float(np.dot(to_numpy(gu), du) + float(gnu) * dnu)
    rem = [abs(float(J(to_backend(u0 + h * du), nu + h * dnu)) - j0 - h * slope)
           for h in (1e-2, 5e-3, 2.5e-3)]
    ratios = [rem[0] / rem[1], rem[1] / rem[2]]
    assert all(3.5 < r < 4.5 for r in ratios), ratios


def test_jvp_hvp_and_reverse_over_forward(to_backend):
    budget = {"budget": {"memory": "1MiB"}}
    J = misfit(budget, n=60)
    u0, nu = to_backend(initial(3, n=200)), 0.1
    du = to_backend(np.random.default_rng(4).standard_normal(200))
    # forward mode through the loop against central differences
    _, t = dk.jvp(lambda u: J(u, nu), (u0,), (du,))
    eps = 1e-6
    fd = (float(J(u0 + eps * du, nu)) - float(J(u0 - eps * du, nu))) / (2 * eps)
    assert float(t) == pytest.approx(fd, rel=1e-7)
    # Hessian-vector product (forward-over-reverse) against differences of gradients
    hv = dk.hvp(lambda u: J(u, nu), (u0,), (du,))
    g = dk.grad(lambda u: J(u, nu))
    fd_hv = to_numpy(g(u0 + eps * du) - g(u0 - eps * du)) / (2 * eps)
    np.testing.assert_allclose(to_numpy(hv), fd_hv, rtol=1e-5, atol=1e-7)
    # reverse-over-forward: grad of the directional derivative equals the same HVP
    rof = dk.grad(lambda u: dk.jvp(lambda v: J(v, nu), (u,), (du,))[1])(u0)
    np.testing.assert_allclose(to_numpy(rof), to_numpy(hv), rtol=1e-9, atol=1e-11)


def test_gradient_flows_to_pytree_state_and_args_with_integer_leaves():
    def step(state, i, params):
        x, v, count = state["x"], state["v"], state["count"]
        a = -params["k"] * x - params["c"] * v
        return {"x": x + 0.01 * v, "v": v + 0.01 * a, "count": count + 1}

    def J(x0, params, budget):
        s = dk.checkpoint.loop(step, {"x": x0, "v": x0 * 0.0, "count": np.int64(0)}, 150,
                               (params,), budget=budget)
        assert int(s["count"]) == 150
        return dnp.sum(s["x"] ** 2)

    x0, params = np.array([1.0, -0.5]), {"k": 2.0, "c": 0.1}
    g_small = dk.grad(J, argnums=(0, 1))(x0, params, {"budget": {"memory": "48KiB"}})
    assert type(dk.checkpoint.last_report().plan.schedule).__name__ == "Revolve"
    g_all = dk.grad(J, argnums=(0, 1))(x0, params, BIG)
    np.testing.assert_allclose(g_small[0], g_all[0], rtol=1e-12)
    assert float(g_small[1]["k"]) == pytest.approx(float(g_all[1]["k"]), rel=1e-12)


def test_closing_over_a_traced_value_is_an_error_naming_args():
    def J(u0, nu):
        return dnp.sum(dk.checkpoint.loop(lambda u, i: burgers_step(u, i, nu), u0, 5))

    for argnums in (1, (0, 1)):
        with pytest.raises(TransformError, match=r"closes over a value being differentiated"
                                                 r".*Pass that value in `args=`"):
            dk.grad(J, argnums=argnums)(initial(n=50), 0.1)
    with pytest.raises(TransformError, match="closes over a value being differentiated"):
        dk.jvp(lambda nu: J(initial(n=50), nu), (0.1,), (1.0,))


def test_while_loop_online_gradient_matches_unrolled(to_backend):
    def cond(state, i, tol):
        return dnp.max(dnp.abs(state)) > tol

    def step(state, i, tol):
        return state * 0.97 - 0.001 * dnp.sin(state)

    def J(x0, budget):
        return dnp.sum(dk.checkpoint.while_loop(cond, step, x0, (1e-2,), budget=budget) ** 2)

    x0 = to_backend(np.array([0.8, -0.3, 0.5]))
    g = dk.grad(J)(x0, {"budget": {"memory": "24KiB"}})
    rep = dk.checkpoint.last_report()
    assert type(rep.plan.schedule).__name__ == "Online" and rep.reversed == rep.n_steps > 100

    def unrolled(x):
        i = 0
        while cond(x, i, 1e-2):
            x, i = step(x, i, 1e-2), i + 1
        return dnp.sum(x ** 2)

    np.testing.assert_allclose(to_numpy(g), to_numpy(dk.grad(unrolled)(x0)), rtol=1e-12)
    ones = to_backend(np.ones(3))
    _, t = dk.jvp(lambda x: J(x, {"budget": {"memory": "24KiB"}}), (x0,), (ones,))
    assert float(t) == pytest.approx(float(np.sum(to_numpy(g))), rel=1e-10)


def test_vjp_function_can_be_called_twice():
    J = lambda u0: dk.checkpoint.loop(lambda u, i: dnp.sin(u), u0, 30,
                                      budget={"budget": {"memory": "24KiB"}})
    jac = dk.jacrev(J)(np.array([0.1, 0.2]))
    jac_all = dk.jacrev(lambda u0: dk.checkpoint.loop(lambda u, i: dnp.sin(u), u0, 30))(
        np.array([0.1, 0.2]))
    np.testing.assert_allclose(jac, jac_all, rtol=1e-13)


def disk_budget(tmp_path, memory="64KiB"):
    """A small RAM tier and a cheap disk, so that MultiLevel puts snapshots on disk."""
    return {"budget": {"memory": memory, "disk": {"path": str(tmp_path), "size": "64MiB"}},
            "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}


def test_disk_tier_gives_the_same_gradient_and_cleans_up(tmp_path, to_backend):
    u0 = to_backend(initial(5, n=300))
    g_all = dk.grad(misfit(BIG, n=120))(u0, 0.1)
    g_disk = dk.grad(misfit(disk_budget(tmp_path), n=120))(u0, 0.1)
    assert type(g_disk) is type(u0)  # snapshots come back from disk on their backend
    np.testing.assert_allclose(to_numpy(g_disk), to_numpy(g_all), rtol=1e-12, atol=1e-14)
    rep = dk.checkpoint.last_report()
    assert rep.peak_snapshots.get("disk", 0) > 0 and rep.disk_written > 0
    assert rep.disk_read > 0
    assert os.listdir(tmp_path) == []


def test_disk_snapshots_are_removed_when_the_gradient_fails(tmp_path):
    calls = {"n": 0}

    def flaky(u, i, nu):
        calls["n"] += 1
        if calls["n"] > 200:
            raise RuntimeError("simulated failure in the reverse sweep")
        return burgers_step(u, i, nu)

    def J(u0, nu):
        return dnp.sum(dk.checkpoint.loop(flaky, u0, 120, (nu,), budget=disk_budget(tmp_path)))

    with pytest.raises(RuntimeError, match="simulated failure"):
        dk.grad(J)(initial(6, n=300), 0.1)
    assert os.listdir(tmp_path) == []


def test_corrupted_snapshot_is_a_clear_error_naming_the_file(tmp_path, monkeypatch):
    storage = sys.modules["diffkit.checkpoint.storage"]
    real_write = storage.Storage._write

    def write_then_corrupt(self, key, state):
        real_write(self, key, state)
        path = self.files[key].path
        with open(path, "r+b") as fh:
            fh.seek(-20, os.SEEK_END)
            fh.write(b"\x00" * 8)

    monkeypatch.setattr(storage.Storage, "_write", write_then_corrupt)
    with pytest.raises(CheckpointStorageError, match=r"snapshot .*state_\d+\.npy is corrupted"):
        dk.grad(misfit(disk_budget(tmp_path), n=120))(initial(7, n=300), 0.1)
    assert os.listdir(tmp_path) == []


def test_budget_too_small_fails_before_running():
    from diffkit.errors import BudgetError

    with pytest.raises(BudgetError, match="cannot hold one saved state"):
        dk.grad(misfit({"budget": {"memory": "24KiB"}}))(initial(), 0.1)


def test_plain_call_just_runs_and_torch_backend_agrees(to_backend):
    u0 = initial(8, n=100)
    J = misfit({"budget": {"memory": "64KiB"}}, n=80)
    g = dk.grad(J)(to_backend(u0), 0.1)
    g_np = dk.grad(J)(u0, 0.1)
    np.testing.assert_allclose(to_numpy(g), g_np, rtol=1e-11, atol=1e-13)
    assert type(g) is type(to_backend(u0))


@pytest.mark.parametrize("kind", ["loop", "while_loop"])
def test_python_numbers_in_the_state_are_constants(kind):
    def run(x):
        step = lambda s, i: (s[0] + 1.0, s[1] * 2.0, s[2] + 1)
        if kind == "loop":
            s = dk.checkpoint.loop(step, (0.0, x, 0), 3)
        else:
            s = dk.checkpoint.while_loop(lambda s, i: i < 3, step, (0.0, x, 0))
        assert s[2] == 3 and float(s[0]) == 3.0
        return s[0] * s[1]

    assert float(dk.grad(run)(1.5)) == 24.0


def test_a_step_that_changes_the_state_structure_is_a_clear_error():
    def J(x0):
        return dnp.sum(dk.checkpoint.loop(lambda s, i: (s, s), x0, 3)[0])

    with pytest.raises(TransformError, match="changed the structure of the state at step 0"):
        dk.grad(J)(np.ones(2))


def kept_arrays(tape):
    """The distinct arrays a tape keeps for its VJPs."""
    seen = {}
    for prim, args, _, ans, _ in tape.nodes:
        if prim is None:
            continue
        for v in [*(args or ()), *(ans if isinstance(ans, tuple) else (ans,))]:
            if isinstance(v, np.ndarray) and v.size > 1:
                seen[id(v)] = v
    return list(seen.values())


def test_a_step_tape_keeps_only_what_its_rules_read():
    u = initial(9, n=64)

    def heat(u, i, r):
        return u + r * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))

    _, f = dk.vjp(lambda u: heat(u, 0, 0.25), u)
    assert kept_arrays(f.tape) == []  # a linear step needs no array at all
    _, f = dk.vjp(lambda u: burgers_step(u, 0, 0.1), u)
    # the step's rules read u (for u*u) and the flux difference (for the flux): 2 arrays,
    # where keeping every input and output of every node would hold 12
    assert len(kept_arrays(f.tape)) <= 3


def held_per_step(step, u0, n, args):
    """Bytes a store-all gradient holds per step once its forward sweep is done."""
    def J(u):
        return dnp.sum(dk.checkpoint.loop(step, u, n, args, budget=BIG))

    dk.grad(J)(u0)  # warm up caches
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, f_vjp = dk.vjp(J, u0)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert type(dk.checkpoint.last_report().plan.schedule).__name__ == "StoreAll"
    return held / n


def test_store_all_keeps_per_step_only_what_the_rules_need():
    u0 = initial(10, n=1000)  # 8 KB states

    def heat(u, i, r):
        return u + r * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))

    # a linear step's rules read no array: only the bookkeeping of its 7 nodes (~4 KB)
    assert held_per_step(heat, u0, 400, (0.25,)) < 0.75 * u0.nbytes
    # Burgers' rules read 2 arrays (u for the flux, the flux difference); plus bookkeeping
    assert held_per_step(burgers_step, u0, 400, (0.1,)) < 2 * u0.nbytes + 12 * 1024


def test_memory_promise_holds_when_many_small_tapes_are_kept():
    """Periodic keeps a segment of tapes; for a linear step each is pure bookkeeping (2000
    steps at a sixth of store-all's peak keep 57 tapes at a time)."""
    u0 = initial(11, n=1000)

    def heat(u, i, r):
        return u + r * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))

    def J(u, budget):  # eager tapes: a compiled linear step keeps nothing but its closure
        return dnp.sum(dk.checkpoint.loop(heat, u, 2000, (0.25,), budget=budget,
                                          compile=False))

    dk.grad(J)(u0, BIG)
    need = dk.checkpoint.last_report().plan.peak_bytes
    budget = {"budget": {"memory": need // 6}, "schedule": "periodic"}
    dk.grad(J)(u0, budget)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, f_vjp = dk.vjp(lambda u: J(u, budget), u0)
        f_vjp(1.0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    rep = dk.checkpoint.last_report()
    assert rep.plan.schedule.tapes > 10
    assert peak <= rep.plan.peak_bytes <= budget["budget"]["memory"]


def test_progress_line_and_report_say_what_was_done(capsys):
    J = lambda u0: dnp.sum(dk.checkpoint.loop(burgers_step, u0, 50, (0.1,),
                                              budget={"budget": {"memory": "96KiB"}},
                                              progress=True))
    dk.grad(J)(initial(12, n=200))
    err = capsys.readouterr().err
    assert "diffkit checkpoint: forward" in err and "reverse 50/50 steps" in err
    report = str(dk.checkpoint.last_report())
    assert "planned" in report and "forward advances" in report
    dk.grad(lambda u0: dnp.sum(dk.checkpoint.loop(burgers_step, u0, 50, (0.1,))))(
        initial(12, n=200))
    assert capsys.readouterr().err == ""  # off by default
