"""diffkit.numpy.fft: results equal NumPy's for every n/s/axes/norm; gradients agree with
finite differences (real and complex inputs); the transposes of the real transforms."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads

F = dnp.fft
rng = np.random.default_rng(0)
X = rng.normal(size=(4, 6))
Z = X + 1j * rng.normal(size=(4, 6))
NORMS = [None, "backward", "ortho", "forward"]

# (function name, input, keyword arguments)
ONE_D = [(f, a, kw) for f, a in [("fft", Z), ("ifft", Z), ("rfft", X), ("irfft", Z),
                                 ("hfft", Z), ("ihfft", X)]
         for kw in [{}, {"n": 9}, {"n": 4, "axis": 0}, {"n": 3}]]
N_D = [(f, a, kw) for f, a in [("fftn", Z), ("ifftn", Z), ("rfftn", X), ("irfftn", Z),
                               ("fft2", Z), ("ifft2", Z), ("rfft2", X), ("irfft2", Z)]
       for kw in [{}, {"s": (5, 3), "axes": (0, 1)}, {"axes": (1, 0)}, {"s": (7,), "axes": (0,)}]]
CASES = ONE_D + N_D


def _id(case):
    f, _, kw = case
    return f + "-" + "-".join(f"{k}{v}" for k, v in kw.items())


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("f,a,kw", CASES, ids=[_id(c) for c in CASES])
def test_values_match_numpy(f, a, kw, norm):
    np.testing.assert_allclose(getattr(F, f)(a, norm=norm, **kw),
                               getattr(np.fft, f)(a, norm=norm, **kw), atol=1e-12)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
@pytest.mark.parametrize("f,a,kw", CASES, ids=[_id(c) for c in CASES])
def test_gradients(f, a, kw, norm):
    check_grads(lambda x: getattr(F, f)(x, norm=norm, **kw), (a,), order=1)


@pytest.mark.parametrize("f,a", [("fft", Z), ("rfft", X), ("irfft", Z)])
def test_second_order(f, a):
    check_grads(lambda x: dnp.abs(getattr(F, f)(x, n=7)) ** 2, (a,), order=2)


def test_fft_of_real_input_has_real_cotangent():
    g = dk.grad(lambda x: dnp.sum(dnp.real(F.fft(x)) * np.arange(6.0)))(X[0])
    assert g.dtype == X.dtype
    np.testing.assert_allclose(g, np.real(np.fft.fft(np.arange(6.0))), atol=1e-12)


@pytest.mark.parametrize("n", [6, 7])
def test_rfft_transpose_is_not_irfft_times_n(n):
    # <g, rfft(x)> = <rfft^T(g), x>, computed independently from the dense DFT matrix
    x = rng.normal(size=n)
    g = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    _, f_vjp = dk.vjp(F.rfft, x)
    dense = np.fft.fft(np.eye(n))[: n // 2 + 1]  # rfft as a matrix
    np.testing.assert_allclose(f_vjp(g)[0], np.real(dense.T @ g), atol=1e-12)
    assert not np.allclose(f_vjp(g)[0], np.fft.irfft(g, n) * n)


@pytest.mark.parametrize("n", [6, 7])
def test_irfft_transpose_weights(n):
    # irfft is R-linear in (Re, Im) of its input; build its real matrix by columns
    h = n // 2 + 1
    basis = np.concatenate([np.eye(h), 1j * np.eye(h)])
    cols = np.stack([np.fft.irfft(b, n) for b in basis], axis=1)  # (n, 2h)
    g = rng.normal(size=n)
    re_im = cols.T @ g  # <g, y> = re_im . (Re z, Im z); the pairing Re(c z) = c_re z_re -
    want = re_im[:h] - 1j * re_im[h:]  # c_im z_im, so c's imaginary part flips sign
    _, f_vjp = dk.vjp(lambda z: F.irfft(z, n), Z[0, :h])
    np.testing.assert_allclose(f_vjp(g)[0], want, atol=1e-12)


def test_rfft_irfft_round_trip_gradient():
    w = rng.normal(size=6)
    f = lambda x: dnp.sum(w * F.irfft(F.rfft(x), 6))  # noqa: E731 (the identity map)
    np.testing.assert_allclose(dk.grad(f)(X[0]), w, atol=1e-12)
    check_grads(lambda x: F.irfft(F.rfft(x, norm="ortho"), 6, norm="ortho"), (X[0],), order=2)


def test_batched_and_shifted():
    x = rng.normal(size=(2, 5, 4))
    np.testing.assert_allclose(F.fftshift(x), np.fft.fftshift(x))
    np.testing.assert_allclose(F.fftshift(x, axes=1), np.fft.fftshift(x, axes=1))
    np.testing.assert_allclose(F.ifftshift(x, axes=(0, 2)), np.fft.ifftshift(x, axes=(0, 2)))
    check_grads(lambda y: F.fftshift(F.fft(y, axis=1), axes=1), (x,), order=2)
    check_grads(lambda y: F.ifftshift(y, axes=(1, 2)), (x,), order=1)


def test_frequencies():
    np.testing.assert_allclose(F.fftfreq(7, d=0.25), np.fft.fftfreq(7, d=0.25))
    np.testing.assert_allclose(F.rfftfreq(8, 2.0), np.fft.rfftfreq(8, 2.0))
    assert isinstance(F.fftfreq(4, like=X), np.ndarray)


def test_float32_precision_is_kept():
    x = X.astype(np.float32)
    assert F.rfft(x).dtype == np.complex64
    assert dk.grad(lambda y: dnp.sum(dnp.abs(F.rfft(y)) ** 2))(x).dtype == np.float32


@pytest.mark.parametrize("call,err,match", [
    (lambda: F.fft(Z, n=0), ValueError, r"Invalid number of FFT data points \(0\)"),
    (lambda: F.fft(Z, norm="bad"), ValueError, "Invalid norm value 'bad'"),
    (lambda: F.rfft(Z), TypeError, "rfft needs real input"),
    (lambda: F.fftn(Z, s=(3,), axes=(0, 1)), ValueError, "different lengths"),
    (lambda: F.fft(Z, out=Z), TypeError, "out="),
])
def test_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()
