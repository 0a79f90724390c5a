"""The torch backend: every primitive's torch kernel agrees with its NumPy kernel, the
generic rule check passes on torch, and conversion, placement and errors behave."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffkit_torch  # noqa: E402

import diffkit.plugins as plugins  # noqa: E402
from diffkit.testing import check_primitive  # noqa: E402

REG = plugins.registry()
NAMES = sorted(n for n, p in REG.primitives.items() if p.sample is not None)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present")
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _tensor_args(args, device="cpu"):
    return tuple(diffkit_torch.asarray(a, device=device)
                 if isinstance(a, np.ndarray | np.generic) else a for a in args)


def _leaves(out):
    return list(out) if isinstance(out, tuple | list) else [out]


def _signs(name, outs):
    """Singular and eigenvectors are unique up to sign: flip each so that its largest
    entry is positive (u's columns and vh's rows together for svd)."""
    if name == "svd":
        u, s, vh = outs
        flip = np.sign(np.take_along_axis(u, np.abs(u).argmax(-2)[..., None, :], -2))
        return [u * flip, s, vh * np.swapaxes(flip, -1, -2)]
    if name == "eigh":
        w, v = outs
        return [w, v * np.sign(np.take_along_axis(v, np.abs(v).argmax(-2)[..., None, :], -2))]
    return outs


def _agree(name, device="cpu"):
    """Run the NumPy and torch kernels of `name` on each sampled case and compare."""
    np_k, t_k = REG.kernels("numpy")[name], REG.kernels("torch")[name]
    for k, (args, params) in enumerate(REG.primitives[name].sample(np.random.default_rng(0))):
        if args and args[0] is None:  # creation with like=None: imitate a float64 array
            args = (np.zeros(()),) + tuple(args[1:])
        want = _leaves(np_k(*args, **params))
        got = _leaves(t_k(*_tensor_args(args, device), **params))
        assert all(isinstance(g, torch.Tensor) for g in got), f"{name} case {k}: {got}"
        assert all(g.device.type == torch.device(device).type for g in got), name
        want = _signs(name, [np.asarray(w) for w in want])
        got = _signs(name, [diffkit_torch.to_numpy(g) for g in got])
        assert len(got) == len(want), f"{name} case {k}: {len(got)} outputs, {len(want)}"
        for w, g in zip(want, got, strict=True):
            assert g.shape == w.shape, f"{name} case {k}: shape {g.shape} != {w.shape}"
            assert g.dtype == w.dtype, f"{name} case {k}: dtype {g.dtype} != {w.dtype}"
            np.testing.assert_allclose(g, w, **TOL, err_msg=f"{name} case {k} {params}")


@pytest.mark.parametrize("name", NAMES)
def test_kernels_agree_with_numpy(name):
    _agree(name)


# The rule check on torch-cpu is tests/test_primitives.py::test_rules_torch.


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("name", NAMES)
def test_rules_on_cuda(name):
    torch.set_default_device("cuda")  # check_primitive converts samples with asarray
    try:
        assert check_primitive(name, "torch") > 0
    finally:
        torch.set_default_device("cpu")


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("name", NAMES)
def test_kernels_agree_with_numpy_cuda(name):
    _agree(name, "cuda")
