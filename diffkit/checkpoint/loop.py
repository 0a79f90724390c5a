"""Checkpointed loops: `loop` (n known) and `while_loop` (n found at run time).

Called with no traced input they just run. Under a reverse-mode transform they become one
node on the caller's tape: the forward sweep runs the planned schedule up to its first
reversal, and the node's VJP runs the rest, taping one step at a time (`_Executor`). Under
forward mode they run a loop over (state, tangent) pairs — itself a checkpointed loop, so
reverse-over-forward stays within the budget too.
"""

from __future__ import annotations

import dataclasses
import operator
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from diffkit.checkpoint.actions import RAM, Advance, Discard, Forward, Load, Reverse, Save
from diffkit.checkpoint.budget import Budget, load_budget
from diffkit.checkpoint.planner import plan as make_plan
from diffkit.checkpoint.planner import stream_bytes
from diffkit.checkpoint.report import Progress, Report, set_last_report
from diffkit.checkpoint.stepcheck import (
    Fingerprints,
    RngReplay,
    RngState,
    call_protected,
    call_step,
    owned_tensors,
    protect,
)
from diffkit.checkpoint.storage import Storage, tree_nbytes
from diffkit.core import pytree
from diffkit.core.custom import carries_tangent, record_node, top_trace, unbox
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.reverse import LiveBytesTrace, VJPTrace, VJPTracer
from diffkit.core.tracer import Tracer
from diffkit.core.transforms import jvp
from diffkit.core.zeros import Zero
from diffkit.errors import BudgetError, InternalError, TransformError

__all__ = ["loop", "while_loop"]


def loop(step: Callable, state0, n_steps: int, args: tuple = (),
         budget: Budget | str | dict | None = None, *, progress: bool = False,
         check_recompute: bool = True, preserve_rng_state: bool = False):
    """Run `state = step(state, i, *args)` for `i` in `range(n_steps)`; return the state.

    Differentiable with every transform: gradients flow to `state0` and to `args` through a
    checkpoint schedule planned from `budget` (a YAML path, a dict, a Budget, or None for
    the default) and the state's measured size. A value the step needs a derivative for
    must be passed in `args`, not closed over (closing over one is an error that says so).
    `dk.checkpoint.last_report()` tells what the last gradient did against its plan.

    The step must not write into its state in place (NumPy state arrays are handed to it
    read-only; an in-place write is an error naming the step and the leaf) and must give
    the same result when a state is recomputed: `check_recompute` compares a fingerprint of
    every recomputed state with the forward sweep's (an error names the step);
    `preserve_rng_state` replays the global NumPy and torch generators on recomputation.

    >>> import diffkit as dk
    >>> f = lambda x0: dk.checkpoint.loop(lambda x, i: 0.5 * x, x0, 3)
    >>> float(dk.grad(f)(1.0))
    0.125
    """
    n_steps = _step_count(n_steps)
    checks = _Checks(check_recompute, preserve_rng_state)
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
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, state0, args, budget, progress, checks,
                             n_steps=n_steps)
    ex = _Executor(top, step, flat_in, in_tree, budget, progress, checks)
    return ex.record(ex.forward_offline(n_steps))


def while_loop(cond: Callable, step: Callable, state0, args: tuple = (),
               budget: Budget | str | dict | None = None, *, progress: bool = False,
               check_recompute: bool = True, preserve_rng_state: bool = False):
    """Run `state = step(state, i, *args)` while `cond(state, i, *args)`; return the state.

    The step count is found at run time (adaptive time stepping, iterate to convergence);
    reverse mode uses the online schedule, which needs no step count in advance. The step
    follows the rules of `loop`, and `check_recompute` / `preserve_rng_state` mean the same.

    >>> import diffkit as dk
    >>> halve = lambda x0: dk.checkpoint.while_loop(lambda x, i: x > 0.1, lambda x, i: x / 2, x0)
    >>> float(dk.grad(halve)(1.0))  # four halvings: 1 -> 0.0625
    0.0625
    """
    checks = _Checks(check_recompute, preserve_rng_state)
    args = tuple(args)
    flat_in, in_tree = pytree.flatten((state0, args))
    top = top_trace(flat_in)
    if top is None:
        i, owned = 0, owned_tensors(state0)
        while cond(state0, i, *args):
            state0, i = call_step(step, state0, i, args, owned), i + 1
            if i == 1:
                _refuse_closure(state0)
        return state0
    if not top.active:
        raise top.leaked("checkpoint.while_loop")
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, state0, args, budget, progress, checks, cond=cond)
    ex = _Executor(top, step, flat_in, in_tree, budget, progress, checks)
    if not cond(ex.state0, 0, *ex.args):
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


class _Checks(NamedTuple):
    """What a loop checks of its step (see `loop`)."""

    check_recompute: bool
    preserve_rng_state: bool


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
                          budget, progress=progress, **checks._asdict())
    else:
        out, t_out = while_loop(lambda pair, i, a, ta: cond(pair[0], i, *pytree.unflatten(
            a_tree, a)), pair_step, (pytree.unflatten(s_tree, s0), ts0), (a0, ta), budget,
            progress=progress, **checks._asdict())
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

    def __init__(self, trace, step, flat_in, in_tree, budget, progress, checks):
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
        self.tape_floor, self.replans, self.replanning = 0, 0, False
        self.checks, self.owned = checks, owned_tensors(self.state0)
        self.fp = None
        self.rng = RngReplay() if checks.preserve_rng_state else None

    # -- one step ---------------------------------------------------------------------
    def _advance(self, state, i):
        if i == 0 and self.first is not None and state is self.state0:
            out, self.first = self.first[0], None  # step 0 was taped by _measure: reuse it
            return out
        self.calls += 1
        out = call_step(self.step, state, i, self.args, self.owned)
        leaves = pytree.leaves(out)
        self._check_closure(leaves, i)
        self._check_size(leaves, i)
        if self.fp is not None:
            self.fp.seen(i + 1, leaves)
        return out

    def _tape_or_reuse(self, state, i):
        """`_tape(state, i)`, reusing the tape of step 0 that `_measure` made."""
        if i == 0 and self.first is not None and state is self.state0:
            first, self.first = self.first, None
            return first
        return self._tape(state, i)

    def _tape(self, state, i, trace_type=VJPTrace):
        """Tape step i from `state`: (next state, `step_vjp`), where `step_vjp(ct)` maps the
        cotangents of the next state's leaves to those of this state's and the args' leaves
        (flat lists, None where nothing flows). Uses a VJP trace directly: this runs once
        per reversed step, so it does no pytree work it can avoid."""
        flat_s, s_tree = pytree.flatten(state)
        leaves, ns = flat_s + self.flat_args, len(flat_s)
        trace = trace_type("checkpoint.loop")
        boxed, pos = list(leaves), []
        for k, x in enumerate(leaves):
            if self.arg_traced[k - ns] if k >= ns else carries_tangent(x):
                boxed[k] = trace.leaf(x)
                pos.append(k)
            elif k < ns:
                boxed[k] = protect(x, self.owned)
        self.calls += 1
        try:
            out = call_protected(self.step, s_tree, flat_s, boxed[:ns], i,
                                 pytree.unflatten(self.a_tree, boxed[ns:]))
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
        self._check_size(primal, i)
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
        if self.fp is not None:
            self.fp.seen(i + 1, primal)
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

    def _check_size(self, leaves, i):
        """A state larger than state0 would break the memory plan: refuse it (re-planning
        a schedule half-run is not supported)."""
        nbytes = tree_nbytes(leaves)
        if nbytes > self.state_bytes:
            raise BudgetError(
                f"the step function of checkpoint.loop returned a larger state at step {i}: "
                f"{nbytes:,} bytes where state0 has {self.state_bytes:,}. The memory plan "
                f"(budget.memory = {self.budget.memory:,} bytes) was made for states of "
                f"state0's size; keep the state's shapes fixed (pad it to its largest size), "
                f"or run the steps where it grows as a separate loop."
            )

    def _hold(self, nbytes, i, tape=False):
        """Count snapshot or tape bytes held (negative: released); refuse, naming the step,
        a total that no longer fits the budget next to the measured working set. A tape kept
        by the forward sweep that outgrew step 0's (more work at some `i`, such as an
        observation every k steps) asks for a new plan instead (`_Replan`)."""
        rep = self.report
        held = rep.hold(nbytes)
        if nbytes > 0 and held + rep.reverse_bytes > self.budget.memory:
            if tape and self.replanning and nbytes > rep.work_bytes:
                raise _Replan(nbytes, i)
            raise BudgetError(
                f"checkpoint.loop holds {held:,} bytes of snapshots and step tapes at step "
                f"{i}; with the {rep.reverse_bytes:,}-byte working set measured on step 0 "
                f"that exceeds budget.memory = {self.budget.memory:,} bytes: step {i}'s tape "
                f"keeps more than step 0's ({rep.work_bytes:,} bytes) that the plan was made "
                f"for. Give the step the same work at every i, or a larger budget."
            )

    # -- forward sweep ----------------------------------------------------------------
    def _measure(self, n):
        """Bytes of one state, of what one step's tape keeps (K), and of the working set
        on top of the snapshots and kept tapes (R), from taping step 0 with a trace that
        watches every value the step makes. R covers the worse of taping a step (the
        current state plus the step's measured peak of live values, less K) and reversing
        it (`cotangent_nbytes`), plus the cotangent coming in, the loop's output, the
        arguments' cotangents (two: the sum and its new term), the fingerprints and the
        schedule's own objects. The tracemalloc peak stays within the plan
        (tests/test_loop_memory.py)."""
        self.state_bytes = state_bytes = max(1, tree_nbytes(self.state0))
        self.calls, self.first = 0, None
        self.first = self._tape(self.state0, 0, LiveBytesTrace)  # kept for the first step
        tape = self.first[1].tape
        live, kept = tape.stop(), tape.nbytes()
        reverse = (2 * state_bytes + 2 * tree_nbytes(self.args)
                   + max(state_bytes + live - kept, tape.cotangent_nbytes())
                   + (self.fp.nbytes if self.fp is not None else 0) + stream_bytes(n))
        return state_bytes, kept, reverse

    def _start(self, n):
        state_bytes, tape, reverse = self._measure(n)
        tape = max(tape, self.tape_floor)
        self.plan = make_plan(n, state_bytes, self.budget, step_tape_bytes=tape,
                              reverse_bytes=reverse)
        self.report = Report(self.plan, state_bytes, tape or state_bytes, reverse, n_steps=n,
                             replans=self.replans)
        self.storage = Storage(self.budget.disk.path if self.budget.disk else None)
        self.tapes, self.progress = {}, Progress(self.progress_enabled, n)
        self.held = {}  # (what, step) -> bytes: RAM snapshots and kept tapes
        self.t0 = time.perf_counter()

    def _begin(self):
        """Before a forward sweep: fingerprint state 0, and take (or, on a second sweep,
        restore) the generators' state at the loop's start."""
        if self.checks.check_recompute:
            if self.fp is None:
                self.fp = Fingerprints(tree_nbytes(self.state0))
            self.fp.seen(0, pytree.leaves(self.state0))
        if self.rng is not None:
            self.rng.begin()

    def forward_offline(self, n):
        """The forward sweep; planned again (at most `_MAX_REPLANS` times) for the largest
        step tape seen when a kept tape outgrows the one measured on step 0."""
        self.n, self.tape_floor, self.replans = n, 0, 0
        while True:
            self.replanning = self.replans < _MAX_REPLANS
            try:
                return self._sweep_offline(n)
            except _Replan as grown:
                self.tape_floor, self.replans = grown.nbytes, self.replans + 1
                self.grown_at = grown.step
            except BudgetError as e:
                if not self.replans:
                    raise
                raise BudgetError(
                    f"step {self.grown_at}'s tape keeps {self.tape_floor:,} bytes, more than "
                    f"the step tape measured on step 0 (the step does more work at some i), "
                    f"and no plan for tapes of that size fits: {e}") from None
            finally:
                self.replanning = False

    def _sweep_offline(self, n):
        self._begin()
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
                self.held["tape", n - 1] = nbytes = self.tapes[n - 1].tape.nbytes()
                self._hold(nbytes, n - 1, tape=True)
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
        self._begin()
        self._start(None)
        sched, current, keep, i = self.plan.schedule, self.state0, None, 0
        try:
            while cond(current, i, *self.args):
                for action in sched.forward_step(i):
                    self._do(action, keep, i - 1)
                if self.rng is not None:
                    self.rng.before_step(i)
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
                if self.rng is not None:
                    self.rng.save((tier, step), step)
                if tier == RAM:
                    self.held[RAM, step] = nbytes = tree_nbytes(current)
                    self._hold(nbytes, step)
                return current, at
            case Load(step, tier):
                current = self.storage.load(step, tier)
                if self.fp is not None:
                    self.fp.loaded(step, pytree.leaves(current))
                if self.rng is not None:
                    self.rng.load((tier, step))
                return current, step
            case Discard(step, tier):
                self.storage.discard(step, tier)
                if self.rng is not None:
                    self.rng.discard((tier, step))
                if tier == RAM:
                    rep.hold(-self.held.pop((RAM, step)))
                return current, at
            case Forward(step):
                _expect(at, step, action)
                current, self.tapes[step] = self._tape_or_reuse(current, step)
                self.held["tape", step] = nbytes = self.tapes[step].tape.nbytes()
                self._hold(nbytes, step, tape=True)
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
        after = RngState() if self.rng is not None else None  # put back when done
        try:
            ct, ct_args = self._reverse_sweep(ct)
        finally:
            self.storage.close()
            self.progress.close()
            if after is not None:
                after.restore()
        rep = self.report
        rep.reverse_seconds = time.perf_counter() - t0
        rep.peak_snapshots = dict(self.storage.peak)
        rep.disk_written, rep.disk_read = self.storage.bytes_written, self.storage.bytes_read
        set_last_report(rep)
        return ct + ct_args

    def _reverse_sweep(self, ct):
        current, at = self.resume
        if current is not None and self.rng is not None:
            self.rng.resume_keep()
        ct_args, action, done = None, self.pending, 0
        while action is not None:
            if isinstance(action, Reverse):
                i = action.step
                step_vjp = self.tapes.pop(i, None)
                if step_vjp is None:
                    _expect(at, i, action)
                    step_vjp = self._tape_or_reuse(current, i)[1]  # not the next state
                    self.held["tape", i] = nbytes = step_vjp.tape.nbytes()
                    self._hold(nbytes, i)
                current = at = None  # the tape keeps what the VJP reads of state i
                ct, cta = step_vjp(ct)
                self.report.hold(-self.held.pop(("tape", i)))
                ct_args = cta if ct_args is None else [_add(a, b) for a, b in zip(ct_args, cta)]
                step_vjp = None
                done += 1
                self.progress.update("reverse", done)
            else:
                current, at = self._do(action, current, at)
            action = next(self.actions, None)
        self.report.reversed, self.report.advances = done, self.calls
        if done != self.n:
            raise InternalError(f"the schedule reversed {done} of {self.n} steps: a diffkit bug")
        return ct, ct_args or [None] * len(self.flat_args)


_MAX_REPLANS = 3  # a step whose tape keeps growing with i is refused after this many


class _Replan(Exception):
    """A tape kept in the forward sweep outgrew the plan's: plan again for `nbytes`."""

    def __init__(self, nbytes: int, step: int):
        super().__init__(nbytes, step)
        self.nbytes, self.step = nbytes, step


def _expect(at, step, action):
    if at != step:
        raise InternalError(f"{action} while the current state is {at}: a diffkit bug")
