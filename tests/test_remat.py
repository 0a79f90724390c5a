"""`dk.remat` (jax.checkpoint): same derivatives at every order, a tape that keeps only the
inputs and outputs, and recomputation that reproduces the forward pass or says it did not."""

from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import LeakedTracerError, TransformError

N_OPS = 50


def chain(x):
    """50 elementwise ops: without remat the tape keeps ~50 arrays of x's size."""
    for k in range(N_OPS):
        x = dnp.sin(x) * 1.01 if k % 2 else dnp.tanh(x) + 0.1
    return x


def loss_of(block):
    return lambda x: dnp.sum(block(x) ** 2)


plain, rematted = loss_of(chain), loss_of(dk.remat(chain))


def close(a, b, tol=1e-12):
    a, b = np.asarray(dnp.asarray(a).tolist()), np.asarray(dnp.asarray(b).tolist())
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.fixture
def x(to_backend):
    return to_backend(np.linspace(-1.0, 1.0, 6))


def test_names_follow_jax():
    assert dk.remat is dk.checkpoint.remat
    assert "remat" in dk.__all__ and "remat" in dk.checkpoint.__all__
    assert dk.remat(chain).__name__ == "chain"


# -- derivatives ---------------------------------------------------------------------
def test_grad_jvp_hvp_jacrev_match_the_plain_function(x):
    close(rematted(x), plain(x))
    close(dk.grad(rematted)(x), dk.grad(plain)(x))
    close(dk.jvp(rematted, (x,), (x,))[1], dk.jvp(plain, (x,), (x,))[1])
    close(dk.hvp(rematted, (x,), (x,)), dk.hvp(plain, (x,), (x,)))
    close(dk.jacrev(dk.remat(chain))(x), dk.jacrev(chain)(x))
    close(dk.jacrev(dk.grad(rematted))(x), dk.jacrev(dk.grad(plain))(x))
    close(dk.grad(lambda y: dnp.sum(dk.grad(rematted)(y)))(x),
          dk.grad(lambda y: dnp.sum(dk.grad(plain)(y)))(x))


def test_reverse_over_forward_matches(x):
    def inner(f):
        return lambda y: dnp.sum(dk.jvp(f, (y,), (dnp.ones_like(y),))[1] ** 2)

    close(dk.grad(inner(dk.remat(chain)))(x), dk.grad(inner(chain))(x))


def test_pytree_inputs_and_outputs_and_keywords(x):
    def block(p, scale=1.0):
        u = chain(p["u"] * p["w"][0])
        return {"sum": dnp.sum(u) * scale, "u": u, "count": 3}

    def loss(b):
        return lambda p: b(p, scale=2.0)["sum"] + dnp.sum(b(p, scale=0.5)["u"] ** 2)

    p = {"u": x, "w": (x[0] + 2.0,)}
    g, want = dk.grad(loss(dk.remat(block)))(p), dk.grad(loss(block))(p)
    close(g["u"], want["u"])
    close(g["w"][0], want["w"][0])
    assert dk.remat(block)(p)["count"] == 3

    def over_jvp(b):  # reverse over forward: the pair (f, its JVP) is remat'ed
        return lambda q: dk.jvp(loss(b), (q,), (q,))[1]

    g, want = dk.grad(over_jvp(dk.remat(block)))(p), dk.grad(over_jvp(block))(p)
    close(g["u"], want["u"])
    close(g["w"][0], want["w"][0])


def test_static_argnums_pass_python_values(x):
    def power(y, n):
        return y ** n if isinstance(n, int) else None

    want = dk.grad(lambda y: dnp.sum(power(y, 3)))(x)
    for f in (dk.remat(static_argnums=(1,))(power),
              functools.partial(dk.remat, static_argnums=1)(power)):
        close(dk.grad(lambda y, f=f: dnp.sum(f(y, 3)))(x), want)


def test_integer_inputs_pass_through(x, to_backend):
    idx = to_backend(np.array([0, 2, 5]))
    f = dk.remat(lambda y, i: dnp.take(chain(y), i))
    want = dk.grad(lambda y: dnp.sum(dnp.take(chain(y), idx)))(x)
    close(dk.grad(lambda y: dnp.sum(f(y, idx)))(x), want)


# -- memory ------------------------------------------------------------------------------
def test_the_tape_keeps_only_inputs_and_outputs(to_backend):
    big = to_backend(np.random.default_rng(0).standard_normal(100_000))
    (_, with_remat), (_, without) = dk.vjp(dk.remat(chain), big), dk.vjp(chain, big)
    one = 800_000  # bytes of one float64 array of 1e5 elements
    assert with_remat.tape.nbytes() < 2.1 * one  # the input and the output
    assert without.tape.nbytes() > 40 * one
    close(with_remat(dnp.ones_like(big))[0], without(dnp.ones_like(big))[0])


def test_a_call_with_many_input_leaves_is_one_node(x):
    _, f_vjp = dk.vjp(dk.remat(lambda xs: sum(xs[1:], xs[0])), [x] * 70)
    assert 70 * x.nbytes <= f_vjp.tape.nbytes() < 70 * x.nbytes + 10_000
    close(f_vjp(dnp.ones_like(x))[0][69], dnp.ones_like(x))


def test_the_forward_pass_peak_is_a_few_arrays():
    big = np.random.default_rng(0).standard_normal(100_000)
    peaks = {}
    for name, f in (("remat", dk.remat(chain)), ("plain", chain)):
        tracemalloc.start()
        _, f_vjp = dk.vjp(f, big)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del f_vjp
    assert peaks["remat"] < 5 * 800_000 < 40 * 800_000 < peaks["plain"], peaks


def test_reverse_over_forward_keeps_only_inputs_and_outputs(to_backend):
    big = to_backend(np.random.default_rng(0).standard_normal(100_000))

    def directional(f):
        return lambda y: dk.jvp(f, (y,), (dnp.ones_like(y),))[1]

    (_, with_remat), (_, without) = (dk.vjp(directional(f), big)
                                     for f in (dk.remat(chain), chain))
    one = 800_000
    assert with_remat.tape.nbytes() < 4.1 * one  # the input, its tangent and both outputs
    assert without.tape.nbytes() > 80 * one
    close(with_remat(dnp.ones_like(big))[0], without(dnp.ones_like(big))[0])


def test_grad_of_grad_keeps_one_node_per_level(x):
    counts = []

    def counted(y):
        counts.append(1)
        return chain(y)

    dk.grad(lambda y: dnp.sum(dk.grad(loss_of(dk.remat(counted)))(y)))(x)
    # the forward pass once (each level keeps a node, the lowest runs f), then once in
    # each level's backward: the outer tape kept no internals of the first forward pass
    assert len(counts) == 3


# -- recomputation must reproduce the forward pass -------------------------------------
def noisy(y):
    return chain(y) + dnp.asarray(0.1 * np.random.standard_normal(6), like=y)


def test_global_numpy_draws_are_replayed(x, to_backend):
    np.random.seed(1)
    g = dk.grad(loss_of(dk.remat(noisy)))(x)
    after = np.random.standard_normal()  # the generator is where the forward pass left it
    assert after == np.random.RandomState(1).standard_normal(7)[6]
    noise = to_backend(0.1 * np.random.RandomState(1).standard_normal(6))
    close(g, dk.grad(loss_of(lambda y: chain(y) + noise))(x))


def test_global_torch_draws_are_replayed():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
    torch.manual_seed(3)
    g = dk.grad(loss_of(dk.remat(lambda y: chain(y) + torch.randn(6, dtype=torch.float64))))(x)
    torch.manual_seed(3)
    noise = torch.randn(6, dtype=torch.float64)
    close(g, dk.grad(loss_of(lambda y: chain(y) + noise))(x))


def test_a_draw_not_replayed_is_an_error(x):
    fresh = dk.remat(lambda y: chain(y) + dnp.asarray(np.random.default_rng().random(6), like=y))
    with pytest.raises(TransformError, match=r"remat of <lambda>: recomputing it .* did not "
                                             r"reproduce its forward outputs"):
        dk.grad(loss_of(fresh))(x)
    unreplayed = dk.remat(noisy, preserve_rng_state=False)
    with pytest.raises(TransformError, match="remat of noisy: .*not deterministic"):
        dk.grad(loss_of(unreplayed))(x)


def test_check_recompute_false_skips_the_check(x):
    unchecked = dk.remat(noisy, preserve_rng_state=False, check_recompute=False)
    assert dk.grad(loss_of(unchecked))(x).shape == (6,)


# -- errors ----------------------------------------------------------------------------
def test_a_traced_closure_is_refused(x):
    def loss(y):
        return dnp.sum(dk.remat(lambda z: z * y)(2.0 * y))

    with pytest.raises(TransformError, match=r"remat of <lambda>: the function closes over a "
                                             r"value traced by `grad`.*as an argument"):
        dk.grad(loss)(x)


def test_a_traced_static_argument_is_refused(x):
    f = dk.remat(lambda y, n: y * n, static_argnums=1)
    with pytest.raises(TransformError, match=r"argument 1 is listed in static_argnums but "
                                             r"holds a traced value"):
        dk.grad(lambda y: dnp.sum(f(y, y)))(x)


def test_static_argnums_out_of_range_is_refused(x):
    f = dk.remat(lambda y: y, static_argnums=(2,))
    with pytest.raises(TransformError, match=r"static_argnums=\(2,\) but it was called with "
                                             r"1 positional argument"):
        f(x)


def test_bad_arguments_to_remat_are_refused():
    with pytest.raises(TransformError, match="remat: expected a function to wrap, got a int"):
        dk.remat(3)
    with pytest.raises(TransformError, match=r"static_argnums='a' must be int positions"):
        dk.remat(chain, static_argnums="a")


def test_a_leaked_tracer_is_refused(x):
    kept = []
    dk.grad(lambda y: kept.append(y) or dnp.sum(y))(x)
    with pytest.raises(LeakedTracerError, match="after that transform returned"):
        dk.remat(chain)(kept[0])


def test_a_remat_block_inside_a_checkpointed_loop_step(x):
    def step_of(block):
        return lambda u, i: block(u) * 0.5 + u

    def loss(block):
        return lambda u0: dnp.sum(dk.checkpoint.loop(step_of(block), u0, 4) ** 2)

    close(dk.grad(loss(dk.remat(chain)))(x), dk.grad(loss(chain))(x))
