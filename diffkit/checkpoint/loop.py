"""Checkpointed loops: `loop` (n known) and `while_loop` (n found at run time).

Called with no traced input they just run. Under a reverse-mode transform they become one
node on the caller's tape: the forward sweep runs the planned schedule up to its first
reversal, and the node's VJP runs the rest, taping one step at a time (`_Executor`). Under
forward mode they run a loop over (state, tangent) pairs — itself a checkpointed loop, so
reverse-over-forward stays within the budget too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from diffkit.checkpoint.actions import Advance, Discard, Forward, Load, Reverse, Save
from diffkit.checkpoint.budget import Budget, load_budget
from diffkit.checkpoint.planner import plan as make_plan
from diffkit.checkpoint.report import Progress, Report, set_last_report
from diffkit.checkpoint.storage import Storage, tree_nbytes
from diffkit.core import pytree
from diffkit.core.custom import carries_tangent, record_node, top_trace, unbox
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.reverse import VJPTrace, VJPTracer
from diffkit.core.tracer import Tracer
from diffkit.core.transforms import jvp
from diffkit.core.zeros import Zero
from diffkit.errors import InternalError, TransformError

__all__ = ["loop", "while_loop"]


def loop(step: Callable, state0, n_steps: int, args: tuple = (),
         budget: Budget | str | dict | None = None, *, progress: bool = False):
    """Run `state = step(state, i, *args)` for `i` in `range(n_steps)`; return the state.

    Differentiable with every transform: gradients flow to `state0` and to `args` through a
    checkpoint schedule planned from `budget` (a YAML path, a dict, a Budget, or None for
    the default) and the state's measured size. A value the step needs a derivative for
    must be passed in `args`, not closed over (closing over one is an error that says so).
    `dk.checkpoint.last_report()` tells what the last gradient did against its plan.

    >>> import diffkit as dk
    >>> f = lambda x0: dk.checkpoint.loop(lambda x, i: 0.5 * x, x0, 3)
    >>> float(dk.grad(f)(1.0))
    0.125
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 0:
        raise TransformError(f"checkpoint.loop: n_steps must be an int >= 0, got {n_steps!r}")
    args = tuple(args)
    flat_in, in_tree = pytree.flatten((state0, args))
    top = top_trace(flat_in)
    if top is None or n_steps == 0:
        for i in range(n_steps):
            state0 = step(state0, i, *args)
            if i == 0:
                _refuse_closure(state0)
        return state0
    if not top.active:
        raise top.leaked("checkpoint.loop")
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, state0, args, budget, progress, n_steps=n_steps)
    ex = _Executor(top, step, flat_in, in_tree, budget, progress)
    return ex.record(ex.forward_offline(n_steps))


def while_loop(cond: Callable, step: Callable, state0, args: tuple = (),
               budget: Budget | str | dict | None = None, *, progress: bool = False):
    """Run `state = step(state, i, *args)` while `cond(state, i, *args)`; return the state.

    The step count is found at run time (adaptive time stepping, iterate to convergence);
    reverse mode uses the online schedule, which needs no step count in advance.

    >>> import diffkit as dk
    >>> halve = lambda x0: dk.checkpoint.while_loop(lambda x, i: x > 0.1, lambda x, i: x / 2, x0)
    >>> float(dk.grad(halve)(1.0))  # four halvings: 1 -> 0.0625
    0.0625
    """
    args = tuple(args)
    flat_in, in_tree = pytree.flatten((state0, args))
    top = top_trace(flat_in)
    if top is None:
        i = 0
        while cond(state0, i, *args):
            state0, i = step(state0, i, *args), i + 1
            if i == 1:
                _refuse_closure(state0)
        return state0
    if not top.active:
        raise top.leaked("checkpoint.while_loop")
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, state0, args, budget, progress, cond=cond)
    ex = _Executor(top, step, flat_in, in_tree, budget, progress)
    if not cond(ex.state0, 0, *ex.args):
        return state0
    return ex.record(ex.forward_online(cond))


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


def _forward_mode(trace, step, state0, args, budget, progress, n_steps=None, cond=None):
    """JVP of a loop: a loop over (state, tangents) pairs, checkpointed at lower levels.

    Every state leaf that can carry a tangent gets one (a leaf untraced at first may come
    to depend on a traced one); of the arguments, only the traced ones do. Python numbers
    stay constants, as everywhere in loops.
    """
    flat_s, s_tree = pytree.flatten(state0)
    flat_a, a_tree = pytree.flatten(args)
    s0, a0 = unbox(flat_s, trace), unbox(flat_a, trace)
    s_pos = [k for k, x in enumerate(s0) if carries_tangent(x)]
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

    if cond is None:
        out, t_out = loop(pair_step, (pytree.unflatten(s_tree, s0), ts0), n_steps, (a0, ta),
                          budget, progress=progress)
    else:
        out, t_out = while_loop(lambda pair, i, a, ta: cond(pair[0], i, *pytree.unflatten(
            a_tree, a)), pair_step, (pytree.unflatten(s_tree, s0), ts0), (a0, ta), budget,
            progress=progress)
    flat_o = pytree.leaves(out)
    for k, t in zip(s_pos, t_out, strict=True):
        flat_o[k] = JVPTracer(trace, flat_o[k], t)
    return pytree.unflatten(s_tree, flat_o)


def _tangent(x, trace, primal):
    return x.tangent if isinstance(x, JVPTracer) and x._trace is trace else _zeros(primal)


def _zeros(x):
    from diffkit import numpy as dnp

    return dnp.zeros_like(x)


def _add(a, b):
    return b if a is None else a if b is None else a + b


class _Executor:
    """Runs one checkpoint schedule for one loop call: forward sweep, then reverse sweep."""

    def __init__(self, trace, step, flat_in, in_tree, budget, progress):
        self.trace, self.step, self.flat_in = trace, step, flat_in
        primals = unbox(flat_in, trace)
        state0, args = pytree.unflatten(in_tree, primals)
        self.state0, self.args = state0, tuple(args)
        self.flat_args, self.a_tree = pytree.flatten(self.args)
        # only the arguments the caller differentiates need cotangents (every state leaf
        # that can carry one does: it may come to depend on a traced value)
        n_s = len(flat_in) - len(self.flat_args)
        self.arg_traced = [type(x) is VJPTracer and x._trace is trace for x in flat_in[n_s:]]
        self.budget = budget if isinstance(budget, Budget) else load_budget(budget)
        if any(isinstance(x, Tracer) for x in primals):
            self.budget = dataclasses.replace(self.budget, disk=None)  # tracers stay in RAM
        self.progress_enabled = progress
        self.used, self.cond = False, None

    # -- one step ---------------------------------------------------------------------
    def _advance(self, state, i):
        if i == 0 and self.first is not None and state is self.state0:
            out, self.first = self.first[0], None  # step 0 was taped by _measure: reuse it
            return out
        self.calls += 1
        out = self.step(state, i, *self.args)
        self._check_closure(pytree.leaves(out), i)
        return out

    def _tape_or_reuse(self, state, i):
        """`_tape(state, i)`, reusing the tape of step 0 that `_measure` made."""
        if i == 0 and self.first is not None and state is self.state0:
            first, self.first = self.first, None
            return first
        return self._tape(state, i)

    def _tape(self, state, i):
        """Tape step i from `state`: (next state, `step_vjp`), where `step_vjp(ct)` maps the
        cotangents of the next state's leaves to those of this state's and the args' leaves
        (flat lists, None where nothing flows). Uses a VJP trace directly: this runs once
        per reversed step, so it does no pytree work it can avoid."""
        flat_s, s_tree = pytree.flatten(state)
        leaves, ns = flat_s + self.flat_args, len(flat_s)
        trace = VJPTrace("checkpoint.loop")
        boxed, pos = list(leaves), []
        for k, x in enumerate(leaves):
            if self.arg_traced[k - ns] if k >= ns else carries_tangent(x):
                boxed[k] = trace.leaf(x)
                pos.append(k)
        self.calls += 1
        try:
            out = self.step(pytree.unflatten(s_tree, boxed[:ns]), i,
                            *pytree.unflatten(self.a_tree, boxed[ns:]))
        finally:
            trace.active = False
        flat_out, out_tree = pytree.flatten(out)
        if out_tree != s_tree:
            raise TransformError(
                f"the step function of checkpoint.loop changed the structure of the state at "
                f"step {i}: it returned {out_tree!r} for a state {s_tree!r}; return a state "
                f"of the same structure as state0"
            )
        primal = [o.primal if type(o) is VJPTracer and o._trace is trace else o
                  for o in flat_out]
        self._check_closure(primal, i)
        # where each output sits on the tape (not the tracers: they would keep the state)
        refs = [(o.idx, o.out) if type(o) is VJPTracer and o._trace is trace else None
                for o in flat_out]
        n_leaves = len(leaves)
        del flat_out, out, leaves, boxed, flat_s  # the closure below must not keep the state

        def step_vjp(ct):
            roots = [(*r, c) for r, c in zip(refs, ct, strict=True)
                     if c is not None and r is not None]
            acc = trace.backward(roots, consume=True)
            cts = [None] * n_leaves
            for j, k in enumerate(pos):  # leaf j of the tape is input leaf k
                cts[k] = acc[j]
            return cts[:ns], cts[ns:]

        step_vjp.tape = trace
        return pytree.unflatten(s_tree, primal), step_vjp

    def _check_closure(self, leaves, i):
        for leaf in leaves:
            if isinstance(leaf, Tracer) and leaf._trace.level >= self.trace.level:
                raise TransformError(
                    f"the step function of checkpoint.loop returned a value traced by "
                    f"`{self.trace.transform}` at step {i}: it closes over a value being "
                    f"differentiated. Pass that value in `args=` (step(state, i, *args)) "
                    f"so that its gradient is computed."
                )

    # -- forward sweep ----------------------------------------------------------------
    def _measure(self):
        """Bytes of one state, of what one step's tape keeps, and of what reversing it
        creates on top (the cotangents of its traced values, at most one each, the
        cotangents in and out, the loop's output, the arguments' cotangents), from taping
        step 0. The reverse sweep's tracemalloc peak stays within the plan built on them
        (tests/test_checkpoint_loop.py)."""
        state_bytes = max(1, tree_nbytes(self.state0))
        self.calls, self.first = 0, None
        self.first = self._tape(self.state0, 0)  # kept for the first step of the sweep
        tape = self.first[1].tape
        reverse = tape.cotangent_nbytes() + 3 * state_bytes + tree_nbytes(self.args)
        return state_bytes, tape.nbytes(), reverse

    def _start(self, n):
        state_bytes, tape, reverse = self._measure()
        self.plan = make_plan(n, state_bytes, self.budget, step_tape_bytes=tape,
                              reverse_bytes=reverse)
        self.report = Report(self.plan, state_bytes, tape or state_bytes, reverse, n_steps=n)
        self.storage = Storage(self.budget.disk.path if self.budget.disk else None)
        self.tapes, self.progress = {}, Progress(self.progress_enabled, n)
        self.t0 = time.perf_counter()

    def forward_offline(self, n):
        self.n = n
        self._start(n)
        self.actions = iter(self.plan.actions())
        current, at = self.state0, 0
        try:
            for action in self.actions:
                if isinstance(action, Reverse):
                    self.pending = action
                    break
                current, at = self._do(action, current, at)
            if at == n - 1 and self.pending == Reverse(n - 1) and not self.tapes:
                current, self.tapes[n - 1] = self._tape_or_reuse(current, n - 1)
            elif at != n:
                raise InternalError(f"the schedule's forward sweep stopped at state {at} "
                                    f"of {n}: a diffkit bug")
        except BaseException:
            self.storage.close()
            raise
        self.resume = (None, None)
        self._forward_done()
        return current

    def forward_online(self, cond):
        self.cond = cond
        self._start(None)
        sched, current, keep, i = self.plan.schedule, self.state0, None, 0
        try:
            while cond(current, i, *self.args):
                for action in sched.forward_step(i):
                    self._do(action, keep, i - 1)
                keep, current = current, self._advance(current, i)
                i += 1
                self.progress.update("forward", i)
        except BaseException:
            self.storage.close()
            raise
        self.n = self.report.n_steps = i
        self.actions = iter(sched.reverse(i))
        self.pending = next(self.actions)
        self.resume = (keep, i - 1)
        self._forward_done()
        return current

    def _forward_done(self):
        self.first = None  # unused only if the sweep never ran step 0 from state 0
        self.report.forward_seconds = time.perf_counter() - self.t0

    def _do(self, action, current, at):
        rep = self.report
        match action:
            case Advance(start, stop):
                _expect(at, start, action)
                for i in range(start, stop):
                    current = self._advance(current, i)
                    self.progress.update("forward", i + 1)
                return current, stop
            case Save(step, tier):
                _expect(at, step, action)
                self.storage.save(step, tier, current)
                rep.held(len(self.storage.ram), len(self.tapes))
                return current, at
            case Load(step, tier):
                return self.storage.load(step, tier), step
            case Discard(step, tier):
                self.storage.discard(step, tier)
                return current, at
            case Forward(step):
                _expect(at, step, action)
                current, self.tapes[step] = self._tape_or_reuse(current, step)
                rep.held(len(self.storage.ram), len(self.tapes))
                return current, step + 1
        raise InternalError(f"unexpected action {action!r} outside a reverse step")

    # -- the tape node and the reverse sweep -------------------------------------------
    def record(self, out):
        """Put the loop on the caller's tape as one node whose VJP is the reverse sweep."""
        return record_node(self.trace, "checkpoint.loop", self.flat_in, out, self._vjp_all)

    def _vjp_all(self, g, ans):
        if self.used:  # a second cotangent (jacrev): run the whole schedule again
            if self.cond is None:
                self.forward_offline(self.n)
            else:
                self.forward_online(self.cond)
        self.used = True
        ct = [None if isinstance(c, Zero) else c for c in g]
        t0 = time.perf_counter()
        try:
            ct, ct_args = self._reverse_sweep(ct)
        finally:
            self.storage.close()
            self.progress.close()
        rep = self.report
        rep.reverse_seconds = time.perf_counter() - t0
        rep.peak_snapshots = dict(self.storage.peak)
        rep.disk_written, rep.disk_read = self.storage.bytes_written, self.storage.bytes_read
        set_last_report(rep)
        return ct + ct_args

    def _reverse_sweep(self, ct):
        current, at = self.resume
        ct_args, action, done = None, self.pending, 0
        while action is not None:
            if isinstance(action, Reverse):
                i = action.step
                step_vjp = self.tapes.pop(i, None)
                if step_vjp is None:
                    _expect(at, i, action)
                    _, step_vjp = self._tape_or_reuse(current, i)
                self.report.held(len(self.storage.ram), len(self.tapes) + 1)
                ct, cta = step_vjp(ct)
                ct_args = cta if ct_args is None else [_add(a, b) for a, b in zip(ct_args, cta)]
                current = at = step_vjp = None
                done += 1
                self.progress.update("reverse", done)
            else:
                current, at = self._do(action, current, at)
            action = next(self.actions, None)
        self.report.reversed, self.report.advances = done, self.calls
        if done != self.n:
            raise InternalError(f"the schedule reversed {done} of {self.n} steps: a diffkit bug")
        return ct, ct_args or [None] * len(self.flat_args)


def _expect(at, step, action):
    if at != step:
        raise InternalError(f"{action} while the current state is {at}: a diffkit bug")
