"""diffkit.numpy never drops a derivative silently: an argument that may be a traced float
(a bound, a fill value, a knot, a spacing, an order) either carries its derivative, checked
against finite differences in reverse and forward mode, or is refused naming the function
and the argument. jvp and linearize refuse a primal that is neither an array nor a pytree."""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import ConcretizationError, NonDifferentiableError
from diffkit.scipy import special as sps
from diffkit.testing import check_grads, to_numpy

B = [0.3, -1.2, 2.5, 0.9]
M = [[2.0, 0.5], [0.1, 3.0]]
NONFINITE = [0.3, math.nan, math.inf, -math.inf, -0.4]


def K(a, x, dtype=float):
    """Constant data on the backend of the traced value `x`."""
    return dnp.asarray(np.asarray(a, dtype=dtype), like=x)


# name: (f of a traced float x, where to differentiate); each f is smooth near that point
CARRIED = {
    "linspace stop": (lambda x: dnp.linspace(0.0, x, 5), 0.7),
    "linspace endpoints in a list": (lambda x: dnp.linspace(0.5, [x, 2 * x], 4, axis=1), 0.7),
    "linspace retstep": (lambda x: dnp.linspace(x, 3.0, 4, retstep=True)[1], 0.7),
    "full fill value in a list": (lambda x: dnp.full((2, 2), [x, 1.0]), 0.7),
    "full_like fill value in a list": (lambda x: dnp.full_like(K(M, x), [1.0, x * x]), 0.7),
    "arange start": (lambda x: dnp.arange(x, 3.0), 0.7),
    "arange step": (lambda x: dnp.arange(0.5, 3.0, x), 0.7),
    "arange stop": (lambda x: dnp.arange(0.5, 3 * x), 0.7),
    "arange start and step": (lambda x: dnp.arange(x, 4.0, 2 * x), 0.7),
    "pad constant_values": (lambda x: dnp.pad(K(B, x), 1, constant_values=x), 0.7),
    "pad constant_values pairs": (lambda x: dnp.pad(
        K(M, x), ((1, 0), (0, 2)), constant_values=((x, 1.0), (2.0, x * x))), 0.7),
    "nan_to_num nan": (lambda x: dnp.nan_to_num(K(NONFINITE, x), nan=x), 0.7),
    "nan_to_num posinf neginf": (
        lambda x: dnp.nan_to_num(K(NONFINITE, x), posinf=x, neginf=-x * x), 0.7),
    "nan_to_num complex": (lambda x: dnp.real(dnp.nan_to_num(
        K(NONFINITE, x, complex) * (1 - 2j), nan=x, posinf=2 * x)), 0.7),
    "std ddof": (lambda x: dnp.std(K(B, x), ddof=x), 0.7),
    "std ddof axis": (lambda x: dnp.std(K(M, x) * x, axis=0, ddof=x / 2), 0.7),
    "fftfreq d": (lambda x: dnp.fft.fftfreq(5, x), 0.7),
    "rfftfreq d": (lambda x: dnp.fft.rfftfreq(6, d=x), 0.7),
    "interp knots": (lambda x: dnp.interp(
        K([0.2, 0.6, 1.3, 2.5], x), dnp.stack([0.0, x, 1.0, 2.0]), K([0.0, 1.0, 3.0, 2.0], x)),
        0.4),
    "interp knots and values": (lambda x: dnp.interp(
        K([0.2, 0.6, 1.3], x) * x, dnp.stack([x - 1, x, 2 * x]), dnp.stack([x, 1.0, x * x])),
        0.9),
    "interp left and right": (lambda x: dnp.interp(
        K([-1.0, 0.5, 3.0], x), K([0.0, 1.0], x), K([1.0, 2.0], x), left=x, right=x * x), 0.7),
    "quantile q": (lambda x: dnp.quantile(K(B, x), x), 0.4),
    "quantile q at an order statistic": (lambda x: dnp.quantile(K(B, x), x), 1 / 3),
    "quantile q, method lower": (lambda x: dnp.quantile(K(B, x), x, method="lower"), 0.4),
    "quantile q list, axis": (
        lambda x: dnp.quantile(K(M, x), [x, 0.3], axis=1, keepdims=True), 0.4),
    "percentile q": (lambda x: dnp.percentile(K(B, x), 100 * x), 0.4),
    "median of traced data": (lambda x: dnp.median(K(B, x) * x), 0.4),
    "vector norm ord": (lambda x: dnp.linalg.norm(K(B, x), ord=2 * x), 0.7),
    "vector norm ord at 2": (lambda x: dnp.linalg.norm(K(B, x), ord=2 * x), 1.0),
    "vector norm ord at 1": (lambda x: dnp.linalg.vector_norm(K(B, x), ord=x), 1.0),
}


def _fd(f, x0, to_backend, h=1e-6):
    def at(v):
        return to_numpy(f(to_backend(np.array(v)))).astype(complex).real

    return (at(x0 + h) - at(x0 - h)) / (2 * h)


@pytest.mark.parametrize("jac", [dk.jacrev, dk.jacfwd], ids=["reverse", "forward"])
@pytest.mark.parametrize("name", CARRIED)
def test_traced_parameters_carry_their_derivative(name, jac, to_backend):
    f, x0 = CARRIED[name]
    x = to_backend(np.array(x0))
    expected = _fd(f, x0, to_backend)
    np.testing.assert_allclose(to_numpy(jac(f)(x)), expected, rtol=1e-6, atol=1e-7)


def test_traced_parameters_give_the_same_values(to_backend):
    """The differentiable paths compute what the plain calls compute."""
    for name, (f, x0) in CARRIED.items():
        plain = to_numpy(f(to_backend(np.array(x0))))
        traced = dk.jvp(f, (to_backend(np.array(x0)),), (1.0,))[0]
        np.testing.assert_allclose(to_numpy(traced), plain, rtol=1e-14, atol=1e-15,
                                   err_msg=name)


def test_arange_with_traced_bounds_keeps_numpys_length_and_backend(to_backend):
    x = to_backend(np.array(0.7))
    out = dk.jvp(lambda x: dnp.arange(x, 3.0, 0.4), (x,), (1.0,))
    assert type(out[0]) is type(x)
    np.testing.assert_allclose(to_numpy(out[0]), np.arange(0.7, 3.0, 0.4), rtol=1e-14)
    np.testing.assert_allclose(to_numpy(out[1]), np.ones(6))
    empty = dk.jvp(lambda x: dnp.arange(x, 0.0), (x,), (1.0,))[1]
    assert to_numpy(empty).shape == (0,)


def test_interp_is_unchanged_by_shifting_points_and_knots_together(to_backend):
    """d/dc interp(x + c, xp + c, fp) = 0, at knots and ends too: the knots' derivative
    there is the mean of the two sides, as the points' is."""
    xs, xp = np.array([-1.0, 0.0, 0.2, 0.5, 1.0, 1.7, 2.0, 3.0]), np.array([0.0, 0.5, 1.0, 2.0])
    fp = to_backend(np.array([0.0, 1.0, 3.0, 2.0]))

    def f(c):
        return dnp.interp(to_backend(xs) + c, to_backend(xp) + c, fp)

    c = to_backend(np.array(0.0))
    np.testing.assert_allclose(to_numpy(dk.jacrev(f)(c)), 0.0, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dk.jacfwd(f)(c)), 0.0, atol=1e-12)


def test_interp_in_traced_knots_has_second_derivatives(to_backend):
    x, xp, fp = (to_backend(np.array(v)) for v in ([0.2, 0.7, 1.6], [0.0, 0.5, 1.0, 2.0],
                                                    [0.5, 1.0, -3.0, 2.0]))
    check_grads(lambda x, xp, fp: dnp.interp(x, xp, fp), (x, xp, fp), order=2)


def test_threshold_parameters_have_derivative_zero(to_backend):
    """A rank threshold changes the result only in steps: its derivative is 0, not an
    error (and the result equals the plain call's)."""
    m = to_backend(np.array(M))

    def f(t):
        return dnp.sum(dnp.linalg.pinv(m, rtol=t)) + dnp.sum(dnp.linalg.lstsq(m, m, rcond=t)[0])

    g = dk.grad(f)(to_backend(np.array(1e-3)))
    assert to_numpy(g) == 0.0
    np.testing.assert_allclose(to_numpy(f(1e-3)), to_numpy(f(to_backend(np.array(1e-3)))))


# name: (f of a traced float x, the error's text)
REFUSED = {
    "repeat": (lambda x: dnp.repeat(K(B, x), x),
               r"dnp\.repeat: `repeats` is a float traced by `grad`"),
    "round decimals": (lambda x: dnp.round(K(B, x), x),
                       r"dnp\.round: `decimals` is a float traced by `grad`"),
    "polygamma order": (lambda x: sps.polygamma(x, K(2.0, x)),
                        r"polygamma: `n` is a float traced by `grad`"),
    "interp period": (lambda x: dnp.interp(K(0.5, x), K([0.0, 1.0], x), K([0.0, 1.0], x),
                                           period=x),
                      r"dnp\.interp: `period` is a float traced by `grad`"),
    "interp knots with period": (
        lambda x: dnp.interp(K(0.5, x), dnp.stack([0.0, x]), K([0.0, 1.0], x), period=2.0),
        r"dnp\.interp: `xp` is a float traced by `grad`.*period"),
    "vector norm ord inf": (lambda x: dnp.linalg.norm(K(B, x), ord=x * math.inf),
                            r"dnp\.linalg\.norm: `ord` is a float traced by `grad`"),
    "vector norm ord 0": (lambda x: dnp.linalg.norm(K(B, x), ord=x * 0),
                          r"dnp\.linalg\.norm: `ord` is a float traced by `grad`"),
    "matrix norm ord": (lambda x: dnp.linalg.norm(K(M, x), ord=x),
                        r"dnp\.linalg\.norm: `ord` is a float traced by `grad`"),
    "cond p": (lambda x: dnp.linalg.cond(K(M, x), p=2 * x),
               r"dnp\.linalg\.cond: `p` is a float traced by `grad`"),
    "roll shift": (lambda x: dnp.roll(K(B, x), x), r"dnp\.roll: `shift` is a float traced"),
    "tile reps": (lambda x: dnp.tile(K(B, x), x), r"dnp\.tile: `reps` is a float traced"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_traced_parameters_without_a_derivative_are_refused(name, to_backend):
    f, quoted = REFUSED[name]
    with pytest.raises(ConcretizationError, match=quoted + r".*dk\.stop_gradient"):
        dk.grad(lambda x: dnp.sum(f(x)))(to_backend(np.array(1.0)))


def test_refused_parameters_work_with_stop_gradient_and_integers(to_backend):
    """What the refusal offers works: the value with no derivative, or an integer."""
    x = to_backend(np.array(2.0))
    b = to_backend(np.array(B))
    g = dk.grad(lambda x: dnp.sum(dnp.repeat(b * x, dnp.astype(dk.stop_gradient(x), int))))(x)
    np.testing.assert_allclose(to_numpy(g), 2 * sum(B))
    g = dk.grad(lambda x: dnp.sum(dnp.round(b * x, dnp.astype(dk.stop_gradient(x), int))))(x)
    assert to_numpy(g) == 0.0
    n = dnp.astype(dk.stop_gradient(x), int)
    g = dk.grad(lambda x: dnp.sum(dnp.tile(dnp.roll(b * x, n), n)))(x)
    np.testing.assert_allclose(to_numpy(g), 2 * sum(B))
    g = dk.grad(lambda x: sps.polygamma(1, x))(x)
    np.testing.assert_allclose(to_numpy(g), to_numpy(sps.polygamma(2, x)))


# -- jvp and linearize refuse what grad refuses -------------------------------------------
class Opaque:
    """A class that is no array and no registered pytree node."""

    def __init__(self, v):
        self.v = v


NOT_AN_ARRAY = (r"it is a Opaque, which is neither an array nor a registered pytree node.*"
                r"dk\.tree\.register_pytree_node\(Opaque, flatten, unflatten\)")


def test_jvp_refuses_a_primal_that_is_no_array(to_backend):
    x = to_backend(np.array(1.5))
    with pytest.raises(NonDifferentiableError, match=r"jvp: primal leaf 0: " + NOT_AN_ARRAY):
        dk.jvp(lambda c, x: x * c.v, (Opaque(x), x), (Opaque(x), 1.0))


def test_linearize_refuses_a_primal_that_is_no_array(to_backend):
    x = to_backend(np.array(1.5))
    with pytest.raises(NonDifferentiableError, match=r"linearize: primal leaf 1: " + NOT_AN_ARRAY):
        dk.linearize(lambda x, c: x * c.v, x, Opaque(x))


def test_jvp_refuses_a_nonzero_tangent_for_an_integer_primal(to_backend):
    """It would count as zero: d/dn x ** n along 1.0 silently came out 0."""
    x, n = to_backend(np.array(1.5)), to_backend(np.array(3))
    with pytest.raises(NonDifferentiableError, match=r"jvp: tangent leaf 0 is nonzero, but "
                       r"its primal has dtype .*int64, and integer.*or a zero tangent"):
        dk.jvp(lambda n, x: x ** n, (n, x), (1.0, 0.0))
    with pytest.raises(NonDifferentiableError, match=r"tangent leaf 1 is nonzero.*dtype int"):
        dk.linearize(lambda x, n: x * n, x, 3)[1](1.0, 2.0)


def test_jvp_keeps_integers_and_registered_nodes_as_before(to_backend):
    x = to_backend(np.array(1.5))
    out, t = dk.jvp(lambda n, x: x ** n, (3, x), (0, 1.0))
    np.testing.assert_allclose(to_numpy(t), 3 * 1.5 ** 2)
    n, zero = to_backend(np.array(3)), to_backend(np.array(0))
    out, t = dk.jvp(lambda n, x: x ** n, (n, x), (zero, 1.0))
    np.testing.assert_allclose(to_numpy(t), 3 * 1.5 ** 2)
    out, t = dk.jvp(lambda d: d["a"] * d["b"], ({"a": x, "b": x},), ({"a": 1.0, "b": 0.0},))
    np.testing.assert_allclose(to_numpy(t), 1.5)


def test_array_of_traced_values_stacks_them_and_checks_their_shapes(to_backend):
    """`dnp.array([t0, t1])` of traced values is a differentiable stack; mismatched shapes
    are the same error as `dnp.stack`'s, on both backends."""
    x = to_backend(np.array([1.0, 2.0]))
    g = dk.grad(lambda x: dnp.sum(dnp.array([x, 3.0 * x]) ** 2))(x)
    np.testing.assert_allclose(to_numpy(g), 20.0 * np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"dnp.stack: all input arrays must have the same "
                                         r"shape, got \[\(2,\), \(3,\)\]"):
        dk.grad(lambda x: dnp.sum(dnp.array([x, dnp.ones(3, like=x)])))(x)
