"""The program corpus (tests/program_corpus.py) on every backend: one source, the same values,
gradients and dtypes as NumPy (issue 12 item 3). Float32 runs keep float32 gradients, with
tolerances set per dtype; a directional finite difference checks NumPy's gradient itself."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
from diffkit.testing import to_numpy
from tests.program_corpus import PROGRAMS, inputs

TOL = {"float64": {"rtol": 1e-8, "atol": 1e-10}, "float32": {"rtol": 2e-3, "atol": 2e-4}}
NAMES = sorted(PROGRAMS)


def _run(name, args):
    fn = PROGRAMS[name][0]
    return dk.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)


def _dtype_name(x) -> str:
    return str(getattr(x, "dtype", "float64")).removeprefix("torch.")


def test_the_corpus_has_at_least_40_programs():
    assert len(PROGRAMS) >= 40


@pytest.mark.parametrize("name", NAMES)
def test_numpy_gradient_matches_a_finite_difference(name):
    args = inputs(name)
    _, grads = _run(name, args)
    rng = np.random.default_rng(1)
    dirs = [rng.normal(size=a.shape) for a in args]
    h = 1e-6
    f = PROGRAMS[name][0]
    up = f(*(a + h * d for a, d in zip(args, dirs, strict=True)))
    down = f(*(a - h * d for a, d in zip(args, dirs, strict=True)))
    fd = (float(up) - float(down)) / (2 * h)
    want = sum(float(np.vdot(g, d)) for g, d in zip(grads, dirs, strict=True))
    np.testing.assert_allclose(fd, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_backend_agrees_with_numpy(name, backend, to_backend):
    args = inputs(name)
    want_value, want_grads = _run(name, args)
    value, grads = _run(name, to_backend(args))
    assert _dtype_name(value) == _dtype_name(want_value), "output dtype differs from NumPy's"
    _compare(value, grads, want_value, want_grads, args, backend, "float64")


@pytest.mark.parametrize("name", NAMES)
def test_float32_end_to_end(name, backend, to_backend):
    """Under dk.default_backend(..., dtype="float32") constants made inside are float32 too,
    so values and gradients stay float32 on every backend."""
    args = inputs(name)
    want_value, want_grads = _run(name, args)
    typed = tuple(a.astype(np.float32) for a in args)
    where = ("numpy", None) if backend == "numpy" else (
        "torch", "cuda" if backend == "torch-cuda" else "cpu")
    with dk.default_backend(where[0], device=where[1], dtype="float32"):
        value, grads = _run(name, to_backend(typed))
    assert _dtype_name(value) == "float32"
    _compare(value, grads, want_value, want_grads, args, backend, "float32")


def _compare(value, grads, want_value, want_grads, args, backend, dtype):
    np.testing.assert_allclose(to_numpy(value), to_numpy(want_value), **TOL[dtype])
    for g, w, a in zip(grads, want_grads, args, strict=True):
        assert _dtype_name(g) == dtype and tuple(g.shape) == a.shape
        if backend != "numpy":
            assert not isinstance(g, np.ndarray), "a gradient came back as a NumPy array"
        np.testing.assert_allclose(to_numpy(g), w, **TOL[dtype])


# Programs that read values on the way (a mask's size, .item(), a loop's recomputation
# fingerprint), which the `meta` device does not have.
READS_VALUES = {"boolean_mask", "checkpointed_literal_state", "checkpointed_loop",
                "determinants", "polynomial_and_interp", "scanned_trajectory"}


@pytest.mark.parametrize("name", NAMES)
def test_every_value_stays_on_a_second_device(name):
    """CUDA readiness without a GPU: on torch's `meta` device (shapes and devices, no data),
    the value and every gradient stay on the inputs' device: no constant is left on the CPU."""
    torch = pytest.importorskip("torch")
    args = tuple(torch.tensor(a, device="meta") for a in inputs(name))
    if name in READS_VALUES:
        with pytest.raises((NotImplementedError, RuntimeError), match="meta"):
            _run(name, args)
        return
    value, grads = _run(name, args)
    assert value.device.type == "meta"
    assert [g.device.type for g in grads] == ["meta"] * len(args)
    assert [tuple(g.shape) for g in grads] == [a.shape for a in inputs(name)]
