"""Reductions and statistics: values equal NumPy's over shapes/axes/keepdims, gradients
against finite differences, and the declared choices at ties, zeros and zero spread."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4, 5))

AXES = [None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2)]
VALUED = ["sum", "prod", "mean", "max", "min", "amax", "amin", "var", "std", "median",
          "ptp", "nansum", "nanmean", "nanmax", "nanmin", "all", "any", "count_nonzero"]
SMOOTH = ["sum", "prod", "mean", "max", "min", "var", "std", "median", "ptp"]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("name", VALUED)
def test_values_match_numpy(name, axis, keepdims):
    got = getattr(dnp, name)(X, axis=axis, keepdims=keepdims)
    want = getattr(np, name)(X, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.shape(got) == np.shape(want)


@pytest.mark.parametrize("axis", [None, 1, (0, 2)])
@pytest.mark.parametrize("name", SMOOTH)
def test_gradients_fd(name, axis):
    x = RNG.normal(size=(3, 4, 2)) if name != "prod" else RNG.uniform(0.5, 1.5, (3, 4, 2))
    check_grads(lambda x: getattr(dnp, name)(x, axis=axis), (x,), order=2)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reductions(name):
    for axis in (None, 0, 2):
        np.testing.assert_array_equal(getattr(dnp, name)(X, axis), getattr(np, name)(X, axis))
    np.testing.assert_array_equal(getattr(dnp, name)(X, 1, keepdims=True),
                                  getattr(np, name)(X, 1, keepdims=True))


def test_dtype_and_ddof():
    i = np.arange(12).reshape(3, 4)
    assert dnp.mean(i).dtype == np.mean(i).dtype
    assert dnp.sum(i, dtype=np.float32).dtype == np.float32
    np.testing.assert_allclose(dnp.mean(X.astype(np.float32), 1), np.mean(X, 1), rtol=1e-5)
    for ddof in (0, 1, 2):
        np.testing.assert_allclose(dnp.var(X, 1, ddof=ddof), np.var(X, 1, ddof=ddof))
        np.testing.assert_allclose(dnp.std(X, (0, 2), ddof=ddof), np.std(X, (0, 2), ddof=ddof))
    check_grads(lambda x: dnp.std(x, 1, ddof=1), (X,), order=2)
    z = X[0] + 1j * X[1]
    np.testing.assert_allclose(dnp.var(z, 0), np.var(z, 0))
    np.testing.assert_allclose(dnp.std(z, 0), np.std(z, 0))


def test_max_ties_split_equally():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(dk.grad(lambda x: dnp.sum(dnp.max(x, 1)))(x),
                               [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(dk.grad(lambda x: dnp.min(x))(x), [[1, 0, 0], [0, 0, 0]])
    _, t = dk.jvp(lambda x: dnp.max(x, 1), (x,), (np.ones_like(x),))
    np.testing.assert_allclose(t, [1.0, 1.0])


def test_prod_and_cumprod_exact_at_zeros():
    x = np.array([2.0, 0.0, 3.0, 4.0])
    np.testing.assert_allclose(dk.grad(dnp.prod)(x), [0, 24, 0, 0])
    np.testing.assert_allclose(dk.grad(dnp.prod)(np.array([2.0, 0.0, 3.0, 0.0])), 0)
    # sum(cumprod(x)) = x0 + x0 x1 + x0 x1 x2 + x0 x1 x2 x3
    np.testing.assert_allclose(dk.grad(lambda x: dnp.sum(dnp.cumprod(x)))(x),
                               [1, 2 + 6 + 24, 0, 0])
    m = np.array([[1.5, 0.0, -2.0], [0.0, 0.0, 1.0]])
    check_grads(lambda m: dnp.prod(m, axis=1), (m,), order=2)
    check_grads(lambda m: dnp.prod(m, axis=(0, 1)), (m,), order=2)
    check_grads(lambda m: dnp.cumprod(m, axis=1), (m,), order=2)
    check_grads(dnp.cumprod, (m,), order=2)


def test_std_gradient_zero_at_zero_spread():
    x = np.full((2, 3), 1.5)
    np.testing.assert_array_equal(dk.grad(lambda x: dnp.sum(dnp.std(x, 1)))(x), 0)
    np.testing.assert_array_equal(dk.grad(dnp.std)(x), 0)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_cumulative(axis):
    for name in ("cumsum", "cumprod"):
        np.testing.assert_allclose(getattr(dnp, name)(X[0], axis), getattr(np, name)(X[0], axis))
        check_grads(lambda x, name=name: getattr(dnp, name)(x, axis), (X[0],), order=2)
    assert dnp.cumsum(np.arange(4), dtype=np.float32).dtype == np.float32


def test_median_and_quantiles():
    odd = np.array([3.0, 1.0, 2.0, 5.0, 4.0])
    even = np.array([3.0, 1.0, 2.0, 5.0])
    np.testing.assert_allclose(dk.grad(dnp.median)(odd), [1, 0, 0, 0, 0])
    np.testing.assert_allclose(dk.grad(dnp.median)(even), [0.5, 0, 0.5, 0])
    for method in ("linear", "lower", "higher", "midpoint", "nearest"):
        for q in (0.0, 0.3, [0.25, 0.5], [[0.1], [0.9]]):
            np.testing.assert_allclose(dnp.quantile(X, q, axis=1, method=method),
                                       np.quantile(X, q, axis=1, method=method))
    np.testing.assert_allclose(dnp.percentile(X, [10, 90], axis=(0, 2), keepdims=True),
                               np.percentile(X, [10, 90], axis=(0, 2), keepdims=True))
    np.testing.assert_allclose(dnp.median(X, (0, 1)), np.median(X, (0, 1)))
    check_grads(lambda x: dnp.quantile(x, [0.3, 0.8], axis=0), (X[:, :, 0],), order=2)
    # q = 0.3 of 5 sorted values sits 0.2 of the way from the 2nd (2.0) to the 3rd (3.0)
    np.testing.assert_allclose(dk.grad(lambda x: dnp.quantile(x, 0.3))(odd),
                               [0.2, 0, 0.8, 0, 0], atol=1e-12)
    np.testing.assert_allclose(dk.grad(dnp.median)(np.array([1.0, 2.0, 2.0])), [0, 0.5, 0.5])


def test_average():
    w = RNG.uniform(0.1, 1.0, 4)
    np.testing.assert_allclose(dnp.average(X, 1, weights=w), np.average(X, 1, weights=w))
    avg, scl = dnp.average(X, 1, weights=w, returned=True)
    want = np.average(X, 1, weights=w, returned=True)
    np.testing.assert_allclose(avg, want[0])
    np.testing.assert_allclose(scl, want[1])
    np.testing.assert_allclose(dnp.average(X, (0, 2)), np.average(X, (0, 2)))
    check_grads(lambda x, w: dnp.average(x, 1, weights=w), (X, w), order=2)
    with pytest.raises(TypeError, match="axis must be specified"):
        dnp.average(X, weights=w)


def test_nan_functions_ignore_nans():
    x = X[0].copy()
    x[1, 2] = np.nan
    x[2] = np.nan
    np.testing.assert_allclose(dnp.nansum(x, 1), np.nansum(x, 1))
    np.testing.assert_allclose(dnp.nanmean(x[:2], 1), np.nanmean(x[:2], 1))
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        want = np.nanmax(x, 1), np.nanmin(x, 1)
    np.testing.assert_allclose(dnp.nanmax(x, 1), want[0])
    np.testing.assert_allclose(dnp.nanmin(x, 1), want[1])
    want = np.where(np.isnan(x), 0.0, 1.0)
    np.testing.assert_array_equal(dk.grad(dnp.nansum)(x), want)
    np.testing.assert_allclose(dk.grad(dnp.nanmean)(x), want / want.sum())


def test_trapezoid_and_polyval():
    y = X[0]
    xs = np.sort(RNG.uniform(0, 3, 5))
    np.testing.assert_allclose(dnp.trapezoid(y), np.trapezoid(y))
    np.testing.assert_allclose(dnp.trapezoid(y, dx=0.5, axis=0), np.trapezoid(y, dx=0.5, axis=0))
    np.testing.assert_allclose(dnp.trapezoid(y, xs), np.trapezoid(y, xs))
    xs2 = np.cumsum(RNG.uniform(0.1, 1, (4, 5)), axis=1)
    np.testing.assert_allclose(dnp.trapz(y, xs2), np.trapezoid(y, xs2))
    check_grads(lambda y, x: dnp.trapezoid(y, x), (y, xs), order=2)
    p = np.array([2.0, -1.0, 0.5])
    np.testing.assert_allclose(dnp.polyval(p, y), np.polyval(p, y))
    check_grads(dnp.polyval, (p, y), order=2)


def test_errors():
    with pytest.raises(ValueError, match="axis 3 is out of bounds"):
        dnp.sum(X, axis=3)
    with pytest.raises(ValueError, match="repeated axis"):
        dnp.mean(X, axis=(0, -3))
    with pytest.raises(ValueError, match="zero-size array"):
        dnp.max(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="does not support out="):
        dnp.sum(X, out=np.empty(()))
    with pytest.raises(ValueError, match=r"range \[0, 1\]"):
        dnp.quantile(X, 1.5)
    with pytest.raises(ValueError, match="method 'weibull' is not supported"):
        dnp.quantile(X, 0.5, method="weibull")


def test_tracer_methods():
    def f(x):
        return (x.sum(0).max() + x.mean(axis=1, keepdims=True).sum() + x.std(ddof=1)
                + x.var() + x.prod() + x.cumsum(1).min() + x.cumprod(0).sum())

    x = RNG.uniform(0.5, 1.5, (3, 4))
    check_grads(f, (x,), order=1)
    assert int(dk.grad(lambda x: x.argmax() * 0.0 + x.sum())(x).sum()) == 12
