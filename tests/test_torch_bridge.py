"""Bridges to torch.autograd: `to_torch` (diffkit inside a torch training loop) and
`from_torch` (a torch function or module inside diffkit), both against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffkit_torch import from_torch, module_params, to_torch  # noqa: E402

import diffkit as dk  # noqa: E402
import diffkit.numpy as dnp  # noqa: E402
from diffkit.errors import TransformError  # noqa: E402

F64 = torch.float64


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=F64, generator=g)


def _fd_grad(f, args, argnum, eps=1e-6, seed=1):
    """Directional derivative of scalar f along a random direction in args[argnum]."""
    u = _rand(*args[argnum].shape, seed=seed)
    plus, minus = list(args), list(args)
    plus[argnum] = args[argnum] + eps * u
    minus[argnum] = args[argnum] - eps * u
    return (float(f(*plus)) - float(f(*minus))) / (2 * eps), u


# -- to_torch ---------------------------------------------------------------------------------
def _dense_loss(w, x):
    return dnp.sum(dnp.tanh(x @ w) ** 2) + dnp.sum(dnp.sin(w))


def test_to_torch_passes_gradcheck():
    f = to_torch(_dense_loss)
    w = _rand(3, 2).requires_grad_()
    x = _rand(4, 3, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(f, (w, x))


def test_to_torch_in_a_training_step_matches_torch_autograd():
    f = to_torch(_dense_loss)
    w = _rand(3, 2).requires_grad_()
    x = _rand(4, 3, seed=1)
    opt = torch.optim.SGD([w], lr=0.1)
    loss = f(w, torch.nn.functional.softplus(x)) * 2.0  # torch ops on both sides
    loss.backward()
    w_ref = w.detach().clone().requires_grad_()
    ((torch.tanh(torch.nn.functional.softplus(x) @ w_ref) ** 2).sum()
     + torch.sin(w_ref).sum()).mul(2.0).backward()
    torch.testing.assert_close(w.grad, w_ref.grad)
    opt.step()


def test_to_torch_takes_and_returns_pytrees():
    def f(params, x):
        h = dnp.tanh(x @ params["w"] + params["b"])
        return {"out": h, "norm": dnp.sum(h * h)}, (x * 2.0,)

    g = to_torch(f)
    params = {"w": _rand(3, 2).requires_grad_(), "b": _rand(2, seed=2).requires_grad_()}
    x = _rand(4, 3, seed=1)
    out, (x2,) = g(params, x)
    assert set(out) == {"out", "norm"} and x2.shape == (4, 3)
    (out["norm"] + out["out"].sum()).backward()
    w, b = params["w"].detach().requires_grad_(), params["b"].detach().requires_grad_()
    h = torch.tanh(x @ w + b)
    ((h * h).sum() + h.sum()).backward()
    torch.testing.assert_close(params["w"].grad, w.grad)
    torch.testing.assert_close(params["b"].grad, b.grad)


def test_to_torch_integer_inputs_are_constants():
    f = to_torch(lambda x, idx: dnp.sum(x[idx] ** 2))
    x = _rand(5).requires_grad_()
    idx = torch.tensor([0, 2, 2])
    f(x, idx).backward()
    want = torch.zeros(5, dtype=F64)
    want[0] = 2 * x[0].detach()
    want[2] = 4 * x[2].detach()
    torch.testing.assert_close(x.grad, want)


def test_to_torch_refuses_double_backward():
    f = to_torch(lambda x: dnp.sum(dnp.sin(x)))
    x = _rand(3).requires_grad_()
    (gx,) = torch.autograd.grad(f(x), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        gx.sum().backward()


# -- from_torch -------------------------------------------------------------------------------
def test_from_torch_function_grad_matches_finite_differences():
    op = from_torch(lambda a, b: torch.nn.functional.softplus(a @ b).cos())
    a, b = _rand(3, 4), _rand(4, 2, seed=1)
    loss = lambda a, b: dnp.sum(dnp.exp(op(a, b)) * 0.5)  # noqa: E731
    ga, gb = dk.grad(loss, argnums=(0, 1))(a, b)
    for argnum, g in ((0, ga), (1, gb)):
        fd, u = _fd_grad(loss, (a, b), argnum)
        assert abs(float((g * u).sum()) - fd) < 1e-6 * max(1.0, abs(fd))


def test_from_torch_module_params_are_diffkit_arguments():
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(),
                              torch.nn.Linear(5, 1)).double()
    op = from_torch(net)
    params, x = module_params(net), _rand(4, 3)
    loss = lambda p, x: dnp.sum(dnp.sin(op(p, x)))  # noqa: E731
    g = dk.grad(loss)(params, x)
    assert set(g) == set(params)
    for k in params:
        u = _rand(*params[k].shape, seed=3)
        eps = 1e-6
        plus = {**params, k: params[k] + eps * u}
        minus = {**params, k: params[k] - eps * u}
        fd = (float(loss(plus, x)) - float(loss(minus, x))) / (2 * eps)
        assert abs(float((g[k] * u).sum()) - fd) < 1e-6 * max(1.0, abs(fd)), k
    gx = dk.grad(loss, argnums=1)(params, x)
    x_ref = x.clone().requires_grad_()
    torch.sin(net(x_ref)).sum().backward()
    torch.testing.assert_close(gx, x_ref.grad)


def test_from_torch_outputs_without_gradient_flow_give_zeros():
    op = from_torch(lambda a: (a * 2.0, torch.ones(2, dtype=F64)))
    a = _rand(3)
    g = dk.grad(lambda a: dnp.sum(op(a)[0]) + dnp.sum(op(a)[1]))(a)
    torch.testing.assert_close(g, torch.full((3,), 2.0, dtype=F64))


def test_from_torch_plain_call_and_forward_mode_error():
    op = from_torch(torch.sin)
    a = _rand(3)
    torch.testing.assert_close(op(a), torch.sin(a))
    with pytest.raises(TransformError, match="reverse mode .* first order only"):
        dk.jvp(op, (a,), (torch.ones_like(a),))
    with pytest.raises(TransformError, match="first order only"):
        dk.grad(lambda x: dnp.sum(dk.grad(lambda y: dnp.sum(op(y)))(x)))(a)


def test_round_trip_to_torch_of_from_torch():
    inner = from_torch(lambda a: torch.tanh(a) * a)
    f = to_torch(lambda a: dnp.sum(inner(a) ** 2))
    a = _rand(4).requires_grad_()
    assert torch.autograd.gradcheck(f, (a,))
    a = a.detach()
    np.testing.assert_allclose(float(f(a)), float(((torch.tanh(a) * a) ** 2).sum()))
