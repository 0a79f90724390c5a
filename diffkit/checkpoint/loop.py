"""Checkpointed loops: `loop` (n known) and `while_loop` (n found at run time).

Called with no traced input they just run. Under a reverse-mode transform they become one
node on the caller's tape: the forward sweep runs the planned schedule up to its first
reversal, and the node's VJP runs the rest, taping one step at a time
(`executor.Executor`). Under forward mode they run a loop over (state, tangent) pairs —
itself a checkpointed loop, so reverse-over-forward stays within the budget too; with nothing
traced below, the pair step's compiled program replayed (`compiled_forward`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np

from diffkit.checkpoint import ranks
from diffkit.checkpoint.budget import Budget
from diffkit.checkpoint.compiled_forward import run_pairs
from diffkit.checkpoint.executor import Checks, Executor, LoopIO
from diffkit.checkpoint.stepcheck import call_step, owned_tensors
from diffkit.core import pytree
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.program import refuse_inside
from diffkit.core.tracer import Tracer
from diffkit.custom import carries_tangent, top_trace, unbox
from diffkit.errors import TransformError
from diffkit.transforms import jvp

__all__ = ["loop", "while_loop"]


def loop(step: Callable, state0, n_steps: int, args: tuple = (),
         budget: Budget | str | dict | None = None, *, progress: bool | str = False,
         check_recompute: bool = True, preserve_rng_state: bool = False,
         resume: bool | str = False,
         compile: bool | str | None = None):
    """Run `state = step(state, i, *args)` for `i` in `range(n_steps)`; return the state.

    Differentiable with every transform: gradients flow to `state0` and to `args` through a
    checkpoint schedule planned from `budget` (a preset name such as "laptop", a memory
    size such as "512MiB", a YAML path, a dict, a Budget, or None for the default) and the
    state's measured size. A value the step needs a derivative for must be passed in
    `args`, not closed over (closing over one is an error that says so).
    `dk.checkpoint.last_report()` tells what the last gradient did against its plan;
    `progress=True` shows a bar per sweep (`"auto"`: only on a terminal).

    The step must not write into its state in place (NumPy state arrays are handed to it
    read-only; an in-place write is an error naming the step and the leaf) and must give
    the same result when a state is recomputed: `check_recompute` compares a fingerprint of
    every recomputed state with the forward sweep's (an error names the step);
    `preserve_rng_state` replays the global NumPy and torch generators on recomputation.

    Under a gradient the step is traced once into forward and backward programs that every
    step replays (`compile="auto"`, the default; True makes a step that cannot be compiled
    an error, False runs its Python at every step; docs/checkpointing.md, "Compiled steps").
    With a budget whose plan stores states on disk, `resume=True` (or a run id) keeps the
    forward sweep's disk snapshots across a kill, and running the same program again
    continues from the last one (`diffkit.checkpoint.resume`).

    >>> import diffkit as dk
    >>> f = lambda x0: dk.checkpoint.loop(lambda x, i: 0.5 * x, x0, 3)
    >>> float(dk.grad(f)(1.0))
    0.125
    """
    n_steps = _step_count(n_steps)
    checks = Checks(check_recompute, preserve_rng_state, compile)
    args = tuple(args)
    flat_in, in_tree = pytree.flatten((state0, args))
    top = top_trace(flat_in)
    if top is None or n_steps == 0:
        owned = owned_tensors(state0)
        for i in range(n_steps):
            state0 = call_step(step, state0, i, args, owned)
            if i == 0:
                _refuse_closure(state0)
        return state0
    if not top.active:
        raise top.leaked("checkpoint.loop")
    refuse_inside(top, "checkpoint.loop")
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, state0, args, budget, progress, checks,
                             n_steps=n_steps)
    ex = Executor(top, step, flat_in, in_tree, budget, progress, checks, resume=resume)
    return ex.record(ex.forward_offline(n_steps))


def while_loop(cond: Callable, step: Callable, state0, args: tuple = (),
               budget: Budget | str | dict | None = None, *, progress: bool | str = False,
               check_recompute: bool = True, preserve_rng_state: bool = False,
               compile: bool | str | None = None):
    """Run `state = step(state, i, *args)` while `cond(state, i, *args)`; return the state.

    The step count is found at run time (adaptive time stepping, iterate to convergence);
    reverse mode uses the online schedule, which needs no step count in advance. The step
    follows the rules of `loop`, and `check_recompute` / `preserve_rng_state` mean the same.

    >>> import diffkit as dk
    >>> halve = lambda x0: dk.checkpoint.while_loop(lambda x, i: x > 0.1, lambda x, i: x / 2, x0)
    >>> float(dk.grad(halve)(1.0))  # four halvings: 1 -> 0.0625
    0.0625
    """
    checks = Checks(check_recompute, preserve_rng_state, compile)
    args = tuple(args)
    flat_in, in_tree = pytree.flatten((state0, args))
    top = top_trace(flat_in)
    if top is None:
        i, owned = 0, owned_tensors(state0)
        while ranks.agree_cond(cond(state0, i, *args), i):
            state0, i = call_step(step, state0, i, args, owned), i + 1
            if i == 1:
                _refuse_closure(state0)
        return state0
    if not top.active:
        raise top.leaked("checkpoint.while_loop")
    refuse_inside(top, "checkpoint.while_loop")
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, state0, args, budget, progress, checks, cond=cond)
    ex = Executor(top, step, flat_in, in_tree, budget, progress, checks)
    if not ranks.agree_cond(cond(ex.state0, 0, *ex.args), 0):
        return state0
    return ex.record(ex.forward_online(cond))


def _step_count(n) -> int:
    """`n_steps` as a Python int: an int, a NumPy integer, a 0-d integer array or tensor."""
    boolean = isinstance(n, (bool, np.bool_)) or "bool" in str(getattr(n, "dtype", ""))
    try:
        k = None if boolean or getattr(n, "ndim", 0) else operator.index(n)
    except TypeError:
        k = None
    if k is None or k < 0:
        raise TransformError(
            f"checkpoint.loop: n_steps must be an integer >= 0 (an int, a NumPy integer or a "
            f"0-d integer array), got {n!r} of type {type(n).__name__}")
    return k


def _refuse_closure(state) -> None:
    """Untraced inputs but a traced output: the step closes over a differentiated value,
    whose gradient would be taped step by step outside any checkpoint schedule."""
    for leaf in pytree.leaves(state):
        if isinstance(leaf, Tracer):
            raise TransformError(
                f"the step function of a checkpointed loop returned a value traced by "
                f"`{leaf._trace.transform}` although neither state0 nor args are traced: "
                f"it closes over a value being differentiated. Pass that value in `args=` "
                f"(step(state, i, *args)) so that its gradient is checkpointed."
            )


def _forward_mode(trace, step, state0, args, budget, progress, checks, n_steps=None,
                  cond=None):
    """JVP of a loop: a loop over (state, tangents) pairs, checkpointed at lower levels, or
    with nothing traced below, a loop replaying the pair step's program (`compiled_forward`).

    Every state leaf that can carry a tangent gets one, Python floats included (a leaf
    untraced at first may come to depend on a traced one, as reverse mode sees); of the
    arguments, only the traced ones do.
    """
    flat_s, s_tree = pytree.flatten(state0)
    flat_a, a_tree = pytree.flatten(args)
    s0, a0 = unbox(flat_s, trace), unbox(flat_a, trace)
    s_pos = [k for k, x in enumerate(s0) if _may_vary(x)]
    a_pos = [k for k, x in enumerate(flat_a) if isinstance(x, JVPTracer) and x._trace is trace]
    ts0 = [_tangent(flat_s[k], trace, s0[k]) for k in s_pos]
    ta = [flat_a[k].tangent for k in a_pos]

    def pair_step(pair, i, a, ta):
        s = pytree.leaves(pair[0])

        def f(*dyn):
            fs, fa = list(s), list(a)
            for k, d in zip(s_pos, dyn[:len(s_pos)], strict=True):
                fs[k] = d
            for k, d in zip(a_pos, dyn[len(s_pos):], strict=True):
                fa[k] = d
            return step(pytree.unflatten(s_tree, fs), i, *pytree.unflatten(a_tree, fa))

        out, t_out = jvp(f, [s[k] for k in s_pos] + [a[k] for k in a_pos], list(pair[1]) + ta)
        return out, [pytree.leaves(t_out)[k] for k in s_pos]

    pair0 = (pytree.unflatten(s_tree, s0), ts0)
    pair_cond = None if cond is None else (
        lambda pair, i, a, ta: cond(pair[0], i, *pytree.unflatten(a_tree, a)))
    if top_trace(s0 + ts0 + a0 + ta) is None:  # nothing below: no schedule, a program
        io = LoopIO()
        io.name = "checkpoint.loop" if cond is None else "checkpoint.while_loop"
        out, t_out = run_pairs(io, pair_step, pair0, (a0, ta), checks, _refuse_closure,
                               n_steps=n_steps, cond=pair_cond)
    elif cond is None:
        out, t_out = loop(pair_step, pair0, n_steps, (a0, ta), budget, progress=progress,
                          **checks._asdict())
    else:
        out, t_out = while_loop(pair_cond, pair_step, pair0, (a0, ta), budget,
                                progress=progress, **checks._asdict())
    flat_o = pytree.leaves(out)
    for k, t in zip(s_pos, t_out, strict=True):
        flat_o[k] = JVPTracer(trace, flat_o[k], t)
    return pytree.unflatten(s_tree, flat_o)


def _may_vary(x) -> bool:
    """A state leaf that gets a tangent: an inexact array or a Python float / complex."""
    return carries_tangent(x) or type(x) in (float, complex)


def _tangent(x, trace, primal):
    return x.tangent if isinstance(x, JVPTracer) and x._trace is trace else _zeros(primal)


def _zeros(x):
    from diffkit import numpy as dnp

    return dnp.zeros_like(x)


