"""Forward mode through checkpointed loops (issue 15): with nothing traced below the JVP, the
loop over (state, tangent) pairs replays the pair step's compiled program. It gives the eager
forward mode's tangents (compile=False) under jvp and jacfwd through loop, while_loop and
scan, says how it ran (`last_forward_report`), and every step a program cannot hold runs
eagerly with the eager result, or with compile=True is a CompileError naming the cause."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import CompileError, TransformError
from diffkit.testing import to_numpy

N, STEPS = 16, 12


def lap(u):
    return dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)


def heat(u, i, k):
    return u + k * lap(u) - 0.01 * u * u


def burgers(u, i, nu):
    return u - 0.05 * u * (u - dnp.roll(u, 1)) + nu * lap(u)


def index_as_data(u, i, k):
    return heat(u, i, k) + 0.001 * u * i


def every_third(u, i, k):
    """A Python branch on the step index: two programs, chosen by a guard."""
    if i % 3 == 0:
        return heat(u, i, k) * 0.99
    return heat(u, i, k)


def pytree_state(s, i, k):
    u = heat(s["u"], i, k)
    return {"u": u, "acc": s["acc"] + dnp.sum(u * u) * k}


@dk.custom_vjp
def damp(u):
    return 0.99 * u


damp.defvjp(lambda u: (0.99 * u, None), lambda _res, g: (0.99 * g,))


@dk.custom_jvp
def soft(u):
    return dnp.tanh(u)


soft.defjvp(lambda p, t: (dnp.tanh(p[0]), t[0] * (1 - dnp.tanh(p[0]) ** 2)))


def custom_rules(u, i, k):
    """Under a JVP a custom_vjp is its function and a custom_jvp's rule is primitives: both
    go into the program."""
    return damp(heat(u, i, k)) + 0.01 * soft(u)


STEPS_FNS = [heat, burgers, index_as_data, every_third, pytree_state, custom_rules]
PROGRAMS = {every_third: 2}  # program sets traced; the others: 1


def initial(n=N):
    return np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False)) * 0.5 + 1.0


def state_of(step, u):
    return {"u": u, "acc": u[0] * 0.0} if step is pytree_state else u


def run(kind, step, compile):
    """f(u0, k): the final state of `kind` ("loop", "while_loop", "scan": also its ys)."""
    def f(u0, k):
        s0 = state_of(step, u0)
        if kind == "loop":
            return dk.checkpoint.loop(step, s0, STEPS, (k,), compile=compile)
        if kind == "while_loop":
            return dk.checkpoint.while_loop(lambda s, i, k: i < STEPS, step, s0, (k,),
                                            compile=compile)

        def scan_step(s, x, i, k):
            s = step(s, i, k)
            return s, dnp.sum(pytree_u(s) * x)

        xs = dnp.linspace(0.5, 1.5, STEPS)
        return dk.checkpoint.scan(scan_step, s0, xs, (k,), compile=compile)

    return f


def pytree_u(s):
    return s["u"] if isinstance(s, dict) else s


def assert_close(a, b, rtol=1e-12):
    for x, y in zip(dk.tree.leaves(a), dk.tree.leaves(b), strict=True):
        np.testing.assert_allclose(to_numpy(x), to_numpy(y), rtol=rtol, atol=1e-14)


def assert_compiled(kind, programs=1):
    rep = dk.checkpoint.last_forward_report()
    assert rep.loop == f"checkpoint.{kind}" and rep.n_steps == STEPS
    assert rep.compiled.startswith(f"compiled: {programs} program set(s)"), rep.compiled


KINDS = ["loop", "while_loop", "scan"]


@pytest.mark.parametrize("step", STEPS_FNS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("kind", KINDS)
def test_jvp_equals_the_eager_forward_mode(kind, step, to_backend):
    u0, k = to_backend(initial()), to_backend(np.float64(0.2))
    tu, tk = to_backend(np.linspace(-1.0, 1.0, N)), to_backend(np.float64(0.5))
    compiled = dk.jvp(run(kind, step, True), (u0, k), (tu, tk))
    assert_compiled(kind, PROGRAMS.get(step, 1))
    eager = dk.jvp(run(kind, step, False), (u0, k), (tu, tk))
    assert dk.checkpoint.last_forward_report().compiled == "eager (compile=False)"
    assert_close(compiled, eager)


@pytest.mark.parametrize("kind", KINDS)
def test_jvp_matches_finite_differences(kind, to_backend):
    u0, tu = initial(), np.cos(np.arange(N))
    f = run(kind, burgers, "auto")
    _, t = dk.jvp(f, (to_backend(u0), to_backend(0.1)), (to_backend(tu), to_backend(1.0)))
    assert_compiled(kind)
    h = 1e-6
    hi = f(to_backend(u0 + h * tu), to_backend(0.1 + h))
    lo = f(to_backend(u0 - h * tu), to_backend(0.1 - h))
    fd = dk.tree.map(lambda a, b: (to_numpy(a) - to_numpy(b)) / (2 * h), hi, lo)
    assert_close(t, fd, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_jacfwd_equals_the_eager_one(kind, to_backend):
    u0 = to_backend(initial(6))

    def jac(compile):
        f = run(kind, every_third, compile)
        return dk.jacfwd(lambda u: f(u, 0.2))(u0)

    compiled = jac(True)
    assert_compiled(kind, 2)
    assert_close(compiled, jac(False))


def test_jvp_of_jvp_compiles_the_innermost_pair_loop(to_backend):
    u0, t = to_backend(initial(8)), to_backend(np.cos(np.arange(8)))

    def second(compile):
        f = lambda u: run("loop", burgers, compile)(u, 0.1)
        return dk.jvp(lambda u: dk.jvp(f, (u,), (t,))[1], (u0,), (t,))[1]

    compiled = second(True)
    assert_compiled("loop")
    assert_close(compiled, second(False))


def test_a_gradient_below_runs_the_pair_loop_on_the_executor(to_backend):
    """jacfwd(jacrev) and jvp-of-grad: the pair loop is reversed (compiled there too)."""
    u0, t = to_backend(initial(6)), to_backend(np.linspace(-1.0, 1.0, 6))

    def J(compile):
        return lambda u: dnp.sum(run("loop", heat, compile)(u, 0.2) ** 2)

    assert_close(dk.jacfwd(dk.jacrev(J(True)))(u0), dk.jacfwd(dk.jacrev(J(False)))(u0))
    got = dk.jvp(dk.grad(J(True)), (u0,), (t,))[1]
    assert dk.checkpoint.last_report().compiled.startswith("compiled")
    assert_close(got, dk.jvp(dk.grad(J(False)), (u0,), (t,))[1])


# -- steps a program cannot hold: eager with the eager result, or CompileError ----------------

def random_kick(u, i, k):
    return heat(u, i, k) + 0.001 * np.random.standard_normal(N)


def float_of_arg(u, i, k):
    return heat(u, i, float(k))


OBS = [0.01 * j for j in range(STEPS)]


def list_at_i(u, i, k):
    return heat(u, i, k) + OBS[i] * u


def custom_vjp_of_arg(u, i, k):
    """A custom_vjp of a value no JVP traces: a program cannot hold its reverse rule."""
    return heat(u, i, damp(k))


def nested_loop(u, i, k):
    return dk.checkpoint.loop(heat, u, 2, (k,))


ATTACKS = [(random_kick, "different programs: it draws random numbers"),
           (float_of_arg, r"float\(x\) turns a traced floating-point value"),
           (list_at_i, "guards took more than 8 different outcomes"),
           (custom_vjp_of_arg, "custom_vjp 'damp' is called inside it"),
           (nested_loop, "checkpoint.loop is called inside it")]


@pytest.mark.parametrize(("step", "why"), ATTACKS, ids=lambda a: getattr(a, "__name__", ""))
@pytest.mark.parametrize("kind", KINDS)
def test_attacks_run_eagerly_or_raise_with_compile_true(kind, step, why, to_backend):
    u0, tu = to_backend(initial()), to_backend(np.ones(N))
    k = to_backend(np.float64(0.2))

    def tangents(compile):
        np.random.seed(7)
        return dk.jvp(lambda u: run(kind, step, compile)(u, k), (u0,), (tu,))

    auto = tangents("auto")
    rep = dk.checkpoint.last_forward_report()
    assert rep.compiled.startswith("eager (not compiled:"), rep.compiled
    assert rep.n_steps == STEPS
    assert_close(auto, tangents(False), rtol=0)
    with pytest.raises(CompileError, match=f"compile=True: the step function of "
                                           f"checkpoint.{kind} .*{why}"):
        tangents(True)


def test_an_in_place_update_leaves_state0_untouched(to_backend):
    def step(u, i, k):
        u += k * lap(u)
        return u

    u0, keep = to_backend(initial()), initial()
    f = lambda c: dk.jvp(lambda u: dk.checkpoint.loop(step, u, STEPS, (0.2,), compile=c),
                         (u0,), (u0,))
    compiled = f(True)
    assert_compiled("loop")
    assert_close(compiled, f(False), rtol=0)
    np.testing.assert_array_equal(to_numpy(u0), keep)


def test_closing_over_the_differentiated_value_is_an_error(to_backend):
    u0 = to_backend(initial())
    for compile in (True, "auto", False):
        f = lambda u, k, c=compile: dk.checkpoint.loop(lambda s, i: heat(s, i, k), u, STEPS,
                                                       compile=c)
        with pytest.raises(TransformError, match="closes over a value being differentiated"):
            dk.jvp(f, (u0, to_backend(0.2)), (u0, to_backend(1.0)))


def test_compile_switches_and_rng_replay(to_backend):
    u0 = to_backend(initial())
    f = lambda u, **kw: dk.checkpoint.loop(heat, u, STEPS, (0.2,), **kw)
    with dk.checkpoint.compile_steps(False):
        dk.jvp(f, (u0,), (u0,))
    assert dk.checkpoint.last_forward_report().compiled == "eager (compile=False)"
    dk.jvp(lambda u: f(u, preserve_rng_state=True), (u0,), (u0,))
    assert dk.checkpoint.last_forward_report().compiled == "eager (compile=False)"
    with pytest.raises(CompileError, match=r"compile=True cannot replay a step's random"):
        dk.jvp(lambda u: f(u, preserve_rng_state=True, compile=True), (u0,), (u0,))


def test_an_untransformed_loop_stays_eager(to_backend):
    """Its side effects (a print, a counter) run at every step; under jvp the compiled pair
    step runs the Python only when it is traced (twice: the determinism check)."""
    calls = []

    def step(u, i, k):
        calls.append("called")  # int(i) would be a guard on i: a program per step
        return heat(u, i, k)

    u0 = to_backend(initial())
    dk.checkpoint.loop(step, u0, STEPS, (0.2,))
    assert len(calls) == STEPS
    calls.clear()
    dk.jvp(lambda u: dk.checkpoint.loop(step, u, STEPS, (0.2,)), (u0,), (u0,))
    assert len(calls) == 2
    assert_compiled("loop")
