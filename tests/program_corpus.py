"""A corpus of small NumPy-style programs, written once with `dnp` (issue 12 item 3).

Each entry is `(program, shapes)`: the program takes float arrays of those shapes (drawn by
`inputs`) and returns a scalar loss. Constants are created inside the programs, as people
write them (`dnp.eye`, `dnp.zeros`, literal arrays, Python numbers, NumPy arrays), so the
same source must run on every backend. tests/test_program_corpus.py runs each on NumPy and
on torch (float64 and float32, and CUDA when present) and compares values and gradients;
benchmarks/gpu_check.sh runs it on the GPU.
"""

from __future__ import annotations

import numpy as np

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.scipy.special import erf, gammaln, logsumexp

PROGRAMS: dict = {}


def program(*shapes, positive=False, spd=False):
    """Register a program with its input shapes (`positive`: inputs in [0.5, 1.5];
    `spd`: a 2-d input made symmetric positive definite)."""

    def register(fn):
        PROGRAMS[fn.__name__] = (fn, shapes, positive, spd)
        return fn

    return register


def inputs(name: str, seed: int = 0) -> tuple:
    """The NumPy float64 inputs of program `name` (the same for every run)."""
    _, shapes, positive, spd = PROGRAMS[name]
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.uniform(0.5, 1.5, size=s) if positive else rng.normal(size=s)
        if spd and len(s) == 2:
            a = a @ a.T / s[0] + np.eye(s[0])
        out.append(a)
    return tuple(out)


# -- shape manipulation --------------------------------------------------------------------
@program((12,), (3, 2))
def reshape_transpose(x, w):
    return dnp.sum((x.reshape(3, 4).T @ w) ** 2) + dnp.sum(dnp.swapaxes(x.reshape(2, 3, 2), 0, 2))


@program((3, 4))
def stack_concatenate(x):
    y = dnp.concatenate([x, dnp.zeros((1, 4)), 2.0 * x[:1]], axis=0)
    z = dnp.stack([y, dnp.ones_like(y)], axis=-1)
    return dnp.sum(dnp.sin(z) * dnp.arange(2.0))


@program((3,), (4,))
def broadcast_expand(a, b):
    m = dnp.expand_dims(a, 1) * b[dnp.newaxis, :]
    return dnp.sum(dnp.broadcast_to(m, (2, 3, 4)) ** 2) + dnp.sum(dnp.squeeze(m[:, :1]))


@program((5, 3))
def flip_roll(x):
    return dnp.sum(dnp.flip(x, 0) * dnp.roll(x, 2, axis=0) + x[::-1, ::2].sum())


@program((2, 3))
def tile_repeat(x):
    return dnp.sum(dnp.tile(x, (2, 1)) ** 2) + dnp.sum(dnp.repeat(x, [1, 2, 0], axis=1) ** 3)


@program((3, 4), (4, 5))
def moveaxis_einsum(a, b):
    c = dnp.einsum("ij,jk->ik", a, b)
    return dnp.sum(dnp.moveaxis(c[None], 0, -1) ** 2) + dnp.einsum("ii", a[:, :3])


@program((4, 4))
def triangles_and_trace(x):
    return dnp.sum(dnp.triu(x, 1) ** 2) - dnp.sum(dnp.tril(x) * dnp.tri(4)) + dnp.trace(x)


@program((3, 4))
def pad_and_cumsum(x):
    p = dnp.pad(x, ((1, 0), (2, 1)), constant_values=0.5)
    return dnp.sum(dnp.cumsum(p, axis=1) ** 2) + dnp.sum(dnp.ravel(p)[::3])


@program((7,))
def sort_values(x):
    s = dnp.sort(x)
    return dnp.sum(s * dnp.linspace(0.0, 1.0, 7)) + dnp.median(x)


@program((3, 4))
def splits_and_hstack(x):
    a, b = dnp.split(x, 2, axis=1)
    return dnp.sum(dnp.hstack([b, a]) ** 2 * dnp.arange(4.0)) + dnp.sum(
        dnp.vstack([a, b]) @ dnp.ones((2, 3)))


# -- fancy indexing ------------------------------------------------------------------------
@program((6,))
def gather_with_repeats(x):
    idx = np.array([0, 2, 2, 5, 0])
    return dnp.sum(x[idx] * dnp.array([1.0, 2.0, 3.0, 4.0, 5.0]))


@program((2, 3, 4))
def mixed_advanced_index(z):
    w = dnp.arange(6.0).reshape(2, 3)
    return dnp.sum(z[1, :, [0, 2]] * w) + dnp.sum(z[:, 1, [3, 0]] ** 2)


@program((4, 5))
def boolean_mask(x):
    mask = np.arange(20).reshape(4, 5) % 3 == 0
    return dnp.sum(x[mask] ** 2) + dnp.sum(dnp.where(mask, x, 0.0))


@program((5,), (3,))
def at_updates(x, v):
    y = dnp.at(x)[np.array([0, 3])].set(v[:2])  # (x.at works on traced values only)
    y = dnp.at(dnp.at(y)[1:4].add(v))[np.array([2, 2])].multiply(1.5)
    return dnp.sum(y ** 2)


@program((3, 5))
def take_along_argsort(x):
    order = dnp.argsort(x, axis=1)
    return dnp.sum(dnp.take_along_axis(x, order, axis=1) * dnp.arange(5.0))


@program((4, 4))
def diagonals(x):
    return dnp.sum(dnp.diag(x) ** 2) + dnp.sum(dnp.diagonal(x, 1)) + dnp.sum(dnp.diag(x[0]))


@program((6,))
def take_and_negative_steps(x):
    return dnp.sum(dnp.take(x, [5, 0, 1]) * x[-1:-4:-1]) + x[::-2] @ x[1::2]


@program((6,), (4, 3))
def computed_indices(x, w):
    """Indices computed from the data: inside a compiled step, operands of dynamic_getitem /
    dynamic_index_add (one program for every value), not guards."""
    order = dnp.argsort(x)
    j, k = order[-1:], order[:2]
    y = dnp.at(w)[(j + 1) % 4].add(x[k[:1]])
    return dnp.sum(y[j % 4] * w[3 - j % 4]) + dnp.sum(x[k] ** 2) + dnp.sum(dnp.take(w, k % 4, 0))


# -- linear algebra ------------------------------------------------------------------------
@program((4, 4), (4,), spd=True)
def solve_and_inverse(a, b):
    return dnp.sum(dnp.linalg.solve(a, b) ** 2) + dnp.trace(dnp.linalg.inv(a))


@program((3, 3), spd=True)
def determinants(a):
    sign, logdet = dnp.linalg.slogdet(a)
    return dnp.linalg.det(a) + sign * logdet


@program((5,), positive=True)
def gaussian_process(log_params):
    x = dnp.linspace(0.0, 1.0, 5)
    y = dnp.sin(2 * dnp.pi * x)
    ell, sigma = dnp.exp(log_params[:2])
    k = sigma ** 2 * dnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / ell ** 2)
    k = k + 0.1 * dnp.eye(5) + dnp.diag(log_params) * 0.01
    chol = dnp.linalg.cholesky(k)
    alpha = dnp.linalg.solve(chol.T, dnp.linalg.solve(chol, y))
    return 0.5 * y @ alpha + dnp.sum(dnp.log(dnp.diag(chol)))


@program((4, 4), spd=True)
def symmetric_eigen(a):
    w, v = dnp.linalg.eigh(a)
    return dnp.sum(w ** 2) + dnp.sum(v[:, -1] ** 2 * dnp.arange(4.0))  # sign-free


@program((5, 3))
def singular_values(a):
    return dnp.sum(dnp.linalg.svd(a, compute_uv=False) ** 3) + dnp.linalg.norm(a)


@program((4, 3))
def qr_and_norms(a):
    q, r = dnp.linalg.qr(a)
    return dnp.sum(dnp.abs(dnp.diag(r))) + dnp.linalg.norm(a[0]) + dnp.linalg.norm(a, "fro")


@program((5, 3), (5,))
def least_squares(a, b):
    x = dnp.linalg.pinv(a) @ b
    return dnp.sum((a @ x - b) ** 2) + dnp.sum(x ** 2)


@program((3, 3))
def matrix_power_and_outer(a):
    m = dnp.linalg.matrix_power(a / 3.0, 3)
    return (dnp.sum(m) + dnp.sum(dnp.outer(a[0], a[1]) ** 2)
            + dnp.sum(dnp.kron(a[:2, :2], dnp.eye(2))))


@program((3,), (3,))
def cross_and_dot(a, b):
    c = dnp.cross(a, b)
    return dnp.dot(c, c) + dnp.vdot(a, dnp.cross(b, dnp.array([0.0, 0.0, 1.0])))


# -- FFT -----------------------------------------------------------------------------------
@program((16,))
def power_spectrum(x):
    f = dnp.fft.fft(x * (0.5 - 0.5 * dnp.cos(2 * dnp.pi * dnp.arange(16.0) / 16)))
    return dnp.sum(dnp.abs(f) ** 2 * dnp.fft.fftfreq(16) ** 2)


@program((12,))
def rfft_filter(x):
    k = dnp.fft.rfftfreq(12)
    y = dnp.fft.irfft(dnp.fft.rfft(x) * dnp.exp(-10.0 * k ** 2), n=12)
    return dnp.sum((y - x) ** 2) + dnp.sum(y[::2])


@program((6, 6), (3, 3))
def fft2_convolution(img, kernel):
    padded = dnp.at(dnp.zeros((6, 6)))[:3, :3].set(kernel)  # a raw array has no .at
    conv = dnp.real(dnp.fft.ifft2(dnp.fft.fft2(img) * dnp.fft.fft2(padded)))
    return dnp.sum(dnp.fft.fftshift(conv) ** 2)


# -- loops with constants created inside --------------------------------------------------
@program((3,))
def pendulum_rk4(p):
    def f(s):
        return dnp.array([s[1], -dnp.sin(s[0]) - p[2] * s[1]])

    s, dt = dnp.array((1.0, 0.0)) * p[:2], 0.05
    for _ in range(20):
        k1 = f(s)
        k2 = f(s + dt / 2 * k1)
        k3 = f(s + dt / 2 * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return dnp.sum(s ** 2)


@program((16,), positive=True)
def heat_explicit(kappa):
    u = dnp.exp(-((dnp.linspace(0.0, 1.0, 16) - 0.5) ** 2) / 0.02)
    for _ in range(25):
        lap = dnp.roll(u, 1) - 2.0 * u + dnp.roll(u, -1)
        u = u + 0.2 * kappa * lap + dnp.zeros(16)
    return dnp.sum(u ** 2)


@program((4,))
def checkpointed_loop(x0):
    def step(x, i, w):
        rot = dnp.array([[0.0, -1.0], [1.0, 0.0]])
        return dnp.concatenate([rot @ x[:2] * 0.9, dnp.tanh(x[2:] * w)]) + dnp.ones(4) * 0.01

    w = dnp.array([0.5, 1.5])
    return dnp.sum(dk.checkpoint.loop(step, x0, 8, (w,), budget="laptop") ** 2)


@program((5,), (3,))
def scanned_trajectory(x, c0):
    def step(c, xi, i):
        c = dnp.tanh(c * 0.9 + xi * dnp.ones(3) + dnp.eye(3)[0])
        return c, dnp.sum(c ** 2)

    c, ys = dk.checkpoint.scan(step, c0, x)
    return dnp.sum(ys) + dnp.sum(c)


@program((2,), positive=True)
def newton_sqrt(a):
    x = dnp.ones(2)
    for _ in range(6):
        x = 0.5 * (x + a / x)
    return dnp.sum(x * dnp.array([1.0, 2.0]))


@program((3, 3))
def power_iteration(a):
    m = a @ a.T + dnp.eye(3)
    v = dnp.ones(3) / dnp.sqrt(3.0)
    for _ in range(15):
        v = m @ v
        v = v / dnp.linalg.norm(v)
    return v @ m @ v


# -- elementwise and reductions --------------------------------------------------------------
@program((4, 3), (5, 4))
def softmax_cross_entropy(w, x):
    logits = x @ w
    logp = logits - logsumexp(logits, axis=1, keepdims=True)
    return -dnp.mean(logp[np.arange(5), np.array([0, 2, 1, 1, 0])])


@program((4, 6))
def statistics_with_ddof(x):
    return (dnp.sum(dnp.std(x, axis=0, ddof=1)) + dnp.var(x, ddof=1) + dnp.mean(x ** 2)
            + dnp.sum(dnp.average(x, axis=1, weights=dnp.arange(1.0, 7.0))))


@program((3, 4), positive=True)
def products_and_extrema(x):
    return (dnp.prod(x) + dnp.sum(dnp.max(x, axis=0)) - dnp.min(x) + dnp.sum(dnp.cumprod(x, 1))
            + dnp.ptp(x[0]))


@program((8,))
def clipped_activations(x):
    y = dnp.clip(x, -2.0, 2.0) + dnp.maximum(x, 0.0) ** 2 + dnp.abs(x) * 0.5
    return dnp.sum(y * dnp.sign(x + 10.0)) + dnp.sum(dnp.logaddexp(x, 0.0))


@program((6,), positive=True)
def special_functions(x):
    return dnp.sum(erf(x) + gammaln(x + 1.0) + dnp.log1p(x) + dnp.arctan2(x, 2.0) + dnp.cbrt(x))


@program((5,))
def polynomial_and_interp(x):
    p = dnp.polyval(x[:3], x)
    q = dnp.interp(dnp.linspace(-1.0, 1.0, 4), dnp.linspace(-2, 2, 5), x).astype(x.dtype)
    return dnp.sum(p ** 2) + dnp.sum(q ** 3) + dnp.trapezoid(x ** 2, dx=0.5)


@program((4,), (3,))
def meshgrid_field(a, b):
    xx, yy = dnp.meshgrid(a, b)
    return dnp.sum(dnp.sin(xx) * dnp.cos(yy) * dnp.full((3, 4), 0.5))


@program((3, 4))
def tensordot_and_inner(a):
    return dnp.tensordot(a, a, axes=([1], [1])).sum() + dnp.inner(a[0], a[1]) + dnp.sum(
        dnp.matmul(a, a.T) * dnp.identity(3))


@program((5,))
def names_and_dtypes(x):
    y = x.astype(dnp.float64) if x.dtype == dnp.float64 else x
    z = dnp.where(dnp.isfinite(y / 0.5), y, dnp.nan) * dnp.e + dnp.pi
    return dnp.sum(z ** 2) + dnp.sum(dnp.where(dnp.full(3, dnp.inf) < 0.0, 1.0, y[:3]))


@program((6,))
def convolve_and_diff(x):
    return dnp.sum(dnp.convolve(x, dnp.array([0.25, 0.5, 0.25]), mode="same") ** 2) + dnp.sum(
        dnp.diff(x, 2) ** 2) + dnp.sum(dnp.gradient(x))


@program((3,))
def python_state_tuple(p):
    state = (1.0, 0.0, 0.0)
    for _ in range(5):
        state = (state[0] * p[0] + state[1], state[1] * p[1] - state[2] * 0.1, state[2] + p[2])
    return dnp.sum(dnp.array(state) ** 2)


@program((3,))
def checkpointed_literal_state(p):
    def step(s, i, p):
        x, y, z = s
        return (x * p[0] + y, y * p[1] - 0.1 * z, z + p[2])

    return dnp.sum(dnp.array(dk.checkpoint.loop(step, (1.0, 0.0, 0.0), 5, (p,))) ** 2)
