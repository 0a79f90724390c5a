"""The torch backend: every primitive's torch kernel agrees with its NumPy kernel, the
generic rule check passes on torch, and conversion, placement and errors behave."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffkit_torch  # noqa: E402

import diffkit as dk  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
import diffkit.plugins as plugins  # noqa: E402
from diffkit.errors import BackendMismatchError  # noqa: E402
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
        checked = check_primitive(name, "torch")  # 0 exactly for a non-differentiable one
        assert (checked == 0) if REG.primitives[name].nondiff else (checked > 0)
    finally:
        torch.set_default_device("cpu")


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("name", NAMES)
def test_kernels_agree_with_numpy_cuda(name):
    _agree(name, "cuda")


# -- rules agree across backends ---------------------------------------------------------------
def _rule_outputs(name, args, params, to, rng):
    """JVP and VJP of primitive `name` at `args` (converted by `to`) along fixed random
    tangents and cotangents, as NumPy arrays."""
    prim = REG.primitives[name]
    pos = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind in "fc"]
    conv = [to(a) if isinstance(a, np.ndarray | np.generic) else a for a in args]

    def f(*dyn):
        full = list(conv)
        for i, d in zip(pos, dyn, strict=True):
            full[i] = d
        return prim.bind(*full, **params)

    tangents = [to(rng.standard_normal(args[i].shape).astype(args[i].dtype)) for i in pos]
    out, t_out = dk.jvp(f, [conv[i] for i in pos], tangents)
    outs = _leaves(out)
    cts = [to(rng.standard_normal(np.shape(o)).astype(diffkit_torch.to_numpy(o).dtype
                                                     if isinstance(o, torch.Tensor)
                                                     else np.asarray(o).dtype))
           for o in outs]
    _, f_vjp = dk.vjp(f, *(conv[i] for i in pos))
    ct_in = f_vjp(tuple(cts) if isinstance(out, tuple | list) else cts[0])
    return [np.asarray(_np(x)) for x in _leaves(t_out) + list(ct_in)]


def _np(x):
    return diffkit_torch.to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)


DIFF_NAMES = [n for n in NAMES if not REG.primitives[n].nondiff and n not in ("svd", "eigh")]


@pytest.mark.parametrize("name", DIFF_NAMES)
def test_rules_agree_with_numpy(name):
    """The same JVP and VJP on NumPy and torch-cpu inputs (svd/eigh: their derivatives
    depend on the vectors' signs, checked by the generic rule check instead)."""
    cases = REG.primitives[name].sample(np.random.default_rng(0))
    for k, (args, params) in enumerate(cases):
        if not any(isinstance(a, np.ndarray) and a.dtype.kind in "fc" for a in args):
            continue
        want = _rule_outputs(name, args, params, np.asarray, np.random.default_rng(k))
        got = _rule_outputs(name, args, params, diffkit_torch.asarray,
                            np.random.default_rng(k))
        for w, g in zip(want, got, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11,
                                       err_msg=f"{name} case {k} {params}")


# -- conversion, placement, errors ------------------------------------------------------------
def test_asarray_follows_numpy_dtypes_and_maps_dtype_names():
    t = dk.asarray([1.0, 2.0], backend="torch")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    assert dk.asarray([1, 2], backend="torch").dtype == torch.int64
    for dt in (np.float32, "float32", np.dtype("float32"), torch.float32):
        assert dk.asarray(np.ones(2), backend="torch", dtype=dt).dtype == torch.float32
    back = dk.asarray(t, backend="numpy")
    assert isinstance(back, np.ndarray) and back.dtype == np.float64
    ro = np.broadcast_to(np.arange(3.0), (2, 3))  # read-only: torch needs a copy
    assert dk.asarray(ro, backend="torch").shape == (2, 3)
    with pytest.raises(TypeError, match="not numeric"):
        diffkit_torch.asarray(["a", "b"])


def test_results_and_gradients_keep_dtype_and_type():
    x = torch.linspace(0.1, 1.0, 4, dtype=torch.float32)
    y = dnp.exp(dnp.sin(x) * 2.0)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    g = dk.grad(lambda x: dnp.sum(dnp.tanh(x) ** 2))(x)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float32
    torch.testing.assert_close(g, 2 * torch.tanh(x) * (1 - torch.tanh(x) ** 2))
    out, t = dk.jvp(lambda x: dnp.cos(x), (x,), (torch.ones_like(x),))
    assert t.dtype == torch.float32 and isinstance(t, torch.Tensor)


def test_numpy_meeting_torch_is_a_weak_constant_that_moves():
    """(Two *strong* backends are the error: tests/test_weak_constants.py.)"""
    out = dnp.add(torch.ones(2, dtype=torch.float64), np.ones(2))
    assert isinstance(out, torch.Tensor) and out.tolist() == [2.0, 2.0]


def test_two_devices_are_explained_with_both_named():
    a, b = torch.ones(2), torch.ones(2, device="meta")
    with pytest.raises(RuntimeError) as info:
        torch.add(a, b)
    err = diffkit_torch.explain("add", (a, b), info.value)
    assert isinstance(err, BackendMismatchError)
    assert "'add' got tensors on two devices" in str(err) and "cpu" in str(err)
    assert "meta" in str(err)
    assert diffkit_torch.explain("add", (a, a), info.value) is None


def test_two_devices_through_dispatch_name_both():
    a, b = torch.ones(2), torch.ones(2, device="meta")
    with pytest.raises(BackendMismatchError, match=r"'add' got tensors on two devices.*cpu.*meta"):
        dnp.add(a, b)
    with pytest.raises(BackendMismatchError, match="two devices"):
        dk.grad(lambda x: dnp.sum(x * b))(a)


def test_importing_diffkit_does_not_import_torch(tmp_path):
    code = ("import sys, numpy as np, diffkit as dk, diffkit.numpy as dnp, diffkit.plugins\n"
            "diffkit.plugins.registry()\n"
            "dk.grad(lambda x: dnp.sum(dnp.sin(x)))(np.ones(3))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_without_torch_the_backend_asks_to_install_it(tmp_path):
    code = ("import sys; sys.modules['torch'] = None  # as if not installed\n"
            "import numpy as np, diffkit as dk, diffkit.numpy as dnp\n"
            "assert float(dnp.sum(dnp.sin(np.zeros(3)))) == 0.0\n"
            "try:\n"
            "    dk.asarray(np.ones(2), backend='torch')\n"
            "except dk.DiffkitError as e:\n"
            "    assert 'diffkit[torch]' in str(e), e\n"
            "else:\n"
            "    raise AssertionError('no error')\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# -- CUDA ---------------------------------------------------------------------------------------
@pytest.mark.cuda
@CUDA
def test_cuda_results_tangents_and_cotangents_stay_on_the_device():
    x = dk.asarray(np.linspace(0.1, 1.0, 5), backend="torch", device="cuda")
    assert x.device.type == "cuda" and x.dtype == torch.float64
    g = dk.grad(lambda x: dnp.sum(dnp.sin(x) * x))(x)
    assert g.device == x.device
    _, t = dk.jvp(lambda x: dnp.exp(x), (x,), (dnp.ones_like(x),))
    assert t.device == x.device
    _, f_vjp = dk.vjp(lambda x: x[np.array([0, 2, 2])] ** 2, x)
    (ct,) = f_vjp(dnp.ones_like(x[np.array([0, 2, 2])]))
    assert ct.device == x.device


@pytest.mark.cuda
@CUDA
def test_cuda_cpu_mix_is_an_error_naming_both_devices():
    a, b = torch.ones(3, device="cuda"), torch.ones(3)
    with pytest.raises((BackendMismatchError, RuntimeError), match=r"cuda.*cpu|cpu.*cuda"):
        dnp.add(a, b)


def _chain(x):
    for _ in range(50):
        x = dnp.sin(x) * 1.0001 + 0.01 * dnp.cos(x)
    return dnp.sum(x)


def _dense(w1, w2, x):
    return dnp.sum((dnp.tanh(x @ w1) @ w2) ** 2)


@pytest.mark.cuda
@CUDA
def test_cuda_gradient_hot_path_has_no_host_device_copies():
    """No synchronising call (sync debug mode raises on one) and no memcpy between host
    and device (profiler) while computing a gradient, once the inputs are on the GPU."""
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device("cuda")
    x = torch.rand(8, dtype=torch.float64, device=dev)
    w1, w2 = torch.randn(64, 64, device=dev), torch.randn(64, 8, device=dev)
    X = torch.randn(32, 64, device=dev)
    g_chain, g_dense = dk.grad(_chain), dk.grad(_dense, argnums=(0, 1))
    g_chain(x), g_dense(w1, w2, X)  # warm-up: kernel tables, caches
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            g_chain(x)
            g_dense(w1, w2, X)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    copies = [e.name for e in prof.events() if "memcpy" in e.name.lower()
              and ("htod" in e.name.lower() or "dtoh" in e.name.lower())]
    assert not copies, f"host-device copies on the gradient path: {copies[:5]}"


BINARY = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "fmax",
          "fmin", "arctan2", "hypot", "logaddexp", "mod", "fmod", "equal", "less"]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_scalars_are_weak_as_in_numpy(name, dtype):
    """NumPy 2 (NEP 50): a Python scalar takes the array's dtype, on either side."""
    np_k, t_k = REG.kernels("numpy")[name], REG.kernels("torch")[name]
    a = np.linspace(0.5, 2.0, 4).astype(dtype)
    for args in ((a, 1.5), (1.5, a)):
        want = np_k(*args)
        got = t_k(*(diffkit_torch.asarray(v) if isinstance(v, np.ndarray) else v
                    for v in args))
        assert diffkit_torch.to_numpy(got).dtype == want.dtype, (name, args)
        np.testing.assert_allclose(diffkit_torch.to_numpy(got), want, rtol=1e-6)


def test_where_of_two_scalars_is_float64_as_in_numpy():
    c = torch.tensor([True, False])
    assert dnp.where(c, 1.0, 0.0).dtype == torch.float64


# -- NumPy's results on raw (untraced) tensors ---------------------------------------------------
RAW_CALLS = {
    "std": lambda m, x: m.std(x), "var-ddof": lambda m, x: m.var(x, axis=0, ddof=1),
    "mean": lambda m, x: m.mean(x, axis=1), "median": lambda m, x: m.median(x),
    "quantile": lambda m, x: m.quantile(x, 0.3), "ptp": lambda m, x: m.ptp(x, axis=0),
    "cumprod": lambda m, x: m.cumprod(x, axis=1), "sort": lambda m, x: m.sort(x, axis=0),
    "argsort": lambda m, x: m.argsort(x), "diff": lambda m, x: m.diff(x, 2),
    "round": lambda m, x: m.round(x * 10, 1), "clip": lambda m, x: m.clip(x, 0.3, 0.6),
    "where": lambda m, x: m.where(x > 0.5, x, 0), "average": lambda m, x: m.average(x, 0),
    "gradient": lambda m, x: m.gradient(x, axis=1), "trapezoid": lambda m, x: m.trapezoid(x),
    "norm": lambda m, x: m.linalg.norm(x, axis=1), "fft": lambda m, x: m.fft.fft(x),
    "rfft-int": lambda m, x: m.fft.rfft((x * 10).astype("int64") if m is np else
                                        dnp.astype(x * 10, dnp.int64)),
    "flip": lambda m, x: m.flip(x), "pad": lambda m, x: m.pad(x, 1),
    "tensordot": lambda m, x: m.tensordot(x, x, axes=([1], [1])),
    "mixed-index": lambda m, x: x[1, :, [0, 2]] if m is np else dnp.at(x)[1, :, [0, 2]].get(),
    "negative-step": lambda m, x: x[::-1, 1] if m is np else dnp.at(x)[::-1, 1].get(),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("call", RAW_CALLS.values(), ids=RAW_CALLS.keys())
def test_dnp_functions_on_raw_tensors_give_numpys_result(call, dtype):
    x = np.random.default_rng(3).uniform(0.2, 0.9, size=(2, 3, 4)).astype(dtype)
    want = np.asarray(call(np, x))
    got = call(dnp, torch.from_numpy(x))
    assert isinstance(got, torch.Tensor)
    assert diffkit_torch.to_numpy(got).dtype == want.dtype and tuple(got.shape) == want.shape
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(diffkit_torch.to_numpy(got), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["arctan2", "hypot", "logaddexp", "logaddexp2"])
def test_float_valued_binary_functions_of_integers_are_float64_as_in_numpy(name):
    i, f = np.arange(1, 4), np.linspace(0.5, 1.5, 3).astype(np.float32)
    for args in ((i, 2), (i, i), (i, f)):
        want = getattr(np, name)(*args)
        got = getattr(dnp, name)(*(torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                                   for a in args))
        assert diffkit_torch.to_numpy(got).dtype == want.dtype
        np.testing.assert_allclose(diffkit_torch.to_numpy(got), want, rtol=1e-6)
