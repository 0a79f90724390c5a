"""Weak constants (issue 12): NumPy arrays, NumPy scalars and Python numbers that meet a
tensor move to its backend and device, traced or not; only two strong arrays of different
backends (or devices) are an error."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffkit as dk  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
import diffkit.plugins as plugins  # noqa: E402
from diffkit.core.registry import Backend, Registry  # noqa: E402
from diffkit.errors import BackendMismatchError  # noqa: E402
from diffkit.plugins import hookimpl  # noqa: E402
from diffkit.testing import to_numpy  # noqa: E402


def _kind(x):
    return "numpy" if isinstance(x, np.ndarray | np.generic) else x.device.type


def _device(backend):
    return {"numpy": "numpy", "torch": "cpu", "torch-cuda": "cuda"}[backend]


def test_constants_made_inside_a_gradient_follow_the_traced_argument(backend, to_backend):
    """The issue's examples: dnp.sin(1.0), dnp.eye, a literal state, NumPy scalars."""
    p = to_backend(np.array([0.5, 2.0]))
    g = dk.grad(lambda p: p[0] * dnp.sin(1.0) + p[1] * np.float64(3.0))(p)
    assert _kind(g) == _device(backend)
    np.testing.assert_allclose(to_numpy(g), [np.sin(1.0), 3.0])
    z = to_backend(np.arange(4.0).reshape(2, 2))
    g = dk.grad(lambda z: dnp.sum(z * dnp.eye(2) + z @ dnp.array([[1.0, 0.0], [0.0, 2.0]])))(z)
    np.testing.assert_allclose(to_numpy(g), np.eye(2) + [[1.0, 2.0], [1.0, 2.0]])
    s = dk.grad(lambda p: dnp.sum(dnp.array((1.0, 0.0)) * p + dnp.zeros(2) + dnp.ones(2)))(p)
    assert _kind(s) == _device(backend)
    np.testing.assert_allclose(to_numpy(s), [1.0, 0.0])


def test_untraced_calls_move_numpy_values_to_the_tensor():
    t = torch.ones(3, dtype=torch.float64)
    out = dnp.add(t, np.arange(3.0))
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    out = dnp.where(np.array([True, False, True]), t, np.zeros(3))
    assert isinstance(out, torch.Tensor) and out.tolist() == [1.0, 0.0, 1.0]
    assert isinstance(dnp.concatenate([np.zeros(2), t]), torch.Tensor)


@pytest.mark.parametrize("const", [2.5, np.float64(2.5), np.array(2.5)],
                         ids=["python", "numpy-scalar", "numpy-0d"])
def test_numbers_and_0d_constants_take_the_tensors_dtype(const):
    x = torch.linspace(0.0, 1.0, 3, dtype=torch.float32)
    assert dnp.multiply(x, const).dtype == torch.float32
    g = dk.grad(lambda x: dnp.sum(x * const + const))(x)
    assert g.dtype == torch.float32
    # an integer tensor times a float constant is float, as in NumPy (never truncated)
    assert dnp.multiply(torch.arange(3), const).tolist() == [0.0, 2.5, 5.0]


def test_arrays_of_numpy_keep_their_dtype_as_numpy_promotes_them():
    x = torch.ones(3, dtype=torch.float32)
    assert dnp.multiply(x, np.ones(3)).dtype == torch.float64  # NumPy: float64 too
    assert dnp.multiply(x, np.ones(3, np.float32)).dtype == torch.float32
    g = dk.grad(lambda x: dnp.sum(x * np.ones(3)))(x)  # gradients keep the input's dtype
    assert g.dtype == torch.float32


def test_after_a_mixed_call_numpy_calls_stay_on_numpy():
    """The kernel cache is per type: a mixed call must not send NumPy arrays to torch."""
    dnp.sin(dnp.add(torch.ones(2), np.ones(2)))
    assert isinstance(dnp.sin(np.ones(2)), np.ndarray)
    assert isinstance(dnp.add(np.ones(2), np.ones(2)), np.ndarray)
    assert isinstance(dk.grad(lambda x: dnp.sum(x * np.ones(2)))(np.ones(2)), np.ndarray)


def test_constants_go_to_the_tensors_device_meta():
    """`meta` stands for a second device (CUDA) in a CPU-only run: shapes and devices
    propagate, values are never read."""
    m = torch.ones(2, 2, device="meta", dtype=torch.float32)
    g = dk.grad(lambda z: dnp.sum(z * dnp.eye(2) + dnp.sin(1.0) * z ** 2 + np.ones(2)))(m)
    assert g.device.type == "meta" and g.dtype == torch.float32 and g.shape == (2, 2)
    _, t = dk.jvp(lambda x: x * np.array(3.0) + dnp.linspace(0, 1, 2), (m,), (m,))
    assert t.device.type == "meta"
    assert dnp.array([m[0, 0], 1.0]).device.type == "meta"


def test_a_list_of_tensors_is_a_tensor(backend, to_backend):
    t0, t1 = to_backend(np.array(1.0)), to_backend(np.array(2.0))
    out = dnp.array([t0, t1, 3.0])
    assert _kind(out) == _device(backend) and to_numpy(out).tolist() == [1.0, 2.0, 3.0]
    nested = dnp.array([[t0, 0.0], [np.float64(1.0), t1]])
    assert _kind(nested) == _device(backend) and tuple(nested.shape) == (2, 2)


class _Fake:
    """An array of a third backend: strong, so it never converts silently."""

    shape, dtype = (2,), "fake32"


class _FakePlugin:
    @hookimpl
    def diffkit_backends(self):
        return [Backend(name="fake", recognizes=lambda t: issubclass(t, _Fake),
                        asarray=lambda x, **kw: x, to_numpy=lambda x: x,
                        describe=lambda x: "a fake array")]

    @hookimpl
    def diffkit_kernels(self, backend):
        return {"add": lambda x, y: x} if backend == "fake" else None


def test_two_strong_backends_are_an_error_naming_both():
    pm = plugins.make_plugin_manager()
    pm.register(_FakePlugin(), name="fake")
    with plugins.use_registry(Registry(pm)):
        with pytest.raises(BackendMismatchError, match=r"'add' got arguments on two backends: "
                                                       r"torch\.Tensor of dtype torch\.float64 "
                                                       r"on cpu and a fake array"):
            dnp.add(torch.ones(2, dtype=torch.float64), _Fake())
        assert isinstance(dnp.add(_Fake(), np.ones(2)), _Fake)  # NumPy is weak here too


def test_two_devices_are_still_an_error():
    with pytest.raises(BackendMismatchError, match=r"two devices.*cpu.*meta"):
        dk.grad(lambda x: dnp.sum(x * torch.ones(2, device="meta")))(torch.ones(2))


def test_a_numpy_value_that_cannot_move_is_named():
    with pytest.raises(BackendMismatchError, match=r"argument 1 of 'add', a ndarray of dtype "
                                                   r"<U1, cannot move to torch\.Tensor"):
        dnp.add(torch.ones(2), np.array(["a", "b"]))


@pytest.mark.parametrize("compile", ["auto", False])
@pytest.mark.parametrize("kind", ["loop", "while_loop"])
def test_a_number_argument_of_grad_meets_a_tensor_state_in_untaped_steps(compile, kind):
    """`dk.grad` makes a NumPy array of a Python-number argument; a checkpointed loop's
    untaped steps (recomputation, a while loop's condition) call the step on raw values,
    where the step's own `k * u` of that array and a tensor failed (TypeError)."""
    u0 = torch.tensor(np.sin(np.linspace(0.0, 6.0, 4096)))

    def step(u, i, k):
        return u + k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1))

    budget = {"budget": {"memory": "400KiB"}}  # a few states: steps are recomputed
    if kind == "loop":
        f = lambda k, b: dnp.sum(dk.checkpoint.loop(step, u0, 30, (k,), b,  # noqa: E731
                                                    compile=compile) ** 2)
    else:
        f = lambda k, b: dnp.sum(dk.checkpoint.while_loop(  # noqa: E731
            lambda u, i, k: i < 30 + 0 * k, step, u0, (k,), b, compile=compile) ** 2)
    g = dk.grad(f)(0.1, budget)
    assert dk.checkpoint.last_report().advances > 30  # steps were recomputed untaped
    want = dk.grad(f)(0.1, {"budget": {"memory": "1GiB"}, "schedule": "store_all"}
                      if kind == "loop" else {"budget": {"memory": "1GiB"}})
    np.testing.assert_allclose(to_numpy(g), to_numpy(want), rtol=1e-12)
