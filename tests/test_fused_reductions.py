"""Fused sums and deferred readers (plugins/diffkit_numpy/fusion.py, issue 15): a sum over all
axes joins its group's loop, so its summand is never materialized, and agrees with np.sum
within 1e-13 of sum(|x|) (float64); an equation that cannot join a group but reads its values
runs right after the group's fused equation instead of splitting the group; a guard still ends
every group; the 2-D Burgers backward becomes one kernel holding one state."""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.core import pytree
from diffkit.core.program import Eqn, Guard, Program, Var
from diffkit.core.program_passes import peak_bytes
from diffkit.core.program_run import compile_program

pytest.importorskip("numba")
fusion = pytest.importorskip("diffkit_numpy.fusion")

RNG = np.random.default_rng(15)


def lowered(f, *args):
    """(unfused program, lowered program, unfused results, lowered results) of f at args."""
    p = dk.make_program(f)(*args).program
    q = fusion.lower_program(p)
    assert_ordered(q)
    return p, q, compile_program(p)(*args), compile_program(q)(*args)


def assert_ordered(q: Program) -> None:
    """Every value is made before it is read, and the program's outputs are made."""
    made = {v.n for v in q.ins}
    for item in q.body:
        reads = (item.var,) if type(item) is Guard else item.ins
        assert all(v.n in made for v in reads if type(v) is Var), item
        made |= {o.n for o in item.outs} if type(item) is Eqn else set()
    assert all(v.n in made for v in q.outs if type(v) is Var)


def names(q: Program) -> list[str]:
    return ["guard" if type(e) is Guard else e.prim.name for e in q.body]


def close_sum(got, want, summand, dtype) -> None:
    """got (the fused sum) has np.sum's type and agrees with it within the stated tolerance:
    1e-13 of sum(|x|) for float64 (NumPy's pairwise error is up to ~(16 + log2(n / 128)) ulp of
    it); for float32 the fused sum is the float64 sum rounded once, so 2 ulp of the exact."""
    assert type(got) is type(want) is np.dtype(dtype).type
    if dtype == np.float64:
        assert abs(got - want) <= 1e-13 * np.abs(summand).sum()
        assert abs(got - math.fsum(summand.ravel())) <= 1e-14 * np.abs(summand).sum()
    else:
        exact = math.fsum(summand.astype(np.float64).ravel())
        assert abs(float(got) - exact) <= 2 * np.finfo(np.float32).eps * abs(exact)


def summed(u, k):
    return (u * k - 1) * u


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", [((512, 512), None), ((512, 512), (1, 0)),
                                         ((1000,), -1), ((100,), 0), ((3, 5, 700), (0, -2, 2))],
                         ids=str)
def test_full_sum_joins_the_loop(dtype, shape, axis):
    u = RNG.standard_normal(shape).astype(dtype)
    p, q, want, got = lowered(lambda u, k: (dnp.sum(summed(u, k), axis=axis), u * k + 2), u, 0.3)
    assert names(p).count("sum") == 1 and names(q) == ["fused_elementwise"]
    assert [o.shape for o in q.body[0].outs] == [(), shape]  # the summand is not among them
    np.testing.assert_array_equal(got[1], want[1])
    close_sum(got[0], want[0], summed(u, 0.3), dtype)


def test_sum_of_non_contiguous_input():
    u = RNG.standard_normal((64, 600))[:, ::2]
    p = dk.make_program(lambda u: dnp.sum(u * u + 1))(np.ascontiguousarray(u)).program
    q = fusion.lower_program(p)
    assert names(q) == ["fused_elementwise"]
    close_sum(compile_program(q)(u)[0], compile_program(p)(u)[0], u * u + 1, np.float64)


@pytest.mark.parametrize("how", [{"axis": 0}, {"axis": 1}, {"keepdims": True}], ids=str)
def test_partial_sums_stay_unfused(how):
    u = RNG.random((40, 30))
    p, q, want, got = lowered(lambda u: dnp.sum(u * 2 + 1, **how) * 1.0, u)
    assert "sum" in names(q)
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # NumPy's, at inf - inf
@pytest.mark.parametrize("bad, want", [(np.inf, np.inf), (-np.inf, -np.inf), (np.nan, np.nan),
                                       ("both", np.nan)])
def test_sum_of_non_finite(bad, want):
    u = RNG.random(600)
    if bad == "both":
        u[[3, 400]] = np.inf, -np.inf
    else:
        u[300] = bad
    p, q, ref, got = lowered(lambda u: dnp.sum(u * 2 + 1), u)
    assert names(q) == ["fused_elementwise"]
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(ref[0], want)


def test_summand_read_outside_is_materialized():
    u = RNG.random((30, 20))
    p, q, want, got = lowered(lambda u: (dnp.sum(u * u + 1), dnp.cumsum(u * u + 1, axis=0)), u)
    assert names(q) == ["fused_elementwise", "cumsum"]
    assert sorted(o.shape for o in q.body[0].outs) == [(), (30, 20)]  # the sum, its summand
    np.testing.assert_array_equal(got[1], want[1])
    close_sum(got[0], want[0], u * u + 1, np.float64)


def split_reader(u, k):  # a partial sum reads a + 1; later members read a
    a = u * k
    m = dnp.sum(a + 1, axis=0)
    return a * a - u, m


def test_reader_outside_does_not_split_the_group():
    p, q, want, got = lowered(split_reader, RNG.random((50, 40)), 0.5)
    assert names(q) == ["fused_elementwise", "sum"]  # was fused, sum, fused: a materialized
    assert len(q.body[0].outs) == 2  # a + 1 (the sum reads it) and the result; a is not
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)


def reread(u, k):  # a deferred value (through another) read by a later member
    a = u * k + 1
    d = dnp.flip(dnp.cumsum(a, axis=0), 0)
    s = dnp.sqrt(a) - u  # joins a's group (sqrt: correctly rounded, bitwise NumPy's)
    return s * d  # ends it


def cross(u, k):  # a deferred 1-D value read by a 1-D group ends the 2-D group
    a = u * k + 1
    m = dnp.sum(a, axis=0)
    b = dnp.sqrt(a) - u
    return m * 2 + 1, b * b


def two_groups(u, w, k):  # a matmul reads two open groups (v reshaped: deferred too)
    big, v = u * k + 1, w * k - 1
    return (big @ v) * 2 - w, big * big - u


@pytest.mark.parametrize("f, want", [
    (reread, ["fused_elementwise", "cumsum", "flip", "multiply"]),
    (cross, ["fused_elementwise", "sum", "fused_elementwise", "multiply"]),
    (two_groups, ["fused_elementwise", "fused_elementwise", "reshape", "matmul", "reshape",
                  "fused_elementwise", "fused_elementwise"]),
], ids=lambda x: getattr(x, "__name__", ""))
def test_group_ends_where_a_deferred_value_is_needed(f, want):
    u = RNG.random((24, 24))
    args = (u, RNG.random(24), 0.5) if f is two_groups else (u, 0.5)
    p, q, ref, got = lowered(f, *args)
    assert names(q) == want
    for w, g in zip(ref, got, strict=True):
        np.testing.assert_array_equal(g, w)


def guarded(u, k):  # deferred readers before a guard: the guard still ends the group
    a = u * k + 1
    m = dnp.sum(a, axis=1)
    c = a * a - u
    b = c - 1 if dnp.max(c) > 0 else c + 1
    return b * u, m


def test_guard_ends_a_group_with_deferred_readers():
    p, q, want, got = lowered(guarded, RNG.random((30, 30)), 0.5)
    made = lambda body: {o.n for e in body if type(e) is Eqn for o in e.outs}  # noqa: E731
    gp, gq = names(p).index("guard"), names(q).index("guard")
    assert made(q.body[:gq]) <= made(p.body[:gp])  # nothing moved up across the guard
    assert not made(q.body[gq:]) & made(p.body[:gp])  # nor down
    assert names(q) == ["fused_elementwise", "sum", "max", "greater", "guard", "fused_elementwise"]
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)


def burgers2d_step(u, i, nu):  # benchmarks/bench_compiled.py's 2-D Burgers step
    h = 1.0 / u.shape[0]
    ux, uy, vx, vy = (dnp.roll(u, -1, 0), dnp.roll(u, -1, 1), dnp.roll(u, 1, 0),
                      dnp.roll(u, 1, 1))
    lap = (ux + vx + uy + vy - 4 * u) / (h * h)
    adv = u * ((ux - vx) + (uy - vy)) / (2 * h)
    return u + 1e-5 * (nu * lap - adv)


def burgers_backward() -> Program:
    """The backward program of a compiled, fused 2-D Burgers step at 512^2 (d state, d nu)."""
    from diffkit.checkpoint.compiled import CompiledStep
    from diffkit.checkpoint.executor import LoopIO

    x = np.arange(512) / 512
    u = 1.0 + 0.5 * np.sin(2 * np.pi * x)[:, None] * np.cos(2 * np.pi * x)[None, :]
    with dk.checkpoint.fuse_steps(True):
        cs = CompiledStep(LoopIO(), burgers2d_step, pytree.structure(u),
                          pytree.structure((0.01,)), 1, [0, 1], True)
        cs.taped([u, 0.01], 0)
    return cs.entries[0].programs[2]


def test_burgers2d_backward_is_one_kernel():
    p = burgers_backward()
    q = fusion.lower_program(p)
    assert names(p).count("sum") == 1 and names(q) == ["fused_elementwise"]
    args = [RNG.standard_normal(v.shape) if v.shape else 0.01 for v in p.ins]
    want, got = compile_program(p)(*args), compile_program(q)(*args)
    k = next(k for k, o in enumerate(p.outs) if o.shape == ())
    for j, (w, g) in enumerate(zip(want, got, strict=True)):
        if j != k:
            np.testing.assert_array_equal(g, w)
    summand = next(e.ins[0] for e in p.body if type(e) is Eqn and e.prim.name == "sum")
    x = compile_program(Program(p.ins, [summand], p.body))(*args)[0]
    close_sum(got[k], want[k], x, np.float64)
    state = 512 * 512 * 8
    assert sum(o.nbytes for o in q.body[0].outs) <= state + 8  # the cotangent and the sum
    # peak_bytes adds the largest output once more (a kernel's temporaries); a fused kernel
    # allocates none but a 2 KiB buffer. Unfused: 7 states; fused before issue 15: 6
    assert peak_bytes(q) <= 2 * state + 16 < peak_bytes(p) / 3
