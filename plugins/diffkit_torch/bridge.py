"""Bridges between diffkit's reverse mode and `torch.autograd`.

- `to_torch(f)`: a diffkit-differentiable function becomes a torch autograd function, so
  diffkit code (a checkpointed simulation, say) sits inside a PyTorch training loop and
  `loss.backward()` reaches the tensors it was given. diffkit computes the VJP.
- `from_torch(fn)`: a PyTorch function (or `nn.Module`) becomes a diffkit operation whose
  VJP is `torch.autograd.grad`. Reverse mode only, first order: under `dk.jvp` (and
  `hessian`, which uses it) or grad-of-grad it raises an error saying so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from diffkit.core import pytree
from diffkit.core.tracer import Tracer
from diffkit.custom import custom_vjp
from diffkit.errors import TransformError
from diffkit.transforms import vjp

__all__ = ["to_torch", "from_torch", "module_params"]


def _inexact(x) -> bool:
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


class _DiffkitFunction(torch.autograd.Function):
    """forward: run the diffkit function under `dk.vjp` on detached tensors, keep its
    `vjp_fn`; backward: call it. The outputs' pytree structure goes back through `box`."""

    @staticmethod
    def forward(ctx, f, in_tree, box, *flat):
        flat = [x.detach() if isinstance(x, torch.Tensor) else x for x in flat]
        pos = [i for i, x in enumerate(flat) if _inexact(x)]

        def g(*dyn):
            full = list(flat)
            for i, d in zip(pos, dyn, strict=True):
                full[i] = d
            return f(*pytree.unflatten(in_tree, full))

        out, vjp_fn = vjp(g, *(flat[i] for i in pos))
        flat_out, out_tree = pytree.flatten(out)
        for k, o in enumerate(flat_out):
            if not isinstance(o, torch.Tensor):
                raise TypeError(
                    f"to_torch({getattr(f, '__name__', 'f')}): output leaf {k} is a "
                    f"{type(o).__name__}; every output must be a torch.Tensor (pass tensor "
                    f"inputs, or convert with dk.asarray(x, backend='torch'))"
                )
        box.append(out_tree)
        ctx.vjp_fn, ctx.pos, ctx.n_in = vjp_fn, pos, len(flat)
        ctx.out_tree, ctx.outs = out_tree, [(o.shape, o.dtype, o.device) for o in flat_out]
        ctx.mark_non_differentiable(*(o for o in flat_out if not _inexact(o)))
        return tuple(flat_out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        grads = [torch.zeros(s, dtype=d, device=dev) if g is None else g
                 for g, (s, d, dev) in zip(grads, ctx.outs, strict=True)]
        cts = ctx.vjp_fn(pytree.unflatten(ctx.out_tree, grads))
        full = [None] * ctx.n_in
        for i, c in zip(ctx.pos, cts, strict=True):
            full[i] = c
        return (None, None, None, *full)


def to_torch(f: Callable) -> Callable:
    """Wrap diffkit-differentiable `f` so that torch.autograd differentiates through it.

    `f` takes pytrees (tuples, lists, dicts) of tensors and returns a pytree of tensors;
    the wrapper records one node on torch's graph whose backward is diffkit's VJP of `f`.
    Integer tensors and non-tensor leaves pass through as constants. Double backward
    (create_graph=True) is refused by torch: the node is once-differentiable.

    >>> import torch, diffkit.numpy as dnp
    >>> loss_fn = to_torch(lambda w, x: dnp.sum(dnp.tanh(x @ w) ** 2))
    >>> w = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    >>> loss_fn(w, torch.ones(4, 3, dtype=torch.float64)).backward()
    >>> w.grad.shape
    torch.Size([3, 2])
    """

    @functools.wraps(f)
    def wrapped(*args):
        flat, in_tree = pytree.flatten(args)
        box: list = []
        flat_out = _DiffkitFunction.apply(f, in_tree, box, *flat)
        return pytree.unflatten(box[0], list(flat_out))

    return wrapped


def _refuse_tracers(name: str, leaves) -> None:
    if any(isinstance(x, Tracer) for x in leaves):
        raise TransformError(
            f"from_torch({name}) supports reverse mode (grad, vjp, jacrev) at first order "
            f"only; it was called under a forward-mode transform (jvp, jacfwd, hessian, "
            f"hvp) or inside a derivative rule. Write that part with diffkit.numpy to get "
            f"every transform."
        )


def from_torch(fn: Callable | torch.nn.Module) -> custom_vjp:
    """Make PyTorch function `fn(*tensors) -> pytree of tensors` a diffkit operation.

    Its VJP runs `torch.autograd.grad` on the graph torch recorded in the forward pass
    (under `torch.enable_grad`, on detached copies of the inputs). For an `nn.Module`, the
    result takes the parameters as its first argument, a dict name -> tensor (see
    `module_params`), so diffkit differentiates with respect to them too:

        net = from_torch(module)
        loss = lambda params, x: dnp.sum(net(params, x) ** 2)
        grads = dk.grad(loss)(module_params(module), x)   # dict like the params

    To close over the parameters instead, wrap a plain function: `from_torch(module)`
    is not needed for that — `from_torch(lambda x: module(x))` treats them as constants.
    """
    if isinstance(fn, torch.nn.Module):
        module = fn

        def fn(params, *args):
            return torch.func.functional_call(module, params, args)

        fn.__name__ = type(module).__name__
    name = getattr(fn, "__name__", "fn")

    @custom_vjp
    def op(*args):
        _refuse_tracers(name, pytree.leaves(args))
        with torch.no_grad():
            return fn(*args)

    def fwd(*args):
        flat, in_tree = pytree.flatten(args)
        _refuse_tracers(name, flat)
        leaves = [x.detach().requires_grad_() if _inexact(x) else x for x in flat]
        with torch.enable_grad():
            out = fn(*pytree.unflatten(in_tree, leaves))
        flat_out, out_tree = pytree.flatten(out)
        detached = pytree.unflatten(out_tree, [o.detach() for o in flat_out])
        return detached, (leaves, in_tree, flat_out)

    def bwd(res, g):
        leaves, in_tree, flat_out = res
        flat_g = pytree.leaves(g)
        _refuse_tracers(name, flat_g)
        pos = [i for i, x in enumerate(leaves) if _inexact(x)]
        pairs = [(o, c) for o, c in zip(flat_out, flat_g, strict=True) if o.requires_grad]
        grads = torch.autograd.grad(
            [o for o, _ in pairs], [leaves[i] for i in pos], [c for _, c in pairs],
            allow_unused=True, retain_graph=True,
        ) if pairs else [None] * len(pos)
        full = [None] * len(leaves)
        for i, d in zip(pos, grads, strict=True):
            full[i] = torch.zeros_like(leaves[i]) if d is None else d
        cts = pytree.unflatten(in_tree, full)
        return tuple(cts)

    op.__name__ = name
    return op.defvjp(fwd, bwd)


def module_params(module: torch.nn.Module) -> dict:
    """The parameters of `module` as a dict name -> detached tensor (diffkit's inputs)."""
    return {k: v.detach() for k, v in module.named_parameters()}
