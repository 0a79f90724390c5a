"""Fused NumPy programs (plugins/diffkit_numpy/fusion.py): elementwise chains and rolls as one
numba loop give the unfused program's values (bitwise for + - * /), never move an equation
across a guard, leave what they cannot fuse alone, hold fewer bytes, compile each kernel once
per process, and run only where `dk.checkpoint.fuse_steps` and the loop's length say."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import fuse
from diffkit.core.program import Eqn, Guard
from diffkit.core.program_passes import peak_bytes
from diffkit.core.program_run import compile_program
from diffkit.errors import CompileError, TransformError
from diffkit.testing import to_numpy

pytest.importorskip("numba")
fusion = pytest.importorskip("diffkit_numpy.fusion")

RNG = np.random.default_rng(0)
BIG = {"budget": {"memory": "1GiB"}}
TIGHT = {"budget": {"memory": "300KiB"}, "schedule": "revolve"}


def heat(u, k):
    return u + k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))


def burgers(u, nu):
    return u + 1e-3 * (nu * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))
                       - 0.5 * (dnp.roll(u * u, -1) - dnp.roll(u * u, 1)))


def burgers2d(u, nu):
    ux, uy, vx, vy = (dnp.roll(u, -1, 0), dnp.roll(u, -1, 1), dnp.roll(u, 1, 0),
                      dnp.roll(u, 1, 1))
    lap = ux + vx + uy + vy - 4 * u
    return u + 1e-3 * (nu * lap - u * ((ux - vx) + (uy - vy)) / 2)


def chain(u, k):
    return (dnp.tanh(dnp.sin(u) * dnp.exp(-u * u)) + dnp.sqrt(dnp.abs(u)) / 3
            + dnp.maximum(u, 0.1) - dnp.minimum(u, k) - u ** 3 + dnp.log1p(u * u)
            + dnp.square(dnp.cos(u)))


def reduced(u, k):  # a full sum joins the group; the product reading it starts another
    s = dnp.sum(u * u + k)
    return (u * 2 + 1) * s - u


def guarded(u, k):  # a guard in the middle: nothing moves across it
    v = heat(u, k) * 1.5
    if dnp.max(v) > 0:
        return v * v - 1
    return v + 1


def program(f, *args):
    return dk.make_program(f)(*args).program


def both(f, *args):
    """(unfused results, fused results, unfused program, fused program) of f at args."""
    p = program(f, *args)
    q = fusion.lower_program(p)
    return compile_program(p)(*args), compile_program(q)(*args), p, q


def fused_eqns(q) -> int:
    return sum(1 for e in q.body if type(e) is Eqn and e.prim is fusion.FUSED)


CORPUS = [
    (heat, (512,), 0.2), (burgers, (512,), 0.01), (burgers2d, (24, 16), 0.01),
    (chain, (200,), 0.3), (reduced, (100,), 0.5), (guarded, (64,), 0.2),
]


@pytest.mark.parametrize("f, shape, k", CORPUS, ids=lambda x: getattr(x, "__name__", ""))
@pytest.mark.parametrize("scalar", ["float", "0-d"])
def test_fused_equals_unfused(f, shape, k, scalar):
    u = RNG.uniform(0.1, 1.0, shape)
    arg = k if scalar == "float" else np.asarray(k)
    want, got, p, q = both(f, u, arg)
    assert fused_eqns(q) >= 1 and len(q.body) < len(p.body)
    for w, g in zip(want, got, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=0)
    if f not in (chain, reduced):  # + - * / only: the same operations in the same order
        # (reduced's sum is fused: compensated, not NumPy's pairwise, so its last bits may differ)
        assert all(np.array_equal(w, g) for w, g in zip(want, got, strict=True))
    u2 = RNG.uniform(0.1, 1.0, shape)  # new inputs through the same compiled kernels
    np.testing.assert_allclose(compile_program(q)(u2, arg)[0], compile_program(p)(u2, arg)[0],
                               rtol=1e-12, atol=0)


def test_rolled_chains_become_one_loop():
    _, _, p, q = both(burgers, RNG.random(512), 0.01)
    assert [e.prim.name for e in q.body] == ["fused_elementwise"]  # u*u rolled: recomputed
    _, _, _, q2 = both(burgers2d, RNG.random((24, 16)), 0.01)
    assert len(q2.body) == 1


def test_guard_and_reduction_bound_groups():
    _, _, p, q = both(guarded, RNG.random(64), 0.2)
    made = lambda body, stop: {o.n for e in body[:stop] if type(e) is Eqn for o in e.outs}  # noqa: E731
    gp = next(k for k, e in enumerate(p.body) if type(e) is Guard)
    gq = next(k for k, e in enumerate(q.body) if type(e) is Guard)
    before, after = made(p.body, gp), made(p.body, len(p.body)) - made(p.body, gp)
    assert made(q.body, gq) <= before and not made(q.body, gq) & after
    assert fused_eqns(q) == 2  # one group each side of the guard
    _, _, _, r = both(reduced, RNG.random(100), 0.5)
    assert [e.prim.name for e in r.body] == ["fused_elementwise", "fused_elementwise"]


def test_float32_and_strong_scalars():
    u = RNG.random(300).astype(np.float32)
    want, got, _, q = both(burgers, u, 0.01)
    assert fused_eqns(q) == 1 and got[0].dtype == np.float32
    assert np.array_equal(want[0], got[0])
    # a float64 0-d array is strong (NEP 50): u * k is float64, which a float32 group leaves
    want, got, _, q = both(lambda u, k: (u * 2.0 + 1.0) * k, u, np.asarray(0.5))
    assert got[0].dtype == want[0].dtype == np.float64
    np.testing.assert_array_equal(got[0], want[0])


def test_same_chain_two_dtypes():  # no constant names the dtype: the kernels still differ
    f = lambda u, v: u * v + u - v  # noqa: E731
    for dt in (np.float64, np.float32):
        u, v = RNG.random(50).astype(dt), RNG.random(50).astype(dt)
        want, got, _, q = both(f, u, v)
        assert fused_eqns(q) == 1 and got[0].dtype == dt
        np.testing.assert_array_equal(got[0], want[0])


def test_unfusible_left_alone():
    ints = program(lambda u: (u * 2 + 1) * 3, np.arange(10))
    cplx = program(lambda u: (u * 2 + 1) * 3, np.ones(10) * (1 + 1j))
    step = program(lambda u, i: (u * 2 + 1) * i, np.ones(10), np.asarray(3))  # int64 0-d
    for p in (ints, cplx):
        assert fusion.lower_program(p).body == p.body
    q = fusion.lower_program(step)  # u * 2 + 1 fused; the int64 operand's multiply not
    assert [e.prim.name for e in q.body] == ["fused_elementwise", "multiply"]
    args = (RNG.random(10), np.asarray(3))
    np.testing.assert_array_equal(compile_program(q)(*args)[0], compile_program(step)(*args)[0])


def test_non_contiguous_inputs():
    u = RNG.random(1024)[::2]
    p = program(burgers, np.ascontiguousarray(u), 0.01)
    q = fusion.lower_program(p)
    assert np.array_equal(compile_program(q)(u, 0.01)[0], compile_program(p)(u, 0.01)[0])


def test_peak_bytes_drop():
    _, _, p, q = both(burgers2d, RNG.random((64, 64)), 0.01)
    assert peak_bytes(q) < peak_bytes(p) / 2


def test_no_numba_no_fusion(monkeypatch):
    p = program(burgers, RNG.random(16), 0.01)
    monkeypatch.setattr(fusion, "_numba", [None])
    assert fusion.lower_program(p) is p
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises
    with pytest.raises(CompileError, match=r"fuse_steps: .*needs numba.*diffkit\[fast\]"):
        dk.checkpoint.fuse_steps(True)
    assert fuse.plan(10**6)[0] is False  # auto without numba: never


def test_fuse_steps_setting():
    with pytest.raises(TransformError, match="fuse_steps: fusion must be 'auto', True or "
                                             "False, got 'yes'"):
        dk.checkpoint.fuse_steps("yes")
    with dk.checkpoint.fuse_steps("off"):
        assert fuse.plan(10**6) == (False, None)
    with dk.checkpoint.fuse_steps("auto"):  # runs counted toward compiling kernels
        assert fuse.plan(4000) == (True, 4000)
        assert fuse.plan(None)[0] is False  # a while_loop: only with True
    with dk.checkpoint.fuse_steps(True):  # every kernel compiled now
        assert fuse.plan(None) == fuse.plan(1) == (True, None)


def burgers_step(u, i, nu):
    return burgers(u, nu) + 1e-4 * dnp.tanh(u)


def grad_loop(budget, n=40, loop="loop"):
    def J(u0, nu):
        if loop == "loop":
            u = dk.checkpoint.loop(burgers_step, u0, n, (nu,), budget, compile=True)
        else:
            u = dk.checkpoint.while_loop(lambda u, i, nu: i < n, burgers_step, u0, (nu,),
                                         budget, compile=True)
        return dnp.sum(u * u)

    return J


@pytest.mark.parametrize("budget", [BIG, TIGHT], ids=["store-all", "revolve"])
def test_loop_gradients_fused_equal_unfused(backend, to_backend, budget):
    u0 = to_backend(np.sin(np.linspace(0, 2 * np.pi, 256, endpoint=False)) + 1.2)
    J = grad_loop(budget)
    with dk.checkpoint.fuse_steps(False):
        want = dk.grad(J, (0, 1))(u0, 0.01)
        assert "fused" not in dk.checkpoint.last_report().compiled
    with dk.checkpoint.fuse_steps(True):
        got = dk.grad(J, (0, 1))(u0, 0.01)
        how = dk.checkpoint.last_report().compiled
    assert how.startswith("compiled:") and how.endswith(", fused") == (backend == "numpy"), how
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(to_numpy(g), to_numpy(w), rtol=1e-12, atol=0)


def test_kernel_cache_reused():
    u0 = np.cos(np.linspace(0, 1, 256)) + 1.0
    with dk.checkpoint.fuse_steps(True):
        dk.grad(grad_loop(BIG), (0, 1))(u0, 0.01)
        before = fusion.compilations()
        dk.grad(grad_loop(BIG, n=30), (0, 1))(u0 * 1.1, 0.02)  # an L-BFGS iteration
    assert fusion.compilations() == before


def test_auto_policy_and_while_loop(monkeypatch):
    u0 = np.cos(np.linspace(0, 1, 200)) + 1.0  # a size no other test compiled kernels for
    monkeypatch.setattr(fusion, "HOT_RUNS", 321)  # > 40 steps x the step's 4 programs x 2
    hows = []
    with dk.checkpoint.fuse_steps("auto"):
        dk.grad(grad_loop(BIG, loop="while"), (0, 1))(u0, 0.01)
        assert "fused" not in dk.checkpoint.last_report().compiled  # length unknown
        while len(hows) < 9 and "fused" not in "".join(hows[-1:]):  # 9 x 40 > 321
            dk.grad(grad_loop(BIG), (0, 1))(u0, 0.01)  # an optimizer's iterations
            hows.append(dk.checkpoint.last_report().compiled)
    assert len(hows) > 2 and hows[-1].endswith(", fused"), hows
    with dk.checkpoint.fuse_steps(True):
        got = dk.grad(grad_loop(BIG, loop="while"), (0, 1))(u0, 0.01)
        assert dk.checkpoint.last_report().compiled.endswith(", fused")
    want = dk.grad(grad_loop(BIG), (0, 1))(u0, 0.01)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=0)


def test_hvp_through_fused_loop_binds_unfused():
    u0 = np.cos(np.linspace(0, 1, 128)) + 1.0
    t = np.sin(np.arange(128.0))
    f = lambda u: grad_loop(BIG, n=20)(u, 0.01)  # noqa: E731
    with dk.checkpoint.fuse_steps(False):
        want = dk.hvp(f, (u0,), (t,))
    with dk.checkpoint.fuse_steps(True):
        got = dk.hvp(f, (u0,), (t,))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_loop_working_set_sees_fused_programs():
    u0 = RNG.uniform(0.5, 1.0, (48, 48))
    step = lambda u, i, nu: burgers2d(u, nu)  # noqa: E731
    J = lambda u, nu: dnp.sum(dk.checkpoint.loop(step, u, 10, (nu,), BIG, compile=True))  # noqa: E731
    sets = {}
    for mode in (False, True):
        with dk.checkpoint.fuse_steps(mode):
            dk.grad(J)(u0, 0.01)
        sets[mode] = dk.checkpoint.last_report().reverse_bytes
    assert sets[True] <= sets[False] - 3 * u0.nbytes  # the unfused programs' temporaries
