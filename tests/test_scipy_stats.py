"""diffkit.scipy.stats (issue 13): every distribution's functions against SciPy on both
backends, derivatives in the values and the parameters (to second order, finite differences
and the dot-product test; shapes in the cdf family too), the refusal of traced counts,
zero derivatives outside the support, and the multivariate distributions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
import diffkit.scipy.stats as ds
from diffkit.errors import ConcretizationError
from diffkit.testing import check_grads, to_numpy

ss = pytest.importorskip("scipy.stats")
RNG = np.random.default_rng(5)
X = RNG.uniform(-2.5, 2.5, 4)
XP = RNG.uniform(0.2, 3.0, 4)
XU = RNG.uniform(0.1, 0.9, 4)

# name -> (x, parameters): every parameter is differentiated, shapes in the cdf family too
CONTINUOUS = {
    "norm": (X, (0.3, 1.7)), "t": (X, (3.5, 0.2, 1.3)), "cauchy": (X, (0.2, 1.3)),
    "laplace": (X, (0.2, 1.3)), "logistic": (X, (0.2, 1.3)),
    "expon": (XP, (-0.1, 1.3)), "gamma": (XP, (2.5, -0.1, 1.3)),
    "beta": (XU, (2.5, 1.5, 0.05, 0.9)), "chi2": (XP, (3.0, -0.1, 1.3)),
    "uniform": (X, (-3.0, 6.0)),
}
FUNCTIONS = ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")


def _quiet(f, *args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args)


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_values_match_scipy_in_and_out_of_support(name, backend, to_backend):
    _, params = CONTINUOUS[name]
    x = np.linspace(-4, 4, 17)  # reaches outside every support above
    for fn in FUNCTIONS:
        got = _quiet(getattr(getattr(ds, name), fn), to_backend(x), *params)
        want = _quiet(getattr(getattr(ss, name), fn), x, *params)
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-300,
                                   err_msg=f"{name}.{fn}")


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_derivatives_in_values_and_parameters(name, fn, backend, to_backend):
    x, params = CONTINUOUS[name]
    check_grads(getattr(getattr(ds, name), fn),
                to_backend((x,) + tuple(np.float64(p) for p in params)), order=2)


def test_tails_keep_their_accuracy():
    far = np.array([-40.0, -10.0, 10.0, 40.0])
    np.testing.assert_allclose(ds.norm.logcdf(far), ss.norm.logcdf(far), rtol=1e-14)
    np.testing.assert_allclose(ds.norm.sf(far[:2] * -1), ss.norm.sf(-far[:2]), rtol=1e-13)
    np.testing.assert_allclose(ds.cauchy.cdf(-1e12), ss.cauchy.cdf(-1e12), rtol=1e-14)
    np.testing.assert_allclose(ds.logistic.logsf(far), ss.logistic.logsf(far), rtol=1e-14)
    g = dk.grad(lambda v: ds.norm.logcdf(v))(-40.0)  # ~ -x: finite, not inf/inf
    np.testing.assert_allclose(g, 40.02498, rtol=1e-6)


def test_outside_the_support_the_derivative_is_zero(backend, to_backend):
    """Below 0 the gamma density is 0 whatever the parameters: its log is -inf with zero
    derivative (no nan from log of a negative number in the branch not taken)."""
    x = to_backend(np.array([-0.5, 1.5]))
    g = dk.grad(lambda v, a: dnp.sum(ds.gamma.pdf(v, a)), argnums=(0, 1))(
        x, to_backend(np.array(2.5)))
    assert to_numpy(g[0])[0] == 0.0 and np.all(np.isfinite(to_numpy(g[1])))
    g = dk.grad(lambda v: dnp.sum(ds.beta.pdf(v, 2.0, 3.0)))(to_backend(np.array([-1.0, 2.0])))
    np.testing.assert_array_equal(to_numpy(g), [0.0, 0.0])


def test_values_may_be_lists_as_in_scipy():
    np.testing.assert_allclose(ds.norm.logpdf([0.1, 0.5], 0.2, 2.0),
                               ss.norm.logpdf([0.1, 0.5], 0.2, 2.0), rtol=1e-14)
    np.testing.assert_allclose(ds.gamma.cdf([1.0, 2.0], 2.0), ss.gamma.cdf([1.0, 2.0], 2.0),
                               rtol=1e-14)


def test_invalid_parameters_give_nan_as_scipy():
    assert np.isnan(ds.norm.logpdf(0.3, 0.0, -1.0)) and np.isnan(ss.norm.logpdf(0.3, 0, -1))
    assert np.isnan(ds.gamma.cdf(0.3, -1.0)) and np.isnan(ds.binom.pmf(1, 3, 1.5))


K = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 2.5])
DISCRETE = {"poisson": (2.3,), "binom": (6, 0.3)}


@pytest.mark.parametrize("name", sorted(DISCRETE))
def test_discrete_values_match_scipy(name, backend, to_backend):
    for fn in ("logpmf", "pmf", "cdf", "logcdf", "sf", "logsf"):
        got = _quiet(getattr(getattr(ds, name), fn), to_backend(K), *DISCRETE[name])
        want = _quiet(getattr(getattr(ss, name), fn), K, *DISCRETE[name])
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-300,
                                   err_msg=f"{name}.{fn}")


@pytest.mark.parametrize("fn", ("logpmf", "pmf", "cdf", "logcdf", "sf", "logsf"))
def test_discrete_derivatives_in_the_rate(fn, backend, to_backend):
    k = to_backend(np.array([0.0, 1.0, 3.0]))
    mu, p = to_backend(np.array(2.3)), to_backend(np.array(0.3))
    check_grads(lambda m: getattr(ds.poisson, fn)(k, m), (mu,), order=2)
    check_grads(lambda q: getattr(ds.binom, fn)(k, 6, q), (p,), order=2)


@pytest.mark.parametrize("call,match", [
    (lambda k: ds.poisson.logpmf(k, 2.0), r"poisson.logpmf: `k` is a float traced by `grad`"
                                          r", but it is a count"),
    (lambda k: ds.poisson.sf(k, 2.0), r"poisson.sf: `k` is a float traced"),
    (lambda n: ds.binom.cdf(1.0, n, 0.3), r"binom.cdf: `n` is a float traced"),
])
def test_traced_counts_are_refused(call, match, backend, to_backend):
    with pytest.raises(ConcretizationError, match=match):
        dk.grad(call)(to_backend(np.array(3.0)))


# -- multivariate ----------------------------------------------------------------------------
def _spd(b):
    return b @ dnp.swapaxes(b, -1, -2) + dnp.eye(3, like=b)


B = RNG.normal(size=(3, 3))
MEAN = RNG.normal(size=3)
PTS = RNG.normal(size=(4, 3))


@pytest.mark.parametrize("x,cov", [(PTS, B @ B.T + np.eye(3)), (PTS[0], B @ B.T + np.eye(3)),
                                   (PTS, 2.0), (PTS, np.array([1.0, 2.0, 3.0]))],
                         ids=["batch", "one-point", "scalar-cov", "diagonal-cov"])
def test_multivariate_normal_matches_scipy(x, cov, backend, to_backend):
    got = ds.multivariate_normal.logpdf(to_backend(x), to_backend(MEAN), to_backend(cov))
    want = ss.multivariate_normal.logpdf(x, MEAN, cov)
    assert np.shape(to_numpy(got)) == np.shape(want)
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(ds.multivariate_normal.entropy(to_backend(MEAN),
                                                                       to_backend(cov))),
                               ss.multivariate_normal.entropy(MEAN, cov), rtol=1e-12)


def test_multivariate_normal_one_dimensional_points():
    x = RNG.normal(size=5)
    np.testing.assert_allclose(ds.multivariate_normal.logpdf(x, None, 2.0),
                               ss.multivariate_normal.logpdf(x, None, 2.0), rtol=1e-13)


def test_multivariate_normal_derivatives(backend, to_backend):
    """In x, the mean and the covariance (made symmetric positive definite from b, so finite
    differences stay on valid covariances)."""
    mvn = ds.multivariate_normal
    args = to_backend((PTS, MEAN, B))
    check_grads(lambda x, m, b: mvn.logpdf(x, m, _spd(b)), args, order=2)
    check_grads(lambda m, b: mvn.entropy(m, _spd(b)), args[1:], order=2)
    check_grads(lambda x, m, b: mvn.pdf(x[0], m, _spd(b)), args, order=1)
    # the covariance itself, perturbed in every direction (not only symmetric ones)
    check_grads(mvn.logpdf, to_backend((PTS, MEAN, B @ B.T + np.eye(3))), order=1)


def test_multivariate_normal_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"multivariate_normal.logpdf: cov must be a scalar, "
                                         r"a \(3,\) diagonal or a \(3, 3\) matrix"):
        ds.multivariate_normal.logpdf(PTS, MEAN, np.eye(2))
    with pytest.raises(ValueError, match=r"x's last axis has 2 entries but the distribution "
                                         r"has dimension 3"):
        ds.multivariate_normal.logpdf(PTS[:, :2], MEAN, np.eye(3))


ALPHA = np.array([1.5, 2.0, 0.7])
SIMPLEX = RNG.dirichlet(ALPHA, size=4).T  # quantiles along axis 0, as SciPy


def test_dirichlet_matches_scipy(backend, to_backend):
    for x in (SIMPLEX, SIMPLEX[:2], SIMPLEX[:, 0]):
        got = ds.dirichlet.logpdf(to_backend(x), to_backend(ALPHA))
        np.testing.assert_allclose(to_numpy(got), ss.dirichlet.logpdf(x, ALPHA), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(ds.dirichlet.pdf(to_backend(SIMPLEX), ALPHA)),
                               ss.dirichlet.pdf(SIMPLEX, ALPHA), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(ds.dirichlet.entropy(to_backend(ALPHA))),
                               ss.dirichlet.entropy(ALPHA), rtol=1e-12)


def test_dirichlet_derivatives(backend, to_backend):
    """In alpha and in x (K - 1 free entries: the last is 1 - their sum, so finite
    differences stay on the simplex)."""
    x, alpha = to_backend((SIMPLEX[:2], ALPHA))
    check_grads(ds.dirichlet.logpdf, (x, alpha), order=2)
    check_grads(ds.dirichlet.entropy, (alpha,), order=2)


def test_dirichlet_refuses_points_off_the_simplex():
    with pytest.raises(ValueError, match=r"dirichlet: the entries of x along axis 0 must sum "
                                         r"to 1"):
        ds.dirichlet.logpdf(np.array([0.2, 0.2, 0.2]), ALPHA)
    with pytest.raises(ValueError, match=r"dirichlet: x has 4 entries along axis 0 but alpha "
                                         r"has 3"):
        ds.dirichlet.logpdf(np.full(4, 0.25), ALPHA)
