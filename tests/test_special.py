"""diffkit.scipy.special: values against SciPy (and against math.erf / math.lgamma for the
SciPy-free kernels), derivatives to second order, numerical stability, logsumexp's
SciPy signature."""

from __future__ import annotations

import math

import diffkit_numpy.special as kernels
import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
import diffkit.scipy.special as dsp
from diffkit.testing import check_grads

sp = pytest.importorskip("scipy.special")
RNG = np.random.default_rng(1)

# (name, lo, hi): one-argument functions on [lo, hi]
UNARY = [("erf", -3, 3), ("erfc", -3, 6), ("erfinv", -0.95, 0.95), ("expit", -30, 30),
         ("logit", 0.01, 0.99), ("softplus", -30, 30), ("gammaln", 0.05, 30),
         ("digamma", 0.05, 30), ("psi", 0.05, 30)]


@pytest.mark.parametrize("name,lo,hi", UNARY, ids=[u[0] for u in UNARY])
def test_values_dtypes_and_grads(name, lo, hi):
    x = RNG.uniform(lo, hi, (2, 5))
    f = getattr(dsp, name)
    np.testing.assert_allclose(f(x), getattr(sp, name)(x), rtol=1e-13, atol=1e-300)
    assert f(x.astype(np.float32)).dtype == np.float32
    check_grads(f, (x[:, :3],), order=2)


BINARY = [("xlogy", 0.1, 3.0), ("xlog1py", -0.5, 3.0)]


@pytest.mark.parametrize("name,lo,hi", BINARY, ids=[b[0] for b in BINARY])
def test_xlogy_family(name, lo, hi):
    f, ref = getattr(dsp, name), getattr(sp, name)
    x, y = RNG.uniform(-2, 2, (2, 3)), RNG.uniform(lo, hi, (3,))
    np.testing.assert_allclose(f(x, y), ref(x, y), rtol=1e-14)
    check_grads(f, (x, y), order=2)
    # 0 * log(0) = 0, and the derivatives at x = 0 are finite: d/dx = log(y) (log1p), d/dy = 0
    y0 = np.array([0.0, 0.5, 2.0]) - (1.0 if name == "xlog1py" else 0.0)
    np.testing.assert_array_equal(f(np.zeros(3), y0), ref(np.zeros(3), y0))
    gx, gy = dk.grad(lambda a, b: dnp.sum(f(a, b)), argnums=(0, 1))(np.zeros(2), y0[1:])
    np.testing.assert_allclose(gx, np.log(y0[1:]) if name == "xlogy" else np.log1p(y0[1:]))
    np.testing.assert_array_equal(gy, [0.0, 0.0])


def test_polygamma_orders_and_derivatives():
    x = RNG.uniform(0.2, 6, (2, 3))
    for n in (0, 1, 2, 3):
        np.testing.assert_allclose(dsp.polygamma(n, x), sp.polygamma(n, x), rtol=1e-13)
    n = np.array([1, 2, 3])
    np.testing.assert_allclose(dsp.polygamma(n, x), sp.polygamma(n, x), rtol=1e-13)
    check_grads(lambda a: dsp.polygamma(n, a), (x,), order=2)
    # gammaln'' = digamma' = polygamma(1, .), and onwards
    d2 = dk.grad(dk.grad(dsp.gammaln))(2.5)
    assert np.isclose(d2, sp.polygamma(1, 2.5), rtol=1e-14)
    assert np.isclose(dk.grad(dk.grad(dsp.digamma))(2.5), sp.polygamma(2, 2.5), rtol=1e-14)


def test_stability_at_extremes():
    big = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    np.testing.assert_allclose(dsp.softplus(big), sp.softplus(big), rtol=1e-15)
    np.testing.assert_allclose(dsp.expit(big), sp.expit(big), rtol=1e-15)
    np.testing.assert_allclose(dk.grad(lambda a: dnp.sum(dsp.softplus(a)))(big),
                               sp.expit(big), rtol=1e-15)
    p = np.array([1e-300, 1e-12, 0.5, 1 - 1e-12])
    np.testing.assert_allclose(dsp.logit(p), sp.logit(p), rtol=1e-12)
    q = 1 - 10.0 ** -np.arange(1, 16)
    np.testing.assert_allclose(dsp.erfinv(q), sp.erfinv(q), rtol=1e-14)


# -- SciPy-free kernels ---------------------------------------------------------------------
def _rel(got, want):
    got, want = np.asarray(got, float), np.asarray(want, float)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def test_numpy_kernels_against_math_and_scipy():
    x = np.concatenate([RNG.uniform(-6, 6, 500), [0.0, 1e-300, -30.0, 30.0]])
    assert _rel(kernels.erf_numpy(x), [math.erf(v) for v in x]) == 0
    assert _rel(kernels.erfc_numpy(x), sp.erfc(x)) < 1e-13
    y = np.concatenate([RNG.uniform(-1, 1, 500), 1 - 10.0 ** -np.arange(1, 16), [0.0, 1e-300]])
    assert _rel(kernels.erfinv_numpy(y), sp.erfinv(y)) < 1e-14
    np.testing.assert_array_equal(kernels.erfinv_numpy(np.array([1.0, -1.0, 2.0])),
                                  [np.inf, -np.inf, np.nan])
    g = np.concatenate([RNG.uniform(0, 30, 500), RNG.uniform(-10, 0, 200)])
    assert _rel(kernels.gammaln_numpy(g), [math.lgamma(v) for v in g]) == 0
    np.testing.assert_array_equal(kernels.gammaln_numpy(np.array([0.0, -2.0])), [np.inf] * 2)
    # away from digamma's root 1.4616 (where SciPy's own relative error grows)
    d = np.concatenate([RNG.uniform(1.6, 30, 500), RNG.uniform(0.01, 1.3, 200),
                        RNG.uniform(-10, 0, 300), [1e5, 1e10]])
    assert _rel(kernels.digamma_numpy(d), sp.digamma(d)) < 1e-12
    np.testing.assert_array_equal(kernels.digamma_numpy(np.array([0.0, -1.0])), [-np.inf, np.nan])
    for n in (1, 2, 3, 5):
        assert _rel(kernels.polygamma_numpy(n, d), sp.polygamma(n, d)) < 1e-12
    assert kernels.erf_numpy(np.float32(0.5)).dtype == np.float32
    assert np.ndim(kernels.erf_numpy(0.5)) == 0


def test_primitives_run_without_scipy(monkeypatch):
    x = RNG.uniform(0.2, 3, (4,))
    monkeypatch.setattr(kernels, "_scipy_special", False)
    for name in ("erf", "erfc", "erfinv", "gammaln", "digamma"):
        arg = x / 4 if name == "erfinv" else x
        np.testing.assert_allclose(getattr(dsp, name)(arg), getattr(sp, name)(arg), rtol=1e-13)
    np.testing.assert_allclose(dsp.polygamma(2, x), sp.polygamma(2, x), rtol=1e-13)
    check_grads(dsp.gammaln, (x,), order=2)


# -- logsumexp -------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_scipy(axis, keepdims):
    a = RNG.normal(size=(2, 3, 4)) * 300  # exp would overflow without the shift
    got = dsp.logsumexp(a, axis=axis, keepdims=keepdims)
    want = sp.logsumexp(a, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_logsumexp_grad_is_softmax_and_second_order():
    a = RNG.normal(size=(3, 4))
    g = dk.grad(lambda x: dnp.sum(dsp.logsumexp(x, axis=1)))(a)
    np.testing.assert_allclose(g, np.exp(a - sp.logsumexp(a, axis=1, keepdims=True)))
    check_grads(lambda x: dsp.logsumexp(x, axis=0), (a,), order=2)
    check_grads(lambda x, w: dsp.logsumexp(x, b=w), (a, RNG.uniform(0.5, 2, (4,))), order=2)


def test_logsumexp_b_and_sign():
    a = RNG.normal(size=(2, 4))
    b = np.array([1.0, -2.0, 0.0, 0.5])
    for axis in (None, 1):
        got, sgn = dsp.logsumexp(a, axis=axis, b=b, return_sign=True)
        want, wsgn = sp.logsumexp(a, axis=axis, b=b, return_sign=True)
        np.testing.assert_allclose(got, want, rtol=1e-13)
        np.testing.assert_array_equal(sgn, wsgn)
    # b == 0 removes an element even where exp(a) would overflow
    big = np.array([1000.0, 1.0, 2.0])
    np.testing.assert_allclose(dsp.logsumexp(big, b=[0.0, 1.0, 1.0]), np.logaddexp(1.0, 2.0))
    with np.errstate(divide="ignore"):
        assert dsp.logsumexp(np.full(3, -np.inf)) == -np.inf
