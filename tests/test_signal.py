"""convolve, correlate, interp: results equal NumPy's; gradients agree with finite
differences in both convolution arguments and in interp's x and fp."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads

rng = np.random.default_rng(0)
MODES = ["full", "same", "valid"]
LENGTHS = [(5, 3), (5, 4), (3, 5), (4, 5), (6, 1), (1, 1)]


def _pair(na, nv, complex_):
    a, v = rng.normal(size=na), rng.normal(size=nv)
    if complex_:
        a, v = a + 1j * rng.normal(size=na), v + 1j * rng.normal(size=nv)
    return a, v


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("na,nv", LENGTHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_convolutions(name, mode, na, nv, complex_):
    a, v = _pair(na, nv, complex_)
    f = getattr(dnp, name)
    np.testing.assert_allclose(f(a, v, mode), getattr(np, name)(a, v, mode), atol=1e-12)
    check_grads(lambda x, y: f(x, y, mode), (a, v), order=2)


def test_correlate_default_mode_is_valid():
    a, v = _pair(6, 3, False)
    np.testing.assert_allclose(dnp.correlate(a, v), np.correlate(a, v))


XP = np.array([0.0, 0.5, 1.7, 2.0, 3.1])
FP = rng.normal(size=5)
X_IN = np.array([-0.7, 0.2, 0.9, 1.85, 2.6, 3.0, 3.6])  # none on a knot but one at the end


@pytest.mark.parametrize("kw", [{}, {"left": -2.0, "right": 5.0}, {"period": 2.5},
                                {"left": 1j}], ids=["plain", "left-right", "period", "cplx"])
def test_interp_values(kw):
    fp = FP + 1j * FP[::-1] if "left" in kw and isinstance(kw["left"], complex) else FP
    x = rng.uniform(-2, 5, size=(3, 4))
    np.testing.assert_allclose(dnp.interp(x, XP, fp, **kw), np.interp(x, XP, fp, **kw))


@pytest.mark.parametrize("kw", [{}, {"left": -2.0, "right": 5.0}, {"period": 2.5}])
def test_interp_gradients(kw):
    x = np.delete(X_IN, 5)  # finite differences across the kink at x = 3.0 mean nothing
    check_grads(lambda x_, fp: dnp.interp(x_, XP, fp, **kw), (x, FP), order=2)


def test_interp_gradient_in_fp_complex():
    fp = FP + 1j * rng.normal(size=5)
    check_grads(lambda x, f: dnp.interp(x, XP, f), (X_IN[:5], fp), order=2)


def test_interp_slopes_and_kinks():
    slopes = np.diff(FP) / np.diff(XP)
    dx = dk.grad(lambda x: dnp.sum(dnp.interp(x, XP, FP)))
    # inside a segment: its slope; outside the knots: 0; at a knot: the mean of both sides
    np.testing.assert_allclose(dx(np.array([0.2, 2.5, -1.0, 4.0])),
                               [slopes[0], slopes[3], 0.0, 0.0])
    np.testing.assert_allclose(dx(np.array([0.5, 3.1])),
                               [(slopes[0] + slopes[1]) / 2, slopes[3] / 2])


def test_interp_fp_cotangent_is_the_hat_weights():
    x = np.array([0.25, 2.6, -1.0])  # halfway in segment 0, in segment 3, left of the knots
    g = dk.grad(lambda fp: dnp.sum(dnp.interp(x, XP, fp)))(FP)
    t = (2.6 - 2.0) / 1.1
    np.testing.assert_allclose(g, [0.5 + 1.0, 0.5, 0.0, 1 - t, t])
    g = dk.grad(lambda fp: dnp.sum(dnp.interp(x, XP, fp, left=0.0)))(FP)
    np.testing.assert_allclose(g, [0.5, 0.5, 0.0, 1 - t, t])


@pytest.mark.parametrize("call,err,match", [
    (lambda: dnp.convolve(np.ones(3), np.ones(2), "middle"), ValueError, "mode must be"),
    (lambda: dnp.convolve(np.ones((2, 2)), np.ones(2)), ValueError, "takes 1-D arrays"),
    (lambda: dnp.correlate(np.ones(3), np.ones(0)), ValueError, "v cannot be empty"),
    (lambda: dnp.interp(0.5, XP, FP[:3]), ValueError, "same length"),
    (lambda: dnp.interp(0.5, XP, FP, period=0), ValueError, "period must be a non-zero"),
])
def test_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()
