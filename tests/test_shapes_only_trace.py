"""A compiled step is traced by shapes only (`Backend.stand_in`), a kernel's output at a time:
its programs equal a values trace's, its outputs and residuals come from running them. A step
that needs a value to trace is traced with its values, within the room the budget leaves, or
runs eagerly with both reasons."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.compiled import CompiledStep
from diffkit.checkpoint.executor import LoopIO
from diffkit.core import pytree
from diffkit.testing import to_numpy

N = 256
U0 = np.cos(np.linspace(0.0, 6.0, N * N)).reshape(N, N) + 0.3


def stencil(u, i, k):
    """Named temporaries, all alive until the return: a values trace holds them all."""
    e, w = dnp.roll(u, 1, axis=0), dnp.roll(u, -1, axis=0)
    n, s = dnp.roll(u, 1, axis=1), dnp.roll(u, -1, axis=1)
    lap = e + w + n + s - 4 * u
    adv = u * (e - w + n - s)
    return u + k * lap - 0.01 * adv + 0.001 * dnp.sin(u * i)


def _compiled(step, u, limit):
    cs = CompiledStep(LoopIO(), step, pytree.structure(u), pytree.structure((0.1,)), 1,
                      [0, 1], False)
    cs.trace_limit = limit
    return cs


def test_a_step_is_traced_by_shapes_into_the_programs_of_a_values_trace(to_backend):
    u = to_backend(U0)
    state = U0.nbytes
    full = _compiled(stencil, u, None)
    full._stand_in = lambda leaves: None  # (a backend without stand-ins: traced with values)
    lean = _compiled(stencil, u, 3 * state)
    want_out, want_vjp = full.taped([u, 0.1], 3)
    got_out, got_vjp = lean.taped([u, 0.1], 3)
    assert lean.reason is None and full.reason is None
    assert lean.trace_peak < 2.5 * state < full.trace_peak
    assert str(lean.entries[0].programs[0]) == str(full.entries[0].programs[0])
    np.testing.assert_array_equal(to_numpy(got_out[0]), to_numpy(want_out[0]))
    ct = to_backend(np.sin(U0))
    for a, b in zip(got_vjp([ct]), want_vjp([ct]), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    plain = lean.forward([u * 2, 0.1], 4)  # replayed; a new state traces nothing
    np.testing.assert_array_equal(to_numpy(plain[0]), to_numpy(stencil(u * 2, 4, 0.1)))
    assert lean.traces == 1


def test_a_loop_traced_by_shapes_gets_the_eager_gradient(to_backend):
    def loss(u0, k, compile):
        u = dk.checkpoint.loop(stencil, u0, 6, (k,), {"budget": {"memory": "1GiB"}},
                               compile=compile)
        return dnp.sum(u * u)

    u0 = to_backend(U0)
    eager = dk.grad(loss, argnums=(0, 1))(u0, 0.1, False)
    got = dk.grad(loss, argnums=(0, 1))(u0, 0.1, True)
    assert dk.checkpoint.last_report().compiled.startswith("compiled")
    for a, b in zip(got, eager, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)


def test_a_step_deciding_on_a_value_is_traced_with_its_values():
    def step(u, i, k):
        return u * k if dnp.max(u) > 0 else u

    cs = _compiled(step, U0, None)
    out, _ = cs.taped([U0, 0.1], 0)
    assert cs.reason is None and cs.trace_peak > U0.nbytes  # (values)
    np.testing.assert_array_equal(out[0], U0 * 0.1)


@pytest.mark.parametrize(("step", "why"), [
    (lambda u, i, k: u * k if dnp.max(u) > 0 else u, r"bool\(x\) needs a value"),
    (lambda u, i, k: u + k * dnp.sum(u[u > 0.5]), "shape of dynamic_getitem"),
])
def test_a_step_that_needs_values_to_trace_runs_eagerly_and_says_why(step, why):
    cs = _compiled(step, U0, U0.nbytes // 2)  # too little room for its values
    assert cs.taped([U0, 0.1], 0) is None
    assert "tracing it holds more than" in cs.reason and "its shapes only" in cs.reason
    assert re.search(why, cs.reason), cs.reason


def test_a_random_step_traced_by_shapes_is_still_refused():
    rng = np.random.default_rng(0)

    def noisy(u, i, k):
        return u + k * dnp.asarray(rng.standard_normal(u.shape))

    cs = _compiled(noisy, U0, 3 * U0.nbytes)
    assert cs.taped([U0, 0.1], 0) is None
    assert "random numbers" in cs.reason, cs.reason


def _tree(s, i, k):
    return {"u": s["u"] * k + 0.1 * dnp.sin(s["v"]), "v": s["v"] - 0.05 * s["u"] * s["u"]}


def _solve(u, i, k):  # a matrix made of stand-ins is singular: the kernel raises, values trace
    m = dnp.eye(6) * 6.0 + dnp.outer(u[:6], u[:6]) * 0.1
    return u.at[:6].set(dnp.linalg.solve(m, u[:6]) * k + u[:6] * 0.5)


CARELESS = {  # steps as people write them: the shapes trace must not change their gradient
    "pytree state": (_tree, {"u": np.linspace(0.1, 1, 12), "v": np.linspace(-1, 1, 12)}),
    "where": (lambda u, i, k: dnp.where(u > 0.2, u * k, u - 0.1 * dnp.exp(u)), None),
    "solve": (_solve, None),
    "log of stand-ins": (lambda u, i, k: u + 0.01 * k * dnp.log(dnp.abs(u) + 1.0), None),
    "division": (lambda u, i, k: u + 0.001 * k / (1.0 + (dnp.roll(u, 1) - u) ** 2), None),
    "argmax as index": (lambda u, i, k: u * k + 0.01 * u[dnp.argmax(u)], None),
    "complex": (lambda u, i, k: u * k + 0.01j * u * u, np.linspace(-1, 1, 12) + 0.3j),
}


@pytest.mark.parametrize("case", CARELESS)
def test_careless_steps_compile_to_the_eager_gradient_without_warnings(case, to_backend):
    step, x0 = CARELESS[case]
    x0 = to_backend(np.linspace(-1, 1, 12) if x0 is None else x0)

    def loss(x, k, compile):
        out = dk.checkpoint.loop(step, x, 8, (k,), {"budget": {"memory": "64MiB"}},
                                 compile=compile)
        return sum(dnp.sum(dnp.abs(v) ** 2) for v in dk.tree.leaves(out))

    want = dk.grad(loss, argnums=(0, 1))(x0, 0.9, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stand-ins' dummy values warn nobody
        got = dk.grad(loss, argnums=(0, 1))(x0, 0.9, True)
    for a, b in zip(dk.tree.leaves(got), dk.tree.leaves(want), strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)
