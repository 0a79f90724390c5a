"""diffkit.scipy.signal: convolve, correlate, fftconvolve equal SciPy's (values, shapes,
dtypes) in every mode, 1-D to 3-D, real, complex and integer, on NumPy arrays and tensors;
gradients in both inputs against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
from diffkit.scipy import signal as S
from diffkit.testing import check_grads

ss = pytest.importorskip("scipy.signal")  # the reference values only

rng = np.random.default_rng(0)
MODES = ["full", "same", "valid"]
SHAPES = [((5,), (3,)), ((3,), (5,)), ((4, 5), (2, 3)), ((2, 3), (4, 5)), ((3, 4, 5), (2, 2, 3))]
NAMES = ["convolve", "correlate", "fftconvolve"]


def _np(x):
    return dk.asarray(x, backend="numpy")


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("s1,s2", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_values_match_scipy(name, mode, s1, s2, complex_, backend, to_backend):
    a, b = rng.normal(size=s1), rng.normal(size=s2)
    if complex_:
        a, b = a + 1j * rng.normal(size=s1), b + 1j * rng.normal(size=s2)
    want = getattr(ss, name)(a, b, mode)
    got = _np(getattr(S, name)(*to_backend((a, b)), mode))
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("s1,s2", SHAPES[1:], ids=[f"{a}x{b}" for a, b in SHAPES[1:]])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_gradients(name, mode, s1, s2, backend, to_backend):
    args = to_backend((rng.normal(size=s1), rng.normal(size=s2)))
    check_grads(lambda x, y: getattr(S, name)(x, y, mode), args, order=1)


def test_gradients_second_order_complex(backend, to_backend):
    a = rng.normal(size=(4, 5)) + 1j * rng.normal(size=(4, 5))
    b = rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))
    check_grads(lambda x, y: S.correlate(x, y, "same"), to_backend((a, b)), order=2)


def test_integers_stay_integers_in_convolve_but_not_fftconvolve(backend, to_backend):
    a, b = rng.integers(-5, 5, size=(4, 5)), rng.integers(-5, 5, size=(2, 3))
    for name in NAMES:
        want = getattr(ss, name)(a, b, "same")
        got = _np(getattr(S, name)(*to_backend((a, b)), "same"))
        assert got.dtype == want.dtype, name
        np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("axes,mode", [(1, "same"), ((-1,), "valid"), ([0], "full")])
def test_fftconvolve_axes(axes, mode, backend, to_backend):
    x, k = rng.normal(size=(3, 8)), rng.normal(size=(3, 3) if axes != [0] else (2, 8))
    want = ss.fftconvolve(x, k, mode, axes=axes)
    np.testing.assert_allclose(_np(S.fftconvolve(*to_backend((x, k)), mode, axes=axes)), want,
                               atol=1e-12)
    check_grads(lambda a, b: S.fftconvolve(a, b, mode, axes=axes), to_backend((x, k)),
                order=1)


def test_errors():
    with pytest.raises(ValueError, match="one must be at least as large as the other"):
        S.convolve(np.ones((3, 2)), np.ones((2, 3)), "valid")
    with pytest.raises(ValueError, match="acceptable mode flags"):
        S.correlate(np.ones(3), np.ones(2), "middle")
    with pytest.raises(ValueError, match="same dimensionality"):
        S.fftconvolve(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match="axis 0 is not convolved, so it must broadcast"):
        S.fftconvolve(np.ones((3, 4)), np.ones((2, 2)), axes=1)
