"""dk.checkpoint.scan: per-step inputs and stacked outputs, checked against a Python loop."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import TransformError
from diffkit.testing import to_numpy

N_STEPS, SIZE = 40, 64
BIG = {"budget": {"memory": "4GiB"}}
TIGHT = {"budget": {"memory": "140KiB"}, "schedule": "revolve"}  # recomputes


def step(carry, x, i, w):
    """A pytree carry; x_i is a dict of arrays; y_i a pair (the observation, a cost)."""
    u = dnp.sin(carry["u"] * w) + 0.1 * x["f"] + 0.01 * carry["v"]
    v = carry["v"] + x["g"] * u
    return {"u": u, "v": v}, (u * u, dnp.sum(v))


def python_scan(step, carry, xs, args, every=1):
    """The same computation as a plain Python loop (the reference)."""
    ys = []
    n = N_STEPS if xs is None else len(dk.tree.leaves(xs)[0])
    for i in range(n):
        x_i = None if xs is None else dk.tree.map(lambda a, i=i: a[i], xs)
        carry, y = step(carry, x_i, i, *args)
        if i % every == every - 1:
            ys.append(y)
    return carry, dk.tree.map(lambda *a: dnp.stack(a), *ys)


def loss(scan, budget=None, every=1):
    def J(u0, xs, w):
        kw = {} if scan is python_scan else {"budget": budget, "save_every": every}
        if scan is python_scan:
            kw["every"] = every
        carry, (obs, cost) = scan(step, {"u": u0, "v": u0 * 0.0}, xs, (w,), **kw)
        weights = dnp.arange(obs.shape[0], dtype=obs.dtype, like=obs) + 1.0
        return (dnp.sum(carry["u"] * carry["v"]) + dnp.sum(weights[:, None] * obs)
                + dnp.sum(dnp.cos(cost)))

    return J


def inputs(to_backend, n=N_STEPS):
    rng = np.random.default_rng(0)
    u0, w = rng.normal(size=SIZE), rng.normal(size=SIZE)
    xs = {"f": rng.normal(size=(n, SIZE)), "g": 0.1 * rng.normal(size=(n, 1))}
    return to_backend(u0), to_backend(xs), to_backend(w)


def close(a, b):
    for p, q in zip(dk.tree.leaves(a), dk.tree.leaves(b), strict=True):
        np.testing.assert_allclose(to_numpy(p), to_numpy(q), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("budget,schedule", [(BIG, "StoreAll"), (TIGHT, "Revolve")])
@pytest.mark.parametrize("every", [1, 3])
def test_grad_matches_a_python_loop(backend, to_backend, budget, schedule, every):
    args = inputs(to_backend)
    g = dk.grad(loss(dk.checkpoint.scan, budget, every), argnums=(0, 1, 2))(*args)
    assert type(dk.checkpoint.last_report().plan.schedule).__name__ == schedule
    close(g, dk.grad(loss(python_scan, every=every), argnums=(0, 1, 2))(*args))


def test_outputs_and_save_every_steps(backend, to_backend):
    """ys[j] is the y of step (j+1)*k - 1: n // k of them, like a Python loop's."""
    xs = to_backend(np.arange(10.0))
    carry, ys = dk.checkpoint.scan(lambda c, x, i: (c + x, c + x), to_backend(0.0), xs,
                                   save_every=4)
    assert float(carry) == 45.0
    np.testing.assert_array_equal(to_numpy(ys), [6.0, 28.0])  # after steps 3 and 7
    ys = dk.checkpoint.scan(lambda c, x, i: (c + x, (c, i)), to_backend(0.0), xs,
                            save_every=11)[1]
    assert [tuple(v.shape) for v in ys] == [(0,), (0,)]
    assert type(ys[0]) is type(xs)


@pytest.mark.parametrize("budget", [BIG, TIGHT])
def test_jvp_and_hvp_match_a_python_loop(backend, to_backend, budget):
    args = inputs(to_backend)
    rng = np.random.default_rng(1)
    tangents = dk.tree.map(lambda a: to_backend(rng.normal(size=np.shape(to_numpy(a)))), args)
    J, ref = loss(dk.checkpoint.scan, budget, 2), loss(python_scan, every=2)
    close(dk.jvp(J, args, tangents), dk.jvp(ref, args, tangents))

    def hvp(f):
        return dk.jvp(dk.grad(f, argnums=(0, 1, 2)), args, tangents)[1]

    close(hvp(J), hvp(ref))


def test_n_steps_gives_x_none_and_grad_reaches_args(backend, to_backend):
    def J(w):
        def body(c, x, i, w):
            assert x is None
            return c * w, dnp.sum(c)

        return dnp.sum(dk.checkpoint.scan(body, w, 5, (w,), TIGHT)[1])

    def ref(w):
        c, total = w, 0.0
        for _ in range(5):
            c, total = c * w, total + dnp.sum(c)
        return total

    w = to_backend(np.linspace(0.5, 1.1, 4))
    close(dk.grad(J)(w), dk.grad(ref)(w))


def test_untraced_scan_runs_and_stacks(backend, to_backend):
    carry, ys = dk.checkpoint.scan(lambda c, x, i: (c * 2, {"c": c, "i": i}), to_backend(1.0),
                                   3)
    assert float(carry) == 8.0
    np.testing.assert_array_equal(to_numpy(ys["c"]), [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(to_numpy(ys["i"]), [0, 1, 2])


def test_writing_into_x_i_in_place_changes_neither_xs_nor_the_gradient(backend, to_backend):
    def body(c, x, i):
        x *= 2.0  # a private copy of xs[i]
        return c * x, c

    xs = to_backend(np.linspace(0.5, 1.5, 6))

    def J(c, budget):
        return dnp.sum(dk.checkpoint.scan(body, c, xs, budget=budget)[1])

    g = dk.grad(J)(to_backend(1.0), TIGHT)
    np.testing.assert_array_equal(to_numpy(xs), np.linspace(0.5, 1.5, 6))
    assert float(g) == pytest.approx(1 + sum(np.cumprod(2 * np.linspace(0.5, 1.5, 6))[:-1]))


def test_jacrev_runs_the_schedule_once_per_output(backend, to_backend):
    def J(u0, xs, w):
        return dk.checkpoint.scan(step, {"u": u0, "v": u0}, xs, (w,), TIGHT, save_every=8)[1][1]

    def ref(u0, xs, w):
        return python_scan(step, {"u": u0, "v": u0}, xs, (w,), every=8)[1][1]

    args = inputs(to_backend)
    close(dk.jacrev(J)(*args), dk.jacrev(ref)(*args))


def test_carry_written_in_place_is_an_error():
    """The loop's checks apply to the carry: here an integer counter written in place."""
    def body(c, x, i):
        c["k"][0] += 1
        return c, c["u"] * x

    def J(u):
        return dnp.sum(dk.checkpoint.scan(body, {"u": u, "k": np.zeros(1, int)}, np.ones(3))[1])

    with pytest.raises(TransformError, match=r"in place at step 0 \(.*state\['k'\]"):
        dk.grad(J)(np.zeros(2))


@pytest.mark.parametrize("traced", [False, True])
def test_wrong_structure_and_changing_y_shapes_are_errors(traced):
    run = (lambda f: dk.grad(f)(np.ones(2))) if traced else (lambda f: f(np.ones(2)))

    def no_pair(c):
        return dk.checkpoint.scan(lambda c, x, i: c, c, 3)

    with pytest.raises(TransformError, match=r"must return a pair \(carry, y\).*step 0"):
        run(no_pair)

    def growing(c):
        return dnp.sum(dk.checkpoint.scan(lambda c, x, i: (c, dnp.ones(i + 1)), c, 3)[1])

    with pytest.raises(TransformError, match=r"shapes \[\(2,\)\] at step 1.*\[\(1,\)\]"):
        run(growing)


def test_carry_structure_change_is_an_error():
    with pytest.raises(TransformError, match="scan changed the structure of the state at step 0"):
        dk.grad(lambda c: dnp.sum(dk.checkpoint.scan(
            lambda c, x, i: ((c, c), c), c, 2)[1]))(np.ones(2))


def test_closing_over_a_traced_value_is_an_error_naming_scan():
    def J(w):
        return dnp.sum(dk.checkpoint.scan(lambda c, x, i: (c * w, c), w, 3)[1])

    with pytest.raises(TransformError, match=r"checkpoint.scan returned a value traced.*args="):
        dk.grad(J)(np.ones(2))


def test_bad_xs_and_save_every_are_errors():
    body = lambda c, x, i: (c, c)  # noqa: E731
    with pytest.raises(TransformError, match="same leading axis length.*length 3.*length 4"):
        dk.checkpoint.scan(body, 0.0, {"a": np.ones(3), "b": np.ones(4)})
    with pytest.raises(TransformError, match="leaf 0: no leading axis"):
        dk.checkpoint.scan(body, 0.0, np.float64(2.5))
    with pytest.raises(TransformError, match="at least one step"):
        dk.checkpoint.scan(body, 0.0, 0)
    with pytest.raises(TransformError, match="save_every must be an integer >= 1, got 0"):
        dk.checkpoint.scan(body, 0.0, 3, save_every=0)


def test_stored_ys_count_in_the_plan():
    """The ys (and their cotangent) are held through the gradient: the plan counts them."""
    def J(u0, n):
        return dnp.sum(dk.checkpoint.scan(lambda c, x, i: (c * 0.9, c), u0, n)[1])

    u0 = np.ones(1000)
    dk.grad(J)(u0, 10)
    small = dk.checkpoint.last_report().reverse_bytes
    dk.grad(J)(u0, 20)
    assert dk.checkpoint.last_report().reverse_bytes - small >= 2 * 10 * 8000


def test_a_python_float_carry_that_comes_to_depend_on_x_gets_its_tangent(backend, to_backend):
    """Forward mode must agree with reverse mode when carry0 is a Python number (a loop's
    jvp used to keep it a constant: a zero derivative where grad gave the right one)."""
    xs = to_backend(np.linspace(1.0, 2.0, 6))

    def J(xs):
        return dnp.sum(dk.checkpoint.scan(lambda c, x, i: (c * x, c * x * x), 1.0, xs,
                                          save_every=2)[1])

    def L(x):
        return dk.checkpoint.loop(lambda c, i, x: c * x, 1.0, 3, (x,))

    ones = to_backend(np.ones(6))
    assert float(dk.jvp(J, (xs,), (ones,))[1]) == pytest.approx(
        float(dnp.sum(dk.grad(J)(xs) * ones)))
    x = to_backend(2.0)
    assert float(dk.jvp(L, (x,), (to_backend(1.0),))[1]) == pytest.approx(12.0)
