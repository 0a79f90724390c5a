"""The executor of one checkpointed loop under reverse mode: runs the planned schedule's
forward sweep, records the loop as one tape node, and runs the reverse sweep when that node's
VJP is called, taping one step at a time; it checks every step call (`stepcheck`) and counts
the bytes of the snapshots and tapes it holds against the budget.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import NamedTuple

import numpy as np

from diffkit.checkpoint import ranks
from diffkit.checkpoint.actions import RAM, Advance, Discard, Forward, Load, Reverse, Save
from diffkit.checkpoint.budget import Budget, load_budget
from diffkit.checkpoint.compiled import CompiledStep, resolve
from diffkit.checkpoint.planner import human_bytes, storage_tiers, stream_bytes
from diffkit.checkpoint.planner import plan as make_plan
from diffkit.checkpoint.report import Progress, Report, log_replan, reverse_sweep, set_last_report
from diffkit.checkpoint.resume import open_run, resume_sweep
from diffkit.checkpoint.stepcheck import (
    Fingerprints,
    RngReplay,
    RngState,
    call_protected,
    call_step,
    owned_tensors,
    protect,
)
from diffkit.checkpoint.storage import Storage, synced_tiers, tier_paths, tree_nbytes
from diffkit.checkpoint.writer import action_stream, io_bytes, plan_with_io
from diffkit.core import pytree
from diffkit.core.reverse import LiveBytesTrace, VJPTrace, VJPTracer
from diffkit.core.tracer import Tracer
from diffkit.core.zeros import Zero
from diffkit.custom import carries_tangent, record_node, unbox
from diffkit.errors import BudgetError, CompileError, InternalError, TransformError

__all__ = ["Checks", "Executor", "LoopIO"]


class Checks(NamedTuple):
    """What a loop checks of its step (see `diffkit.checkpoint.loop`)."""

    check_recompute: bool
    preserve_rng_state: bool
    compile: bool | str | None = None  # None: the default (`compile_steps`)



class LoopIO:
    """What a plain loop exchanges with its steps besides the state: nothing. A scan
    (`diffkit.checkpoint.scan`) gives per-step inputs x_i and takes per-step outputs y_i."""

    name = "checkpoint.loop"  # in error messages
    x_flat: tuple = ()

    def x_at(self, i):
        return []

    def step_at(self, step, i, x):
        return step

    def split(self, out, i):
        return out, []

    def put_y(self, i, y):
        pass

    def take_ct(self, ct):
        return ct

    def ct_y(self, i):
        return ()

    def ct_x(self):
        return []

    def put_ct_x(self, i, ct):
        pass

    def nbytes(self, n):
        return 0


class _Sums:
    """The arguments' cotangents summed over the reversed steps. A sum this object made is
    its own, so later terms are added into it in place (same type, shape and dtype, no
    tracer): a step reading obs[i] adds a full-size term at every step, and a new array per
    step made that O(steps x size) in allocations. A term itself is never written into: it
    may be a step's input cotangent passed through."""

    __slots__ = ("sums", "owned")

    def __init__(self, n: int):
        self.sums, self.owned = [None] * n, [False] * n

    def add(self, terms) -> None:
        sums, owned = self.sums, self.owned
        for k, b in enumerate(terms):
            a = sums[k]
            if b is None:
                continue
            if a is None:
                sums[k] = b
            elif owned[k] and type(a) is type(b) and hasattr(a, "shape") \
                    and not isinstance(a, Tracer) and a.shape == b.shape and a.dtype == b.dtype:
                a += b
                sums[k] = a  # (a NumPy scalar is a new one)
            else:
                sums[k], owned[k] = a + b, True


class Executor:
    """Runs one checkpoint schedule for one loop call: forward sweep, then reverse sweep."""

    overlap_io = True  # disk writes and reads in a background thread (`writer`)

    def __init__(self, trace, step, flat_in, in_tree, budget, progress, checks, io=None,
                 resume=False):
        self.trace, self.step, self.flat_in = trace, step, flat_in
        self.io = LoopIO() if io is None else io
        n_x = len(self.io.x_flat)
        primals = unbox(flat_in, trace)
        state0, args = pytree.unflatten(in_tree, primals[:len(primals) - n_x])
        flat_args, self.a_tree = pytree.flatten(tuple(args))
        self.state0 = state0  # NumPy arguments on a tensor state's backend, as weak constants
        self.args = _weak_moved(tuple(args), flat_args, self.a_tree, state0)
        self.flat_args = pytree.leaves(self.args)
        # only the arguments the caller differentiates need cotangents (every state leaf
        # that can carry one does: it may come to depend on a traced value)
        n_s = len(flat_in) - len(self.flat_args) - n_x  # args' and x_i's leaves: traced?
        self.arg_traced = [type(x) is VJPTracer and x._trace is trace for x in flat_in[n_s:]]
        self.budget = budget if isinstance(budget, Budget) else load_budget(budget)
        if any(isinstance(x, Tracer) for x in primals):
            self.budget = dataclasses.replace(self.budget, disk=None, tiers=())  # tracers: RAM
        self.progress_enabled = progress
        self.used, self.cond = False, None
        self.tape_floor, self.replans, self.replanning = 0, 0, False
        self.grown_what = ""  # why the last re-plan happened, when not a larger tape
        self.exact = False  # whether the plan's sizes come from compiled programs (`_measure`)
        self.trace_room = False  # whether the plan keeps room to trace the step again
        self.checks, self.owned = checks, owned_tensors(self.state0)
        self.fp = None
        self.rng = RngReplay() if checks.preserve_rng_state else None
        self.resume_request, self.run = resume, None  # `resume`: a killed run's files
        self.compiled = self._compiled_step(checks.compile)

    def _compiled_step(self, compile):
        """The step as programs (`compiled`), unless compile=False or its RNG is replayed."""
        compile = resolve(compile, self.io.name)
        if compile is False or (compile == "auto" and ranks.communicator() is not None):
            return None  # ranks could decide apart whether to compile: they run eagerly
        if self.rng is not None:
            if compile is True:
                raise CompileError(
                    f"{self.io.name}: compile=True cannot replay a step's random numbers "
                    f"(preserve_rng_state=True): such a step runs eagerly; pass "
                    f"compile='auto' or False")
            return None
        flat, self.s_tree = pytree.flatten(self.state0)
        self.n_state = len(flat)
        leaves = flat + self.flat_args + self.io.x_at(0)
        compiled = CompiledStep(self.io, self.step, self.s_tree, self.a_tree,
                                len(self.flat_args), self._diff_pos(leaves),
                                insist=compile is True)
        compiled.on_trace = self._check_outputs
        compiled.before_retrace = self._before_retrace
        compiled.on_give_up = self._compiled_gave_up
        compiled.accepts = lambda leaves: self._diff_pos(leaves) == compiled.diff_pos
        return compiled

    def _check_outputs(self, outs, i):
        """What every step's outputs must pass (a program's, once, when it is traced)."""
        self._check_closure(outs, i)
        self._check_size(outs[:self.n_state], i)
        rep = getattr(self, "report", None)
        if rep is not None and self.replanning and self.compiled.traces > 1:
            self._check_program_room(rep, i)

    def _compiled_gave_up(self, i: int) -> None:
        """The step runs eagerly from step i on: a plan made for its programs' working set
        no longer holds. The forward sweep plans again (eagerly measured); where it cannot,
        the loop is refused rather than run past its budget."""
        rep = getattr(self, "report", None)
        if rep is None:
            return
        what = (f" could not be compiled ({self.compiled.reason}), and its eager tape and "
                f"working set were not planned for")
        if self.replanning:
            raise _Replan(self.tape_floor, i, what=what)
        raise BudgetError(f"the step function of {self.io.name} at step {i}{what}; give a "
                          f"larger budget.memory, or pass compile=False")

    def _check_program_room(self, rep, i) -> None:
        """A branch traced mid-sweep whose programs hold more than the plan's working set
        (or keep a larger tape) asks for a plan that fits every branch (`_Replan`)."""
        work = self._compiled_working_set(self.compiled, rep.n_steps, self.fixed_bytes)
        kept = self.compiled.stats()[0]
        if work > rep.reverse_bytes - rep.io_bytes or kept > rep.work_bytes:
            raise _Replan(max(kept, self.tape_floor), i, what=(
                f" took a new branch whose programs need a {work:,}-byte working set, more "
                f"than step 0's {rep.reverse_bytes - rep.io_bytes:,}"))


    def _diff_pos(self, leaves) -> list[int]:
        """Positions of the step's input leaves (state, args, x_i) that get cotangents:
        every state leaf that can carry one, the traced args and x_i."""
        ns = len(leaves) - len(self.arg_traced)
        return [k for k, x in enumerate(leaves)
                if (self.arg_traced[k - ns] if k >= ns else carries_tangent(x))]

    # -- one step ---------------------------------------------------------------------
    def _advance(self, state, i):
        if i == 0 and self.first is not None and state is self.state0:
            out, self.first = self.first[0], None  # step 0 was taped by _measure: reuse it
            return out
        self.calls += 1
        if self.compiled is not None and self.compiled.on:
            flat = pytree.leaves(state)
            got = self.compiled.forward(flat + self.flat_args + self.io.x_at(i), i)
            if got is not None:  # its outputs were checked when it was traced; a program
                self.io.put_y(i, got[len(flat):])  # replays exactly: no fingerprint
                if self.fp is not None:
                    self.fp.skip(i + 1)
                return pytree.unflatten(self.s_tree, got[:len(flat)])
        out = call_step(self.io.step_at(self.step, i, self.io.x_at(i)), state, i, self.args,
                        self.owned)
        out, y = self.io.split(out, i)
        leaves = pytree.leaves(out)
        self._check_closure(leaves + y, i)
        self.io.put_y(i, y)
        self._check_size(leaves, i)
        if self.fp is not None:
            self.fp.seen(i + 1, leaves)
        return out

    def _tape_or_reuse(self, state, i, outputs=True):
        """`_tape(state, i)`, reusing the tape of step 0 that `_measure` made."""
        if i == 0 and self.first is not None and state is self.state0:
            first, self.first = self.first, None
            return first
        return self._tape(state, i, outputs=outputs)

    def _tape(self, state, i, trace_type=VJPTrace, outputs=True):
        """Tape step i from `state`: (next state, `step_vjp`), where `step_vjp(ct, ct_y)`
        maps the cotangents of the next state's leaves (and of a scan's y_i) to those of this
        state's, the args' and x_i's leaves (flat lists, None where nothing flows). Runs the
        step's programs when it is compiled, else a VJP trace directly: this runs once per
        reversed step, so it does no pytree work it can avoid. With `outputs=False` (the
        reverse sweep, which wants only the tape) a compiled step computes just what its
        backward program reads, and the next state returned is None."""
        flat_s, s_tree = ([state], pytree.LEAF) if type(state) is np.ndarray else \
            pytree.flatten(state)
        x = self.io.x_at(i)
        leaves, ns = flat_s + self.flat_args + x, len(flat_s)
        na = ns + len(self.flat_args)
        if self.compiled is not None and self.compiled.on and trace_type is VJPTrace:
            got = self._tape_compiled(leaves, s_tree, ns, na, i, outputs)
            if got is not None:
                return got
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
            out = call_protected(self.io.step_at(self.step, i, boxed[na:]), s_tree, flat_s,
                                 boxed[:ns], i, pytree.unflatten(self.a_tree, boxed[ns:na]))
            out, flat_y = self.io.split(out, i)
        finally:
            trace.active = False
        flat_out, out_tree = pytree.flatten(out)
        if out_tree != s_tree:
            raise TransformError(
                f"the step function of {self.io.name} changed the structure of the state at "
                f"step {i}: it returned {out_tree!r} for a state {s_tree!r}; return a state "
                f"of the same structure as state0"
            )
        primal, y = ([o.primal if type(o) is VJPTracer and o._trace is trace else o
                      for o in flat] for flat in (flat_out, flat_y))
        self._check_closure(primal + y, i)
        self._check_size(primal, i)
        self.io.put_y(i, y)
        # where each output sits on the tape (not the tracers: they would keep the state)
        refs = [(o.idx, o.out) if type(o) is VJPTracer and o._trace is trace else None
                for o in flat_out + flat_y]
        n_leaves = len(leaves)
        del flat_out, flat_y, y, x, out, leaves, boxed, flat_s  # the closure must not keep them

        def step_vjp(ct, ct_y=()):
            roots = [(*r, c) for r, c in zip(refs, list(ct) + list(ct_y), strict=True)
                     if c is not None and r is not None]
            acc = trace.backward(roots, consume=True)
            cts = [None] * n_leaves
            for j, k in enumerate(pos):  # leaf j of the tape is input leaf k
                cts[k] = acc[j]
            return cts[:ns], cts[ns:na], cts[na:]

        step_vjp.tape = trace
        if self.fp is not None:
            self.fp.seen(i + 1, primal)
        return pytree.unflatten(s_tree, primal), step_vjp

    def _tape_compiled(self, leaves, s_tree, ns, na, i, outputs=True):
        """`_tape` by the step's forward and backward programs (None: run it eagerly)."""
        got = self.compiled.taped_step(leaves, i, outputs, ns, na)  # programs exist only for
        if got is None:  # inputs that get cotangents at `diff_pos` (`accepts`)
            return None
        self.calls += 1
        outs, step_vjp = got
        if self.fp is not None:
            self.fp.skip(i + 1)
        if outs is None:
            return None, step_vjp
        self.io.put_y(i, outs[ns:])
        state = outs[0] if s_tree is pytree.LEAF else pytree.unflatten(s_tree, outs[:ns])
        return state, step_vjp

    def _check_closure(self, leaves, i):
        for leaf in leaves:
            if isinstance(leaf, Tracer) and leaf._trace.level >= self.trace.level:
                raise TransformError(
                    f"the step function of {self.io.name} returned a value traced by "
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
                f"the step function of {self.io.name} returned a larger state at step {i}: "
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
        it (`cotangent_nbytes`), plus the cotangent coming in, the arguments' cotangents
        (two: the sum and its new term), the fingerprints and the schedule's own objects.
        The reverse sweep holds neither the loop's output (`record_node(lean=True)`) nor
        its given cotangent once used, and state 0's snapshot is the caller's state0
        (`plan(state0_held=True)`): exact for compiled programs (`self.exact`), whose sizes
        come from their liveness. An eager step's are measured on step 0 only, and its
        tapes may vary from step to step: its plan keeps a state in reserve and charges
        state 0's slot. The tracemalloc peak stays within the plan (tests/test_loop_memory.py,
        tests/test_few_states.py)."""
        self.state_bytes = state_bytes = max(1, tree_nbytes(self.state0))
        self.calls, self.first = 0, None
        fixed = lambda ys=True: (state_bytes + 2 * tree_nbytes(self.args)  # noqa: E731
                                 + (self.fp.nbytes if self.fp is not None else 0)
                                 + stream_bytes(n)
                                 + (self.io.nbytes(n) if ys else 0))  # a scan's y_i: known
        # after step 0
        compiled = self.compiled if self.compiled is not None and self.compiled.on else None
        if compiled is not None:  # the programs on step 0 (traced now, or replayed)
            compiled.n_steps = n  # fusing the programs pays on long loops (`fuse.plan`)
            if not compiled.insist:  # a trace that outgrows the budget stops (while step 0
                # is traced, the loop has no cotangent yet)
                compiled.trace_limit = self.budget.memory - fixed(ys=False) + state_bytes
            flat, tree = pytree.flatten(self.state0)
            na = len(flat) + len(self.flat_args)
            while True:  # twice when 'auto' fuses the programs for the budget's sake
                self.first = self._tape_compiled(flat + self.flat_args + self.io.x_at(0),
                                                 tree, len(flat), na, 0)
                if self.first is None:
                    break
                self.fixed_bytes = fixed()
                reverse = self._compiled_working_set(compiled, n, self.fixed_bytes)
                kept = compiled.stats()[0]
                if max(kept, state_bytes) + reverse <= self.budget.memory or compiled.insist:
                    self.exact = True
                    return state_bytes, kept, reverse
                self.first, self.calls = None, 0
                if not compiled.fuse_for_memory():
                    compiled.give_up(  # small states: the programs' own objects dominate
                        f"its programs' working set ({human_bytes(reverse)}) leaves no room "
                        f"for a snapshot in budget.memory = {human_bytes(self.budget.memory)}")
                    break
            self.first, self.calls = None, 0
        # eagerly: tape step 0 with a trace that measures its values
        self.first = first = self._tape(self.state0, 0, LiveBytesTrace)
        tape = first[1].tape
        kept, live = tape.nbytes(), tape.stop()
        self.calls, self.exact = 1, False  # measured, not derived: a state in reserve
        return state_bytes, kept, fixed() + state_bytes + max(state_bytes + live - kept,
                                               tape.cotangent_nbytes())

    def _compiled_working_set(self, compiled, n, fixed: int) -> int:
        """The working set of a compiled step: the fixed part, the buffers its programs
        share, and the larger of running a forward program (beside the current state) and
        the backward one. Tracing again (a guard's new outcome) takes more, but only now
        and then: it is counted only where no re-plan can make room for it later (a while
        loop, or after such a re-plan: `trace_room`). Buffers that would leave no room
        for a snapshot are dropped (they only save time)."""
        state = self.state_bytes
        self.trace_room = self.trace_room or n is None
        shared = compiled.shared_nbytes  # the tape's part that is the state

        def work_of(forward, backward, traced) -> int:
            advance = max(forward, traced if self.trace_room else 0)
            return max(state + advance - shared, backward)

        kept, forward, backward, pool, traced = compiled.stats()
        work = work_of(forward, backward, traced)
        io = io_bytes(state) if self.overlap_io and storage_tiers(self.budget) else 0
        spare = self.budget.memory - (max(kept, state) + fixed + work + io)
        if pool and pool > spare // 4:  # buffers only save time: never much of the room
            compiled.drop_buffers()  # for snapshots (or the disk I/O's)
            kept, forward, backward, pool, traced = compiled.stats()
            work = work_of(forward, backward, traced)
        self.trace_bytes, self.retrace_base = traced, fixed + pool
        return fixed + pool + work

    def _before_retrace(self, nbytes: int, i: int) -> None:
        """A guard took a new outcome: tracing it takes `nbytes` beside the current state.
        Without room next to what is held, the forward sweep starts again under a plan
        that keeps room for tracing (`_Replan`), or, where it cannot, the loop is refused."""
        rep = getattr(self, "report", None)
        if rep is None:
            return
        held = rep.held_bytes + self.retrace_base + rep.io_bytes + self.state_bytes
        if not self.compiled.insist:  # a values trace stops where the room beside what is
            self.compiled.trace_limit = self.budget.memory - held  # held ends
        if self.trace_room or held + nbytes <= self.budget.memory:
            return
        if self.replanning:
            raise _Replan(0, i, retrace=True)
        raise BudgetError(
            f"the step function of {self.io.name} took a new branch at step {i} "
            f"(a guard of its compiled program came out differently), and tracing it needs "
            f"{human_bytes(nbytes)} more than budget.memory = "
            f"{human_bytes(self.budget.memory)} leaves free. Give a larger budget, or pass "
            f"compile=False.")

    def _start(self, n):
        self.report = None  # (a re-plan measures afresh: no mid-sweep checks meanwhile)
        state_bytes, tape, reverse = self._measure(n)
        tape = max(tape, self.tape_floor)
        state_bytes, tape, reverse, self.budget = ranks.agree_plan(  # one plan on every rank
            state_bytes, tape, reverse, self.budget)
        self.plan, io = plan_with_io(functools.partial(make_plan, state0_held=self.exact), n,
                                     state_bytes, self.budget, tape, reverse, self.overlap_io)
        self.report = Report(self.plan, state_bytes, tape or state_bytes, reverse + io,
                             n_steps=n, replans=self.replans, io_bytes=io)
        self.run = (open_run(self, self.resume_request, n)
                    if self.resume_request not in (False, None) else None)
        self.storage = Storage(tiers=tier_paths(self.budget), overlap=io > 0, run=self.run,
                               sync=synced_tiers(self.budget))
        if not self.replans:  # a re-planned sweep counts on, on the same bar
            self.progress = Progress(self.progress_enabled, n)
        self.tapes = {}
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
                self.replans += 1
                if grown.retrace:
                    self.trace_room = True
                    log_replan(grown.step, self.trace_bytes, self.replans, "tracing")
                    continue
                self.tape_floor, self.grown_at = grown.nbytes, grown.step
                self.grown_what = grown.what
                log_replan(grown.step, grown.nbytes, self.replans)
            except BudgetError as e:
                if not self.tape_floor:
                    raise
                what = self.grown_what or f"'s tape keeps {self.tape_floor:,} bytes, more " \
                    f"than the step tape measured on step 0"
                raise BudgetError(
                    f"step {self.grown_at}{what} (the step does more work at some i), and no "
                    f"plan for it fits: {e}") from None
            finally:
                self.replanning = False

    def _sweep_offline(self, n):
        self._begin()
        self._start(n)
        self.actions = action_stream(self.plan.actions(), self.storage)
        current, at = self.state0, 0
        try:
            current, at = resume_sweep(self, current, at)
            for action in self.actions:
                if isinstance(action, Reverse):
                    self.pending = action
                    break
                current, at = self._do(action, current, at)
            if at == n - 1 and self.pending == Reverse(n - 1) and not self.tapes:
                current, self.tapes[n - 1] = self._tape_or_reuse(current, n - 1)
                self.held["tape", n - 1] = nbytes = self.tapes[n - 1].tape.nbytes()
                self._hold(nbytes, n - 1, tape=True)
                self.progress.update("forward", n)
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
            while ranks.agree_cond(cond(current, i, *self.args), i):
                at, now = i - 1, None
                for action in sched.forward_step(i):
                    if now is None and self.rng is not None and type(action) is Load:
                        now = RngState()  # a Load moves the generators: put them back after
                    keep, at = self._do(action, keep, at)
                if now is not None:
                    now.restore()
                if self.rng is not None:
                    self.rng.before_step(i)
                keep, current = current, self._advance(current, i)
                i += 1
                self.progress.update("forward", i)
        except BaseException:
            self.storage.close()
            raise
        self.n = self.report.n_steps = i
        self.actions = action_stream(sched.reverse(i), self.storage)
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
                if self.run is not None:
                    self.run.saved(self, step, tier)
                if tier == RAM:  # (state 0 is the caller's: `plan(state0_held=True)`)
                    held = 0 if self.exact and current is self.state0 else tree_nbytes(current)
                    self.held[RAM, step] = held
                    self._hold(held, step)
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
                self.progress.update("forward", step + 1)
                return current, step + 1
        raise InternalError(f"unexpected action {action!r} outside a reverse step")

    # -- the tape node and the reverse sweep -------------------------------------------
    def record(self, out):
        """Put the loop on the caller's tape as one node whose VJP is the reverse sweep."""
        return record_node(self.trace, "checkpoint.loop", self.flat_in, out, self._vjp_all,
                           lean=True)

    def _vjp_all(self, given, ans):
        """The reverse sweep, as the node's VJP: `given` holds the outputs' cotangents,
        taken over (emptied) so that each one is freed once the sweep has used it."""
        if self.used:  # a second cotangent (jacrev): run the whole schedule again
            if self.cond is None:
                self.forward_offline(self.n)
            else:
                self.forward_online(self.cond)
        self.used = True
        ct = [None if isinstance(c, Zero) else c for c in given.pop()]
        ct = self.io.take_ct(ct)  # a scan keeps its ys' cotangents for the steps
        t0 = time.perf_counter()
        after = RngState() if self.rng is not None else None  # put back when done
        self.progress.start("reverse", self.n)
        try:
            with reverse_sweep():  # loops reversed inside this one join its gradient's reports
                ct, ct_args = self._reverse_sweep(ct)
            self.storage.close(success=True)
        finally:
            self.storage.close()
            self.progress.close()
            if after is not None:
                after.restore()
        rep = self.report
        rep.reverse_seconds = time.perf_counter() - t0
        rep.compiled = "eager (compile=False)" if self.compiled is None else \
            self.compiled.describe()
        rep.peak_snapshots = dict(self.storage.peak)
        rep.disk_written, rep.disk_read = self.storage.bytes_written, self.storage.bytes_read
        if self.storage.io is not None:
            rep.overlapped_writes = self.storage.io.overlapped
            rep.read_ahead = self.storage.io.read_ahead
        set_last_report(rep, self.trace.level)
        return ct + ct_args + self.io.ct_x()

    def _reverse_sweep(self, given):
        """Reverse every step: `given` (the state's cotangents, emptied here) to the
        cotangents of state0 and of the arguments."""
        ct, given[:] = list(given), []
        current, at = self.resume
        self.resume = (None, None)  # the sweep's own reference: freed after its first use
        if current is not None and self.rng is not None:
            self.rng.resume_keep()
        sums, action, done = _Sums(len(self.flat_args)), self.pending, 0
        while action is not None:
            if isinstance(action, Reverse):
                i = action.step
                step_vjp = self.tapes.pop(i, None)
                if step_vjp is None:
                    _expect(at, i, action)
                    step_vjp = self._tape_or_reuse(current, i, outputs=False)[1]
                    self.held["tape", i] = nbytes = step_vjp.tape.nbytes()
                    self._hold(nbytes, i)
                current = at = None  # the tape keeps what the VJP reads of state i
                ct, cta, ctx = step_vjp(ct, self.io.ct_y(i))
                self.io.put_ct_x(i, ctx)
                self.report.hold(-self.held.pop(("tape", i)))
                sums.add(cta)
                step_vjp = None
                done += 1
                self.progress.update("reverse", done)
            else:
                current, at = self._do(action, current, at)
            action = next(self.actions, None)
        self.report.reversed, self.report.advances = done, self.calls
        if done != self.n:
            raise InternalError(f"the schedule reversed {done} of {self.n} steps: a diffkit bug")
        return ct, sums.sums


_MAX_REPLANS = 3  # a step whose tape keeps growing with i is refused after this many


class _Replan(Exception):
    """A tape kept in the forward sweep outgrew the plan's: plan again for `nbytes`; or
    (`retrace`) a compiled step must be traced again: plan again with room for that."""

    def __init__(self, nbytes: int, step: int, retrace: bool = False, what: str = ""):
        super().__init__(nbytes, step)
        self.nbytes, self.step, self.retrace, self.what = nbytes, step, retrace, what


def _weak_moved(args: tuple, flat: list, tree, state) -> tuple:
    """`args` with their 0-d NumPy arrays (what `dk.grad` makes of a Python-number argument)
    on the state's backend and device when the state is on another, as a traced call would
    move them (weak constants): an untaped step's own `k * u` would meet a NumPy array and a
    tensor, which neither library accepts, and VJP rules would mix the two. Larger NumPy
    arguments stay as given (a step may use them as NumPy data)."""
    from diffkit.core.dispatch import registry

    reg = registry()
    strong = next((x for x in pytree.leaves(state) if (b := reg.backend_of(type(x)))
                   is not None and not b.default), None)
    weak = [isinstance(x, np.ndarray | np.generic) and x.ndim == 0 for x in flat]
    if strong is None or not any(weak):
        return args
    backend = reg.backend_of(type(strong))
    device = getattr(strong, "device", None)
    return pytree.unflatten(tree, [backend.asarray(x, device=device) if w else x
                                   for x, w in zip(flat, weak, strict=True)])


def _expect(at, step, action):
    if at != step:
        raise InternalError(f"{action} while the current state is {at}: a diffkit bug")
