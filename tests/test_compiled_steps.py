"""Compiled loop steps (issue 15): the programs give the eager path's gradients under every
transform, replay guards and the step index correctly, and every way a careless step could
make a program wrong either runs the step eagerly (with the reason in the report) or, with
compile=True, is an error naming it."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import CompileError, ConcretizationError, TransformError
from diffkit.testing import to_numpy

N, STEPS = 64, 40
BIG = {"budget": {"memory": "1GiB"}}
TIGHT = {"budget": {"memory": "2MiB"}, "schedule": "revolve"}


def heat(u, i, k):
    return u + k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)) - 0.01 * u * u


def forced(u, i, k):
    """The step index as an array operand: a time-dependent forcing."""
    return dnp.add(heat(u, i, k), 0.01 * dnp.sin(i * 0.1 + dnp.arange(u.shape[0]) * 0.2))


def every_fifth(u, i, k):
    """A Python branch on the step index: two programs, chosen by a guard."""
    if i % 5 == 4:
        return heat(u, i, k) * 0.99
    return heat(u, i, k)


def clipped(u, i, k):
    """A Python branch on a traced value: re-traced when it changes mid-run."""
    v = heat(u, i, k)
    if dnp.max(v) > 1.02:
        return v * 0.98
    return v


def pytree_state(s, i, k):
    u, acc = s["u"], s["acc"]
    u = heat(u, i, k)
    return {"u": u, "acc": acc + dnp.sum(u * u) * k}


def initial(n=N):
    return np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False)) * 0.5 + 1.0


def loss(step, budget, compile, n=STEPS):
    def J(u0, k):
        state0 = {"u": u0, "acc": u0[0] * 0.0} if step is pytree_state else u0
        out = dk.checkpoint.loop(step, state0, n, (k,), budget, compile=compile)
        if step is pytree_state:
            return out["acc"] + dnp.sum(out["u"] ** 2)
        return dnp.sum(out ** 2)

    return J


STEP_FUNCTIONS = [heat, forced, every_fifth, clipped, pytree_state]


@pytest.mark.parametrize("step", STEP_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("budget", [BIG, TIGHT], ids=["store-all", "revolve"])
def test_compiled_gradients_equal_the_eager_ones(step, budget, to_backend):
    u0, k = to_backend(initial()), to_backend(np.float64(0.2))
    eager = dk.grad(loss(step, budget, False), argnums=(0, 1))(u0, k)
    compiled = dk.grad(loss(step, budget, True), argnums=(0, 1))(u0, k)
    rep = dk.checkpoint.last_report()
    assert rep.compiled.startswith("compiled"), rep.compiled
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)


def test_guards_pick_the_program_of_each_branch():
    u0 = initial()
    dk.grad(loss(every_fifth, BIG, True))(u0, 0.2)
    assert "compiled: 2 program set(s)" in dk.checkpoint.last_report().compiled
    dk.grad(loss(heat, BIG, True))(u0, 0.2)
    assert "compiled: 1 program set(s)" in dk.checkpoint.last_report().compiled


@pytest.mark.parametrize("transform", ["jvp", "hvp", "jacrev", "jacfwd"])
def test_every_transform_through_a_compiled_loop(transform, to_backend):
    u0 = to_backend(initial(8))
    t = to_backend(np.linspace(-1.0, 1.0, 8))

    def run(compile):
        f = lambda u: dk.checkpoint.loop(forced, u, 12, (0.2,), TIGHT, compile=compile)
        J = lambda u: dnp.sum(f(u) ** 2)
        if transform == "jvp":
            return dk.jvp(f, (u0,), (t,))[1]
        if transform == "hvp":
            return dk.hvp(J, (u0,), (t,))
        return getattr(dk, transform)(f)(u0)

    np.testing.assert_allclose(to_numpy(run(True)), to_numpy(run(False)), rtol=1e-12,
                               atol=1e-14)


def test_while_loop_and_scan_compile_too(to_backend):
    u0 = to_backend(initial())

    def wl(compile):
        return lambda u: dnp.sum(dk.checkpoint.while_loop(
            lambda u, i, k: i < STEPS, heat, u, (0.2,), {"budget": {"memory": "2MiB"}},
            compile=compile) ** 2)

    g1 = dk.grad(wl(True))(u0)
    assert dk.checkpoint.last_report().compiled.startswith("compiled")
    np.testing.assert_allclose(to_numpy(g1), to_numpy(dk.grad(wl(False))(u0)), rtol=1e-12)

    xs = to_backend(np.linspace(0.0, 1.0, STEPS))

    def sc(compile):
        def step(u, x, i, k):
            u = heat(u, i, k) + 0.01 * x
            return u, dnp.sum(u * x)

        return lambda u, xs: dnp.sum(dk.checkpoint.scan(step, u, xs, (0.2,), TIGHT,
                                                        compile=compile)[1])

    g1 = dk.grad(sc(True), argnums=(0, 1))(u0, xs)
    assert dk.checkpoint.last_report().compiled.startswith("compiled")
    g0 = dk.grad(sc(False), argnums=(0, 1))(u0, xs)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)


# -- attacks: each either runs eagerly with its reason, or is refused with compile=True ----
def random_step(u, i, k):
    return heat(u, i, k) + 1e-3 * np.random.standard_normal(u.shape)


def float_step(u, i, k):
    return heat(u, i, k) * (1.0 + 0.0 * float(dnp.sum(u)))


def list_indexed(u, i, k):
    return heat(u, i, k) + FORCING[i]


FORCING = [0.001 * j for j in range(STEPS)]


def set_member(u, i, k):
    return heat(u, i, k) * (0.5 if i in {3, 17} else 1.0)


@dk.custom_vjp
def _halve_grad(x):
    return x


_halve_grad.defvjp(lambda x: (x, None), lambda _, g: (0.5 * g,))


def custom_rule(u, i, k):
    return _halve_grad(heat(u, i, k))


def nested_loop(u, i, k):
    return dk.checkpoint.loop(heat, u, 2, (k,))


ATTACKS = {  # step: what compile=True's error names
    random_step: "different programs: it draws random numbers",
    float_step: r"float\(x\) turns a traced floating-point value",
    list_indexed: "guards took more than 8 different outcomes.*pass it in args=",
    custom_rule: "custom_vjp '_halve_grad' is called inside it",
    nested_loop: "checkpoint.loop is called inside it",
}


@pytest.mark.parametrize("step", list(ATTACKS), ids=lambda f: f.__name__)
def test_what_a_program_cannot_replay_runs_eagerly_or_is_refused(step):
    u0 = initial()
    with pytest.raises(CompileError, match=ATTACKS[step]):
        dk.grad(loss(step, BIG, True))(u0, 0.2)
    if step is float_step:  # the eager path refuses it too, for the same reason
        with pytest.raises(ConcretizationError):
            dk.grad(loss(step, BIG, "auto"))(u0, 0.2)
        return
    state = np.random.get_state()
    got = dk.grad(loss(step, BIG, "auto"))(u0, 0.2)
    assert dk.checkpoint.last_report().compiled.startswith("eager (not compiled")
    np.random.set_state(state)
    want = dk.grad(loss(step, BIG, False))(u0, 0.2)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_set_lookup_on_the_step_index_is_guarded_by_value():
    """`i in {3, 17}` hashes i: its value is a guard, so each i needs its own program (past
    8 the step runs eagerly); never the program of another i."""
    u0 = initial()
    got = dk.grad(loss(set_member, BIG, "auto"))(u0, 0.2)
    assert "hash(x)" in dk.checkpoint.last_report().compiled
    np.testing.assert_allclose(got, dk.grad(loss(set_member, BIG, False))(u0, 0.2),
                               rtol=1e-12)


def test_an_in_place_step_compiles_to_its_functional_meaning(to_backend):
    """`u += du` on a traced value rebinds u: the program never writes into a state."""
    def in_place(u, i, k):
        u += k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)) - 0.01 * u * u
        return u

    u0 = to_backend(initial())
    before = np.array(to_numpy(u0), copy=True)
    got = dk.grad(loss(in_place, TIGHT, True))(u0, 0.2)
    np.testing.assert_allclose(to_numpy(got), to_numpy(dk.grad(loss(heat, TIGHT, False))(
        u0, 0.2)), rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(u0), before)


def test_compile_steps_sets_the_default_and_validates():
    calls = [0]

    def counted(u, i, k):
        calls[0] += 1
        return heat(u, i, k)

    with dk.checkpoint.compile_steps(False):
        dk.grad(loss(counted, BIG, None))(initial(), 0.2)
    assert calls[0] == STEPS  # every step's Python ran
    calls[0] = 0
    dk.grad(loss(counted, BIG, None))(initial(), 0.2)  # the default: 'auto'
    assert calls[0] == 2  # traced twice; no eager step (the trace watches the budget)
    with pytest.raises(TransformError, match="compile must be 'auto', True or False"):
        dk.grad(loss(heat, BIG, "yes"))(initial(), 0.2)
    with pytest.raises(CompileError, match="preserve_rng_state"):
        dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(heat, u, 3, (0.2,), compile=True,
                                                     preserve_rng_state=True)))(initial())


def test_a_tiny_budget_runs_the_step_eagerly_and_says_why():
    budget = {"budget": {"memory": "40KiB"}}
    u0 = initial(16)
    got = dk.grad(loss(heat, budget, "auto", n=30))(u0, 0.2)
    assert "tracing it holds more than the" in dk.checkpoint.last_report().compiled
    np.testing.assert_allclose(got, dk.grad(loss(heat, BIG, False, n=30))(u0, 0.2),
                               rtol=1e-12)


def test_compiled_memory_stays_within_the_plan():
    import tracemalloc

    u0 = initial(4096)
    J = lambda u: dnp.sum(dk.checkpoint.loop(heat, u, 200, (0.2,),
                                             {"budget": {"memory": "1MiB"}}, compile=True))
    dk.grad(J)(u0)  # warm
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        dk.grad(J)(u0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    rep = dk.checkpoint.last_report()
    assert rep.compiled.startswith("compiled")
    assert peak <= rep.plan.peak_bytes <= 2**20


def test_make_program_prints_and_replays():
    def f(u, i):
        if i % 2 == 0:
            return u * 2.0
        return dnp.roll(u, 1)

    prog = dk.make_program(f)(np.arange(4.0), np.int64(2))
    text = str(prog)
    assert "v0:float64[4], v1:int64[]" in text and "guard bool(v3) == True" in text
    assert "multiply(v0, 2.0)" in text and "roll" not in text
    np.testing.assert_array_equal(prog(np.ones(4), np.int64(6)), 2 * np.ones(4))
    with pytest.raises(CompileError, match=r"decided on a value \(bool\)"):
        prog(np.ones(4), np.int64(3))


def test_a_step_that_differentiates_inside_compiles_to_every_order(to_backend):
    """A symplectic Euler step whose force is dk.grad of a potential: the inner gradient is
    recorded into the program, and the program's own VJP differentiates it again."""
    potential = lambda q: dnp.sum(q ** 4 - q ** 2)

    def step(s, i, dt):
        q, p = s
        p = p - dt * dk.grad(potential)(q)
        return q + dt * p, p

    q0 = to_backend(np.linspace(-1.0, 1.0, 16))

    def run(compile):
        f = lambda q, dt: dnp.sum(dk.checkpoint.loop(step, (q, q * 0.0), 30, (dt,), TIGHT,
                                                     compile=compile)[0] ** 2)
        g = dk.grad(f, argnums=(0, 1))(q0, 0.05)
        h = dk.hvp(lambda q: f(q, 0.05), (q0,), (q0 * 0.0 + 1.0,))
        return [*g, h]

    got = run(True)
    assert dk.checkpoint.last_report().compiled.startswith("compiled")
    for a, b in zip(got, run(False), strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-11, atol=1e-13)


def test_numpy_programs_write_large_temporaries_into_reused_buffers():
    """Backend.program_buffers: only ufunc temporaries that no view can keep get a buffer;
    the program's outputs stay fresh arrays, its values equal the unbuffered program's."""
    from diffkit.checkpoint.compiled import CompiledStep
    from diffkit.checkpoint.executor import LoopIO
    from diffkit.core import pytree
    from diffkit.core.program_run import compile_program

    def step(u, i, k):
        lap = dnp.roll(u, 1, axis=0) + dnp.roll(u, -1, axis=0) - 2 * u
        return u + k * lap - 0.01 * u * u

    u = np.random.default_rng(0).standard_normal((128, 128))
    cs = CompiledStep(LoopIO(), step, pytree.structure(u), pytree.structure((0.2,)), 1, [0],
                      True)
    cs.taped([u, 0.2], 0)
    entry, index = cs.entries[0], np.asarray(1)
    assert cs.pool and "out=" in entry.plain.source and "out=" in entry.backward.source
    first = entry.plain(u, index)[0]
    kept = first.copy()
    second = entry.plain(2 * u, index)[0]  # reuses the buffers: `first` must not change
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(second, compile_program(entry.programs[1])(2 * u, index)[0])
    res = entry.forward(u, index)[1:]
    g = np.ones_like(u)
    np.testing.assert_array_equal(entry.backward(*res, g)[0],
                                  compile_program(entry.programs[2])(*res, g)[0])


def test_the_program_corpus_inside_a_compiled_step_gives_the_eager_gradient(to_backend):
    """Each of tests/program_corpus.py's programs drives a step (constants made inside,
    indexing, linalg, FFT, Python loops): compiled (or, where a program cannot hold it,
    run eagerly) it must give the eager gradient; most must compile."""
    from tests.program_corpus import PROGRAMS, inputs

    compiled = 0
    for name, (fn, *_) in PROGRAMS.items():
        x = [to_backend(a) for a in inputs(name, 0)]

        def step(s, i, *rest, fn=fn):
            return s * (1.0 + 1e-3 * dnp.tanh(fn(s, *rest)))

        def J(*a, compile):
            s = dk.checkpoint.loop(step, a[0], 4, a[1:], BIG, compile=compile)
            return dnp.sum(s ** 2)

        nums = tuple(range(len(x)))
        want = dk.grad(lambda *a: J(*a, compile=False), argnums=nums)(*x)
        got = dk.grad(lambda *a: J(*a, compile="auto"), argnums=nums)(*x)
        compiled += dk.checkpoint.last_report().compiled.startswith("compiled")
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-10, atol=1e-12,
                                       err_msg=name)
    assert compiled >= 35


def test_a_traced_index_used_as_data_is_never_frozen_into_a_program():
    """Indices, sizes and masks are data with no derivative: under a program being traced
    their use is recorded (an operand of dynamic_getitem, a guard, or the step runs
    eagerly), never their traced value."""
    obs = np.random.default_rng(0).standard_normal((40, 16))

    def f(u, i):
        return u - dnp.take(obs, i, axis=0)

    prog = dk.make_program(f)(np.ones(16), np.asarray(3))
    np.testing.assert_array_equal(prog(np.ones(16), np.asarray(5)), 1 - obs[5])

    def step(s, i, k):
        u, m = s
        u = heat(u, i, k)
        j = dnp.argsort(u)[:3]
        d = u - dnp.take(obs, i, axis=0)
        return u, m + dnp.sum(d * d) + dnp.sum(u[j] ** 2)

    u0 = np.random.default_rng(1).standard_normal(16)
    J = lambda c: lambda u, k: dk.checkpoint.loop(step, (u, u[0] * 0.0), 40, (k,), BIG,
                                                  compile=c)[1]
    got = dk.grad(J("auto"), argnums=(0, 1))(u0, 0.2)
    assert dk.checkpoint.last_report().compiled.startswith("compiled: 1 program set")
    for a, b in zip(got, dk.grad(J(False), argnums=(0, 1))(u0, 0.2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_replayed_program_is_differentiated_like_its_function():
    def f(x):
        y = dnp.sin(x) * 2.0
        return y * x if dnp.sum(x) > 0 else y

    prog = dk.make_program(f)(np.ones(3))
    x, t = np.array([0.3, 0.5, 0.7]), np.array([1.0, -2.0, 0.5])
    loss = lambda g: lambda x: dnp.sum(g(x))  # noqa: E731
    np.testing.assert_allclose(dk.grad(loss(prog))(x), dk.grad(loss(f))(x), rtol=1e-14)
    np.testing.assert_allclose(dk.jvp(prog, (x,), (t,))[1], dk.jvp(f, (x,), (t,))[1],
                               rtol=1e-14)
    np.testing.assert_allclose(dk.hessian(loss(prog))(x), dk.hessian(loss(f))(x), rtol=1e-14)
    with pytest.raises(CompileError, match="call make_program again"):
        dk.grad(loss(prog))(-x)  # the guard on sum(x) > 0 goes the other way
