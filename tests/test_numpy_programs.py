"""Whole NumPy programs, written as people write them, differentiated and checked.

Each program uses `dnp` exactly where the NumPy version would use `np`; `check_grads`
compares JVPs with central differences and VJPs with JVPs, to second order.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.core.tracer import Tracer
from diffkit.scipy.special import logsumexp
from diffkit.testing import check_grads, to_numpy

rng = np.random.default_rng(42)


def softmax_cross_entropy(W, X, labels):
    logits = X @ W
    logp = logits - logsumexp(logits, axis=1, keepdims=True)
    return -dnp.mean(logp[np.arange(len(labels)), labels])


def logistic_regression(w, X, y):
    z = X @ w[:-1] + w[-1]
    return dnp.sum(dnp.log1p(dnp.exp(-y * z))) + 0.5 * dnp.dot(w, w)


def gp_neg_log_likelihood(log_params, x, y):
    ell, sigma, noise = dnp.exp(log_params)
    d2 = (x[:, None] - x[None, :]) ** 2
    K = sigma**2 * dnp.exp(-0.5 * d2 / ell**2) + noise**2 * dnp.eye(len(x), like=x)
    L = dnp.linalg.cholesky(K)
    alpha = dnp.linalg.solve(L.T, dnp.linalg.solve(L, y))
    return 0.5 * y @ alpha + dnp.sum(dnp.log(dnp.diag(L)))


def pairwise_energy(pos):
    diff = pos[:, None, :] - pos[None, :, :]
    r = dnp.sqrt(dnp.sum(diff**2, axis=-1) + dnp.eye(len(pos)))
    inv = dnp.triu(1.0 / r, k=1)
    return dnp.sum(inv**12 - 2 * inv**6)


def mlp(params, X):
    h = X
    for W, b in params[:-1]:
        h = dnp.maximum(h @ W + b, 0.0)
    W, b = params[-1]
    return dnp.sum((h @ W + b) ** 2)


def pendulum_rk4(theta0, omega0, damping):
    def f(s):
        return dnp.array([s[1], -dnp.sin(s[0]) - damping * s[1]])

    s, dt = dnp.array([theta0, omega0]), 0.05
    for _ in range(40):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return s[0] ** 2 + s[1] ** 2


def spectral_derivative_energy(u):
    n = u.shape[0]
    k = 2j * np.pi * np.fft.fftfreq(n, d=1.0 / n)
    du = dnp.real(dnp.fft.ifft(k * dnp.fft.fft(u)))
    return dnp.sum(du**2) / n


def polyfit_residual(y, x):
    A = dnp.stack([x**0, x, x**2], axis=1)
    coef = dnp.linalg.lstsq(A, y, rcond=None)[0]
    return dnp.sum((A @ coef - y) ** 2) + dnp.sum(coef**2)


def upwind_transport(c0, velocity):
    c = c0
    for _ in range(20):
        flux = dnp.where(velocity > 0, velocity * c, velocity * dnp.roll(c, -1))
        c = c - 0.4 * (flux - dnp.roll(flux, 1))
    return dnp.sum(c**2 * dnp.linspace(0.0, 1.0, c.shape[0], like=c))


def scatter_histogram(weights, idx):
    hist = dnp.at(dnp.zeros(5))[idx].add(weights)  # plain arrays have no .at: dnp.at
    return dnp.sum(hist**2) + dnp.sum(dnp.cumsum(hist) * dnp.arange(5.0))


def rosenbrock(x):
    return dnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def normalize_rows(A):
    norms = dnp.linalg.norm(A, axis=1, keepdims=True)
    B = A / norms
    return dnp.sum(B @ B.T) + dnp.var(B) * 10


labels = rng.integers(0, 3, size=6)
CASES = {
    "softmax_cross_entropy": (softmax_cross_entropy, (rng.standard_normal((4, 3)),),
                              (rng.standard_normal((6, 4)), labels)),
    "logistic_regression": (logistic_regression, (rng.standard_normal(4) * 0.3,),
                            (rng.standard_normal((8, 3)), np.sign(rng.standard_normal(8)))),
    "gp_neg_log_likelihood": (gp_neg_log_likelihood, (np.log(np.array([0.7, 1.2, 0.3])),),
                              (np.linspace(0, 3, 7), np.sin(np.linspace(0, 3, 7)))),
    "pairwise_energy": (pairwise_energy, (rng.standard_normal((5, 2)) * 2.0,), ()),
    "mlp": (mlp, ([(rng.standard_normal((3, 5)), rng.standard_normal(5) + 0.5),
                   (rng.standard_normal((5, 2)), rng.standard_normal(2))],),
            (rng.standard_normal((4, 3)),)),
    "pendulum_rk4": (pendulum_rk4, (1.0, 0.2, 0.1), ()),
    "spectral_derivative_energy": (spectral_derivative_energy,
                                   (np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))
                                    + 0.1 * rng.standard_normal(16),), ()),
    "polyfit_residual": (polyfit_residual, (rng.standard_normal(9),), (np.linspace(-1, 1, 9),)),
    "upwind_transport": (upwind_transport, (np.exp(-np.linspace(-2, 2, 12) ** 2),),
                         (np.where(np.arange(12) < 6, 0.8, -0.6),)),
    "scatter_histogram": (scatter_histogram, (rng.uniform(0.5, 1.5, 8),),
                          (np.array([0, 1, 1, 3, 4, 4, 4, 2]),)),
    "rosenbrock": (rosenbrock, (rng.uniform(-1, 1, 6),), ()),
    "normalize_rows": (normalize_rows, (rng.standard_normal((4, 3)),), ()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_program_derivatives_to_second_order(name):
    f, diff_args, const_args = CASES[name]
    n = len(diff_args)
    check_grads(lambda *a: f(*a, *const_args), diff_args, order=2)
    g = dk.grad(lambda *a: f(*a, *const_args), argnums=tuple(range(n)))(*diff_args)
    assert len(g) == n


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "gp_neg_log_likelihood",
                                  "pendulum_rk4", "upwind_transport", "rosenbrock"])
def test_program_gradients_agree_on_torch(name, to_backend):
    f, diff_args, const_args = CASES[name]
    n = len(diff_args)
    grad = dk.grad(lambda *a: f(*a, *const_args), argnums=tuple(range(n)))
    g_np = grad(*diff_args)
    conv = to_backend if name != "pendulum_rk4" else (lambda x: x)
    g_be = dk.grad(lambda *a: f(*a, *[conv(c) if isinstance(c, np.ndarray) and c.dtype.kind == "f"
                                      else c for c in const_args]),
                   argnums=tuple(range(n)))(*[conv(a) for a in diff_args])
    for a, b in zip(g_be, g_np, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-10, atol=1e-12)


METHODS = {
    "repeat": lambda a: a.repeat(2, axis=0), "argsort": lambda a: a.argsort(axis=0),
    "itemsize": lambda a: a.itemsize, "nbytes": lambda a: a.nbytes,
    "std-ddof": lambda a: a.std(ddof=1), "T": lambda a: a.T, "mT": lambda a: a.mT,
    "negative-step": lambda a: a[::-1, :, ::-2], "mixed-index": lambda a: a[1, :, [0, 2]],
    "astype": lambda a: a.astype(np.float32), "flatten": lambda a: a.flatten(),
    "cumprod": lambda a: a.cumprod(), "argmax": lambda a: a.argmax(axis=1),
}


@pytest.mark.parametrize("method", METHODS.values(), ids=METHODS.keys())
def test_traced_values_have_numpys_methods_on_every_backend(method, backend, to_backend):
    """A traced tensor answers NumPy's methods as an ndarray does (a raw tensor keeps torch's:
    docs/conventions.md), so the same program runs on every backend."""
    x = rng.uniform(0.1, 1.0, size=(2, 3, 4))
    seen = []

    def f(a):
        seen.append(method(a))
        return dnp.sum(a)

    dk.grad(f)(to_backend(x))
    got = seen[0]
    got = got._base() if isinstance(got, Tracer) else got
    want = method(x)
    np.testing.assert_allclose(to_numpy(got) if hasattr(got, "shape") else got, want,
                               rtol=1e-6)
    assert np.shape(to_numpy(got) if hasattr(got, "shape") else got) == np.shape(want)
