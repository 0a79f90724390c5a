"""`dk.default_backend` (issue 12 item 2): where creation functions put arrays when nothing
else says; a call sets it, a with-block restores it; environment and configuration file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import DiffkitError
from diffkit.testing import to_numpy

CREATED = {
    "zeros": lambda: dnp.zeros(3), "ones": lambda: dnp.ones((2, 2)), "eye": lambda: dnp.eye(2),
    "full": lambda: dnp.full(2, 1.5), "arange": lambda: dnp.arange(0.0, 1.0, 0.5),
    "linspace": lambda: dnp.linspace(0, 1, 3), "array": lambda: dnp.array([1.0, 2.0]),
    "tri": lambda: dnp.tri(2), "numbers": lambda: dnp.sin(1.0),
    "list-operand": lambda: dnp.sin([1.0, 2.0]),
}


def _setting(backend):
    return ("numpy", None) if backend == "numpy" else (
        "torch", "cuda" if backend == "torch-cuda" else "cpu")


@pytest.mark.parametrize("make", CREATED.values(), ids=CREATED.keys())
def test_creation_goes_to_the_default_backend_with_its_float_dtype(backend, make):
    name, device = _setting(backend)
    with dk.default_backend(name, device=device, dtype="float32"):
        out = make()
    assert dk.asarray(out).dtype in (np.float32, "torch.float32") or str(out.dtype).endswith(
        "float32")
    if name == "torch":
        assert out.device.type == device
    else:
        assert isinstance(out, np.ndarray | np.generic)
    assert to_numpy(make()).dtype == np.float64  # restored: NumPy's float64


def test_integers_keep_numpys_integer_dtype(backend):
    name, device = _setting(backend)
    with dk.default_backend(name, device=device, dtype="float32"):
        assert str(dnp.arange(3).dtype).endswith("int64")
        assert str(dnp.full(2, 3).dtype).endswith("int64")


def test_numpy_scalars_as_bounds_are_weak_numbers():
    torch = pytest.importorskip("torch")
    with dk.default_backend("torch", dtype="float32"):
        for out in (dnp.full(2, np.float64(1.5)), dnp.arange(np.int64(3)),
                    dnp.linspace(np.float64(0.0), 1.0, 3)):
            assert isinstance(out, torch.Tensor)
        assert dnp.full(2, np.float64(1.5)).dtype == torch.float32
        assert isinstance(dnp.full(2, np.ones(2)), np.ndarray)  # an array keeps its backend


def test_like_and_arrays_passed_in_still_decide(backend, to_backend):
    x = to_backend(np.ones(2))
    with dk.default_backend("numpy", dtype="float32"):
        assert type(dnp.zeros(2, like=x)) is type(x)
        assert to_numpy(dnp.zeros(2, like=x)).dtype == np.float64  # NumPy's default with like=
        assert type(dnp.sin(x)) is type(x)


def test_a_call_sets_it_for_the_process_and_the_block_restores_it():
    before = dk.default_backend.current()
    try:
        dk.default_backend("numpy", dtype="float32")
        assert dnp.zeros(1).dtype == np.float32
        with dk.default_backend("numpy", dtype="float64"):
            assert dnp.zeros(1).dtype == np.float64
        assert dnp.zeros(1).dtype == np.float32
    finally:
        dk.default_backend()
    assert dnp.zeros(1).dtype == np.float64
    assert dk.default_backend.current().backend == before.backend


def test_the_torch_default_with_a_fake_second_device():
    torch = pytest.importorskip("torch")
    with dk.default_backend("torch", device="meta", dtype="float32"):
        eye = dnp.eye(3)
        x = torch.ones(3, device="meta")
        g = dk.grad(lambda x: dnp.sum(eye @ x + dnp.linspace(0.0, 1.0, 3) * x))(x)
    assert eye.device.type == "meta" and eye.dtype == torch.float32
    assert g.device.type == "meta" and g.dtype == torch.float32


def test_a_gradient_of_a_program_with_constants_under_the_torch_default():
    torch = pytest.importorskip("torch")
    with dk.default_backend("torch"):
        g = dk.grad(lambda w: dnp.sum((dnp.eye(2) @ w - dnp.array([1.0, 2.0])) ** 2))(
            np.array([0.0, 0.0]))  # a NumPy input meets torch constants: it follows them
        gt = dk.grad(lambda w: dnp.sum((dnp.eye(2) @ w - dnp.array([1.0, 2.0])) ** 2))(
            torch.zeros(2, dtype=torch.float64))
    np.testing.assert_allclose(to_numpy(g), [-2.0, -4.0])
    assert isinstance(gt, torch.Tensor) and gt.tolist() == [-2.0, -4.0]


@pytest.mark.parametrize("args, kwargs, match", [
    (("torhc",), {}, r"backend 'torhc' is not available; available backends: numpy"),
    (("numpy",), {"dtype": "int32"}, r"dtype='int32' is not a float dtype"),
    (("numpy",), {"device": "cuda"}, r"backend 'numpy' cannot create arrays with "
                                     r"device='cuda'"),
])
def test_a_bad_setting_is_refused_when_made(args, kwargs, match):
    before = dk.default_backend.current()
    with pytest.raises(DiffkitError, match=match):
        dk.default_backend(*args, **kwargs)
    assert dk.default_backend.current() == before


def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_the_environment_sets_the_initial_default():
    out = _run("import diffkit.numpy as dnp; print(dnp.zeros(1).dtype)",
               DIFFKIT_DEFAULT_DTYPE="float32")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "float32"
    out = _run("import diffkit.numpy as dnp; dnp.zeros(1)", DIFFKIT_DEFAULT_BACKEND="nope")
    assert "the default backend 'nope' (set by $DIFFKIT_DEFAULT_BACKEND) is not available" in \
        out.stderr


def test_the_environment_can_make_torch_the_default():
    pytest.importorskip("torch")
    out = _run("import diffkit.numpy as dnp; x = dnp.eye(2); print(type(x).__name__, x.dtype, "
               "x.device)", DIFFKIT_DEFAULT_BACKEND="torch", DIFFKIT_DEFAULT_DEVICE="meta",
               DIFFKIT_DEFAULT_DTYPE="float32")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Tensor", "torch.float32", "meta"]


def test_the_configuration_file_sets_the_initial_default(tmp_path):
    conf = tmp_path / "config.yaml"
    conf.write_text("defaults:\n  backend: numpy\n  dtype: float32\n")
    out = _run("import diffkit.numpy as dnp; print(dnp.ones(1).dtype)", DIFFKIT_CONFIG=str(conf))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "float32"
    conf.write_text("defaults:\n  backnd: torch\n")
    out = _run("import diffkit.numpy as dnp; dnp.ones(1)", DIFFKIT_CONFIG=str(conf))
    assert "'defaults:' must be a mapping with keys among backend, device, dtype" in out.stderr
