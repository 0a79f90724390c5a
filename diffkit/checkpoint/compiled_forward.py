"""Forward mode's loop over (state, tangent) pairs, run as a compiled program.

A `jvp` or `jacfwd` of a checkpointed loop runs a loop whose step is the JVP of the user's
step (`loop._forward_mode`, `scan._forward_mode`). When nothing below that JVP is traced the
pair loop needs no schedule, and it runs here: its step is traced once into a plain program
by `CompiledStep` (the JVP traced inside the program trace) and replayed at every step, with
the guards, fallbacks, determinism check and `compile=` of compiled reverse-mode steps.
`last_forward_report()` says how the last such loop ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffkit.checkpoint import ranks
from diffkit.checkpoint.compiled import CompiledStep, resolve
from diffkit.checkpoint.stepcheck import call_step, owned_tensors
from diffkit.core import pytree
from diffkit.errors import CompileError

__all__ = ["ForwardReport", "last_forward_report", "run_pairs"]


@dataclass(frozen=True)
class ForwardReport:
    """How a forward-mode loop (a `jvp` or `jacfwd` through `loop`, `while_loop` or `scan`,
    nothing below it traced) ran: `compiled` reads as `Report.compiled` ("compiled: 1
    program set(s) traced, 3,999 replays", or "eager (...)" with the reason)."""

    loop: str
    n_steps: int
    compiled: str


_last: list[ForwardReport | None] = [None]


def last_forward_report() -> ForwardReport | None:
    """The `ForwardReport` of the most recent forward-mode loop run without a gradient below
    it (None before any). Under a gradient the pair loop is reversed: see `last_report()`.

    >>> import diffkit as dk
    >>> f = lambda x: dk.checkpoint.loop(lambda u, i: 0.5 * u, x, 3)
    >>> dk.jvp(f, (dk.numpy.ones(2),), (dk.numpy.ones(2),))[1].tolist()
    [0.125, 0.125]
    >>> dk.checkpoint.last_forward_report().compiled
    'compiled: 1 program set(s) traced, 2 replays'
    """
    return _last[0]


def run_pairs(io, step, state0, args: tuple, checks, refuse, n_steps=None, cond=None):
    """Run `state = step(state, i, *args)` from `state0`, `n_steps` times or while
    `cond(state, i, *args)`, nothing traced; return the final state. Steps replay the
    compiled step when it applies and otherwise run eagerly (protected as a plain loop's).
    `io` is the loop's `LoopIO` (a scan's: x_i in, y_i out); `refuse(outputs)` rejects
    outputs traced by an outer transform (a step closing over a differentiated value)."""
    flat_a, a_tree = pytree.flatten(args)
    flat_s, s_tree = pytree.flatten(state0)
    compiled = _compiled(io, step, s_tree, a_tree, len(flat_a), checks, refuse)
    owned, ns = owned_tensors(state0), len(flat_s)
    state, i = state0, 0
    while i < n_steps if cond is None else ranks.agree_cond(cond(state, i, *args), i):
        x = io.x_at(i)
        got = None
        if compiled is not None and compiled.on:
            got = compiled.forward(pytree.leaves(state) + flat_a + x, i)
        if got is None:
            state, y = io.split(call_step(io.step_at(step, i, x), state, i, args, owned), i)
            refuse((state, y))
        else:  # checked by `refuse` when traced; a program replays exactly
            state, y = pytree.unflatten(s_tree, got[:ns]), got[ns:]
        io.put_y(i, y)
        i += 1
    how = "eager (compile=False)" if compiled is None else compiled.describe()
    _last[0] = ForwardReport(io.name, i, how)
    return state


def _compiled(io, step, s_tree, a_tree, n_args, checks, refuse):
    """The pair step as programs, unless compile=False, several ranks decide (as the
    executor: they could decide apart) or the step's random numbers are to be replayed."""
    mode = resolve(checks.compile, io.name)
    if mode is False or (mode == "auto" and ranks.communicator() is not None):
        return None
    if checks.preserve_rng_state:
        if mode is True:
            raise CompileError(
                f"{io.name}: compile=True cannot replay a step's random numbers "
                f"(preserve_rng_state=True): such a step runs eagerly; pass compile='auto' "
                f"or False")
        return None
    compiled = CompiledStep(io, step, s_tree, a_tree, n_args, [], insist=mode is True)
    compiled.on_trace = lambda outs, i: refuse(outs)
    return compiled
