"""Compiled steps: a loop's step traced once into programs, replayed at every step.

The first call traces the step (twice, to prove it deterministic) with a `ProgramTrace`: by
shapes only where the backend offers stand-ins (a kernel's output at a time), else, or when
a Python decision needs them, on the current state's values. It records the backward pass
of its VJP rules into the same trace, and cuts the result into a forward program (which
also returns the residuals), a plain forward program (for steps that are not taped) and a
backward program (residuals and output cotangents to input cotangents). Later steps run
these programs: no Python of the step, no tracer, no tape. The step index is a program
input, so `u * i` or `i % 10 == 0` replay correctly; every Python decision on a traced
value is a guard, checked on replay, and a step whose guards fail gets (and caches) another
program. A step that cannot be a program (random numbers, float(x), a nested loop or custom
rule, too many guard outcomes) runs eagerly, and `reason` says why (`compile=True` makes
that an error instead).
"""

from __future__ import annotations

import contextlib
import os
import warnings
import weakref

import numpy as np

from diffkit.checkpoint import fuse
from diffkit.checkpoint.planner import human_bytes
from diffkit.checkpoint.setting import ModeSetting, mode_of
from diffkit.checkpoint.stepcheck import RngState
from diffkit.core import pytree
from diffkit.core.program import (
    GuardFailed,
    NeedsValues,
    NotProgrammable,
    Program,
    ProgramTrace,
    ProgramTracer,
)
from diffkit.core.program_passes import (
    cse,
    order_for_memory,
    peak_bytes,
    prune,
    ref,
    rematerialize,
    split,
)
from diffkit.core.program_run import compile_program
from diffkit.core.program_vjp import transpose
from diffkit.core.tracer import Tracer
from diffkit.errors import CompileError, TransformError

__all__ = ["CompiledStep", "MAX_PROGRAMS", "compile_steps", "resolve"]

MAX_PROGRAMS = 8  # distinct guard outcomes cached per loop before it runs eagerly
_PROGRAM_TAPE_BYTES = 1024  # a kept step's VJP closure and its residual list
_LINE_BYTES = 1024  # objects of one program line (equation, variables, generated code):
# 830-990 B measured per line of the four programs of a 1-D step (tracemalloc)
_ENTRY_BYTES = 24576  # a program set's own objects, and a replay's (frames, lists, index)


def _tracing_bytes(lines: int) -> int:
    """Transient bytes of tracing and compiling programs of `lines` lines, beyond their
    values (tracemalloc: ~3 KB a line and ~30 KB fixed, on a 34-line heat step)."""
    return 32768 + 3072 * lines


def _parse(mode, where: str):
    return mode_of(mode, where, "compile")


_default = [_parse(os.environ.get("DIFFKIT_COMPILE", "auto"), "$DIFFKIT_COMPILE")]


def resolve(mode, where: str):
    """A loop's `compile=` argument: None means the default (`compile_steps`)."""
    return _default[0] if mode is None else _parse(mode, where)


class compile_steps(ModeSetting):  # noqa: N801 - a function and a with-block, a setting
    """Set whether loops compile their steps when their `compile=` is not given: 'auto'
    (the default; also `$DIFFKIT_COMPILE`), True, or False (run every step's Python, for
    debugging: a print in the step then runs at every step). As a call it sets the default;
    in a `with` block it sets it for the block only.

    >>> import diffkit as dk
    >>> with dk.checkpoint.compile_steps(False):
    ...     pass  # loops here run their steps eagerly
    """

    _default, _parse = _default, staticmethod(_parse)


class CompiledStep:
    """The programs of one loop call's step (see the module docstring)."""

    def __init__(self, io, step, s_tree, a_tree, n_args: int, diff_pos: list[int],
                 insist: bool):
        self.io, self.step, self.s_tree, self.a_tree = io, step, s_tree, a_tree
        self.n_state = s_tree.num_leaves
        self.n_args, self.diff_pos, self.insist = n_args, diff_pos, insist
        self.entries: list[_Entry] = []  # most recently used first
        self.reason: str | None = None  # why the step runs eagerly (None: compiled)
        self.traces = self.replays = 0
        self.trace_peak = 0  # most bytes of traced values alive at once while tracing
        self.trace_limit: int | None = None  # bytes a trace's values may take (the budget)
        self.pool: dict | None = {}  # preallocated outputs the programs share
        # (Backend.program_buffers); None: none (`drop_buffers`)
        self.on_trace = lambda outs, i: None  # checks a new program's outputs (the executor's)
        self.accepts = lambda leaves: True  # whether to trace for new inputs (the executor's)
        self.on_give_up = lambda i: None  # step i runs eagerly from now on (the executor's:
        # a plan made for the programs must be made again)
        self.before_retrace = lambda nbytes, i: None  # step i's new trace will take `nbytes`
        # (the executor's: it may re-plan, or refuse, when the budget has no room)
        self.n_steps: int | None = None  # the loop's length (the executor's): whether
        # fusing its programs pays (`fuse.plan`)
        self.fuse_now = False  # fused because the budget needs it (`fuse_for_memory`)

    @property
    def on(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        """For the loop's report: how the step ran."""
        if self.reason is not None:
            return f"eager (not compiled: {self.reason})"
        fused = ", fused" if any(e.fused for e in self.entries) else ""  # (fuse_steps)
        return (f"compiled: {len(self.entries)} program set(s) traced, "
                f"{self.replays:,} replays{fused}")

    def give_up(self, reason: str, cause: BaseException | None = None) -> None:
        """Run eagerly from now on; with compile=True, raise instead."""
        if self.insist:
            raise CompileError(
                f"compile=True: the step function of {self.io.name} cannot be compiled into "
                f"a program: {reason}. Pass compile='auto' to run such a step eagerly."
            ) from cause
        self.reason = reason

    # -- running ----------------------------------------------------------------------
    def forward(self, leaves: list, i: int):
        """The step's outputs (state leaves + y leaves) by the plain program, or None when
        the step runs eagerly."""
        got = self._replay(leaves, i, taped=False)
        return None if got is None else got[0]

    def taped(self, leaves: list, i: int, outputs: bool = True):
        """(outputs, step_vjp) by the forward program, or None when the step runs eagerly.
        `step_vjp(cts)` maps the outputs' cotangents (None: none) to the cotangents of
        `leaves` at `diff_pos`; `step_vjp.tape.nbytes()` counts its residuals. With
        `outputs=False` only the residuals are computed (outputs: None)."""
        got = self._replay(leaves, i, taped=True, outputs=outputs)
        if got is None:
            return None
        outs, entry, residuals = got
        return outs, _step_vjp(entry, residuals)

    def taped_step(self, leaves: list, i: int, outputs: bool, ns: int, na: int):
        """`taped` for the executor, in one closure: (outputs or None, step_vjp) where
        `step_vjp(ct, ct_y)` gives the cotangents of `leaves` split at `ns` and `na` (state,
        args, x_i), as `Executor._tape`'s. None when the step runs eagerly."""
        got = self._replay(leaves, i, taped=True, outputs=outputs)
        if got is None:
            return None
        outs, entry, residuals = got
        slots, zeros, flows = entry.ct_slots, entry.zeros, entry.flows
        places = [k for k, f in zip(self.diff_pos, flows, strict=True) if f]
        backward_for, n = entry.backward_for, len(leaves)

        def step_vjp(ct, ct_y=()):
            given = []
            for k in slots:
                c = ct[k] if k < len(ct) else ct_y[k - len(ct)]
                given.append(zeros[k]() if c is None else c)
            cts = [None] * n
            for k, c in zip(places, backward_for(given)(*residuals, *given), strict=True):
                cts[k] = c
            return cts[:ns], cts[ns:na], cts[na:]

        step_vjp.tape = _ResidualTape(entry.kept_nbytes)
        return outs, step_vjp

    def _replay(self, leaves, i, taped, outputs=True):
        if self.reason is not None:
            return None
        sig = _signature(leaves)
        index = np.asarray(i, dtype=np.int64)
        for k, entry in enumerate(self.entries):
            if entry.sig != sig:
                continue
            run = (entry.plain if not taped else entry.forward if outputs else
                   entry.residual_only)
            try:
                out = run(*(leaves if entry.pick is None else
                            [leaves[k] for k in entry.pick]), index)
            except GuardFailed:
                continue
            if k:
                self.entries.insert(0, self.entries.pop(k))
            self.replays += 1
            if not taped:
                return (list(out),)
            if not outputs:
                return None, entry, out
            n = entry.n_out
            return list(out[:n]), entry, out[n:]
        if not self.accepts(leaves):
            return None  # inputs the programs were not made for (the executor decides)
        if len(self.entries) >= MAX_PROGRAMS:
            last = self.entries[0].guard_summary
            hint = ("; a traced integer used as an index or a size that takes a new value "
                    "at every step is a guard: a NumPy array or Python list the step closes "
                    "over, indexed by i (pass it in args= or use dnp.take, and i is an "
                    "operand), or a slice whose length changes with i (obs[i:], obs[i:2*i]; "
                    "obs[i:i + k] with a fixed k is an operand)"
                    if "used as an index" in last else "")
            self.give_up(f"its guards took more than {MAX_PROGRAMS} different outcomes "
                         f"(last: {last}){hint}")
            return None
        if self.entries:
            self.before_retrace(self.stats()[4], i)
        return self._trace_new(leaves, i, sig, taped)

    # -- tracing ----------------------------------------------------------------------
    def _trace_new(self, leaves, i, sig, taped):
        rng = RngState()  # tracing must not consume the global generators' draws
        try:
            return self._trace_checked(leaves, i, sig, taped)
        finally:
            rng.restore()

    def _trace_checked(self, leaves, i, sig, taped):
        try:
            entry, why = self._trace_shapes(leaves, i, sig)
            if entry is not None:
                outs, residuals = self._run_traced(entry, leaves, i, taped)
            else:
                try:
                    entry, outs, residuals = self._trace_twice(leaves, i, sig)
                except _TraceTooLarge as e:
                    raise NotProgrammable(f"{e}{why}") from e
        except (NotProgrammable, GuardFailed) as e:
            self.give_up(str(e), e)
            self.on_give_up(i)
            return None
        except Exception as e:  # anything a program trace cannot follow (a traced index
            # array used as data, ...): run it eagerly, which raises again if the step is wrong
            self.give_up(f"tracing it raised {type(e).__name__}: {e}", e)
            return None
        self.entries.insert(0, entry)
        self.traces += 1
        self.on_trace(outs, i)
        return outs, entry, residuals

    def _trace_shapes(self, leaves, i, sig):
        """(entry, "") traced by shapes only, its memory a kernel's output at a time; or
        (None, why it could not: a Python decision on a value, a kernel that refused a
        stand-in), when the step must be traced with its values."""
        stand_in = self._stand_in(leaves)
        if stand_in is None:
            return None, ""
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # stand-ins' values
                warnings.simplefilter("ignore")  # are no data: no warning is the user's
                return self._trace_twice(leaves, i, sig, stand_in)[0], ""
        except (NotProgrammable, GuardFailed) as e:
            if not isinstance(e, NeedsValues):
                raise  # (random numbers, a custom rule: so with values too)
            return None, f"; tracing its shapes only could not: {e}"
        except Exception as e:  # noqa: BLE001 - a kernel that needs real values: trace them
            return None, f"; tracing its shapes only raised {type(e).__name__}: {e}"

    def _trace_twice(self, leaves, i, sig, stand_in=None):
        """The first program is traced twice and must come out the same; the plain trace
        first, so that the second does not run beside the first one's values."""
        plain = None if self.entries else self._trace(leaves, i, sig, False, stand_in)
        entry, outs, residuals = self._trace(leaves, i, sig, True, stand_in)
        self.trace_peak = max(self.trace_peak, entry.trace_peak)
        if plain is not None and not _same_body(entry.traced, plain):
            raise NotProgrammable(
                "tracing it twice on the same state gave different programs: it "
                "draws random numbers or keeps state between calls")
        return entry, outs, residuals

    def _stand_in(self, leaves):
        """The backend's `stand_in` for a shapes-only trace of these inputs, or None (no
        backend offers one, or values of an outer transform are among them)."""
        from diffkit.core.dispatch import registry

        if any(isinstance(x, Tracer) for x in leaves):
            return None
        kinds = [type(x) for x in leaves if getattr(x, "shape", ())]
        return getattr(registry().backend_of(kinds[0]), "stand_in", None) if kinds else None

    @staticmethod
    def _run_traced(entry, leaves, i, taped):
        """(outputs, residuals) of step i by the new programs (a shapes-only trace has no
        values): the taped forward program, or the plain one."""
        args = [*(leaves if entry.pick is None else [leaves[k] for k in entry.pick]),
                np.asarray(i, dtype=np.int64)]
        if not taped:
            return list(entry.plain(*args)), None
        out = entry.forward(*args)
        return list(out[:entry.n_out]), out[entry.n_out:]

    def _trace(self, leaves, i, sig, taped=True, stand_in=None):
        """(entry, outputs, residuals) of a new trace (`taped=False`: its forward body);
        with `stand_in`, of the state's shapes only (outputs and residuals: stand-ins)."""
        limit = self.trace_limit
        if limit is not None and stand_in is None:  # a values trace's watchdog misses a
            limit -= _data_nbytes(leaves[:self.n_state])  # kernel output in flight
        trace = _MeasuredTrace(f"{self.io.name} (compile)", limit, stand_in)
        try:
            return self._record(trace, leaves, i, sig, taped)
        finally:  # tracers keep their trace: no cycle may keep its values, even on failure
            trace.active = False
            trace.keep.clear()

    def _record(self, trace, leaves, i, sig, taped):
        ns = len(leaves) - self.n_args - len(self.io.x_flat)
        na = ns + self.n_args
        boxed = [_box(trace, x, k, ns, na, self.diff_pos) for k, x in enumerate(leaves)]
        index = trace.new(np.asarray(i, dtype=np.int64))
        trace.live = trace.peak = 0  # the inputs are the caller's (the plan counts the state)
        if taped:
            trace.differentiate([boxed[k] for k in self.diff_pos])
        try:
            step = self.io.step_at(self.step, index, boxed[na:])
            out = step(pytree.unflatten(self.s_tree, boxed[:ns]), index,
                       *pytree.unflatten(self.a_tree, boxed[ns:na]))
            out, flat_y = self.io.split(out, i)
            flat_out, out_tree = pytree.flatten(out)
            if out_tree != self.s_tree:
                raise TransformError(
                    f"the step function of {self.io.name} changed the structure of the state "
                    f"at step {i}: it returned {out_tree!r} for a state {self.s_tree!r}; "
                    f"return a state of the same structure as state0")
            outs = list(flat_out) + list(flat_y)
            n_fwd = len(trace.body)
            if not taped:
                self.trace_peak = max(self.trace_peak, trace.peak + _data_nbytes(
                    [o for o in outs if not (type(o) is ProgramTracer and o.var.n in
                                             trace.unknown)]))
                return trace.body[:n_fwd]
            cts, slots = _ct_inputs(trace, outs)
            in_cts = transpose(trace, n_fwd, [boxed[k] for k in self.diff_pos], cts)
        finally:
            trace.active = False
        inputs = [b for b in boxed if type(b) is ProgramTracer] + [index]
        entry = _Entry(trace.body, n_fwd, inputs, outs, in_cts, slots, sig, self.pool,
                       fuse.plan(self.n_steps, for_memory=self.fuse_now or any(
                           e.fused for e in self.entries)))  # (one plan: fused as the first)
        pick = [k for k, b in enumerate(boxed) if type(b) is ProgramTracer]
        entry.pick = None if len(pick) == len(leaves) else pick  # the rest are constants
        entry.trace_peak = trace.peak
        state = {b.var.n for b in boxed[:ns]}  # residuals that are the state: a taped step
        entry.shared_nbytes = sum(v.nbytes for v in entry.residuals if v.n in state)  # keeps
        # it, as the sweep would anyway
        known = {t.var.n: t for t in inputs} | trace.keep
        for old, new in entry.alias.items():  # merged by cse: the same value
            if old in known:
                known.setdefault(new.n, known[old])
        if trace.unknown:  # stand-ins: the caller runs the programs (`_run_traced`)
            return entry, None, None
        residuals = [known[v.n].primal for v in entry.residuals]
        return entry, [_primal(o) for o in outs], residuals

    # -- memory model -----------------------------------------------------------------
    def stats(self) -> tuple[int, int, int, int, int]:
        """For planning, over every program set traced (a plan must fit each branch): (bytes
        a taped step keeps, peak bytes of the forward programs' temporaries, of the backward
        program's, of the buffers they share, of tracing a step again: its values and the
        new programs' objects). Temporaries count the programs' own objects (all of them
        are kept)."""
        lines = max(sum(len(p.body) for p in e.programs) for e in self.entries)
        objects = (_ENTRY_BYTES + _LINE_BYTES * lines) * len(self.entries)
        pool = 0 if self.pool is None else sum(a.nbytes for row in self.pool.values()
                                               for a in row)
        most = lambda key: max(getattr(e, key) for e in self.entries)  # noqa: E731
        return (most("kept_nbytes"), most("forward_peak") + objects,
                most("backward_peak") + objects, pool,
                max(self.trace_peak, most("trace_peak")) + _tracing_bytes(lines))

    @property
    def shared_nbytes(self) -> int:
        """Bytes of a taped step's residuals that are its input state (the least over the
        program sets): the tape holds them where the sweep would hold the state anyway."""
        return min(e.shared_nbytes for e in self.entries)

    def fuse_for_memory(self) -> bool:
        """Under fuse_steps('auto'), fuse the programs now (forgetting those traced) because
        the budget needs their smaller working set; False when they are fused already, or
        fusion is off or unavailable. The step is then traced again."""
        if self.fuse_now or not fuse.plan(self.n_steps, for_memory=True)[0]:
            return False
        self.fuse_now = True
        self.entries.clear()
        if self.pool:
            self.pool = {}
        return True

    def drop_buffers(self) -> None:
        """Run every program without preallocated outputs, and free them: for a budget
        that the buffers (which trade memory for speed) would not fit."""
        self.pool = None
        for entry in self.entries:
            entry.build(None)


class _Entry:
    """One traced program set: forward (with residuals), plain forward, backward, and the
    residuals alone (taping a step in the reverse sweep, whose next state is not wanted)."""

    def __init__(self, body, n_fwd, inputs, outs, in_cts, slots, sig, pool,
                 fusing=(False, None)):
        ins = [t.var for t in inputs]
        bwd_outs = [None if c is None else ref(c) for c in in_cts]
        flows = [r for r in bwd_outs if r is not None]
        self.traced = body[:n_fwd]  # as recorded: the determinism check compares traces
        body, renamed, n_fwd, self.alias = cse(body, [ref(o) for o in outs] + flows, n_fwd)
        fwd, plain, bwd, residuals = split(
            body, n_fwd, ins, renamed[:len(outs)], [c.var for c in slots.values()],
            renamed[len(outs):])
        self.sig, self.n_out = sig, len(outs)
        self.ct_slots = list(slots)  # output positions that take a cotangent
        self.zeros = {k: _zero_maker(_primal(outs[k])) for k in self.ct_slots}
        self.flows = [r is not None for r in bwd_outs]  # diff input positions that get one
        kinds = [t.var.kind for t in inputs if t.var.shape]  # not the tracers: they keep
        self.backend_kind = kinds[0] if kinds else None  # the trace and its values
        self.outer = any(isinstance(_primal(t), Tracer) for t in inputs)
        self.fusing = fusing  # (whether to lower the programs, runs expected: `fuse.plan`)
        fwd, bwd, self.residuals = self._recompute_when_fused(fwd, bwd, residuals)
        only = Program(ins, self.residuals, [fwd.body[k] for k in prune(fwd.body,
                                                                          self.residuals)])
        self.programs = tuple(order_for_memory(p) for p in (fwd, plain, bwd, only))
        self.build(pool)
        self._backward_bind = None
        self.kept_nbytes = _PROGRAM_TAPE_BYTES + sum(v.nbytes for v in self.residuals)
        self.guard_summary = ", ".join(g.what for g in fwd.guards) or "none"

    def _recompute_when_fused(self, fwd, bwd, residuals):
        """The programs, with the backward recomputing the residuals that elementwise
        equations make (`rematerialize`) when the backend fuses all of those into its
        loops: the tape then keeps the step's inputs only, at no memory in the backward."""
        again = None if not self.fusing[0] or self.outer else \
            rematerialize(fwd, bwd, residuals)
        if again is None:
            return fwd, bwd, residuals
        lowered = _runner(self.backend_kind, False, None).lower(
            order_for_memory(again[1]), self.fusing[1])
        unfused = {id(e) for e in again[3]} & {id(e) for e in lowered.body}
        return (fwd, bwd, residuals) if unfused else again[:3]

    def build(self, pool: dict | None) -> None:
        """Generate the programs' code, writing temporaries into `pool`'s buffers where the
        backend offers them (None: no buffers), and size their temporaries."""
        run = _runner(self.backend_kind, self.outer, pool)
        on, runs = self.fusing
        lower = (lambda p: run.lower(p, runs)) if on else lambda p: p  # (lower_program):
        fwd, plain, bwd, only = map(lower, self.programs)  # the bind path keeps the traced
        self.fused = any(a is not b for a, b in zip((fwd, plain, bwd, only), self.programs))
        (self.forward, f_pool), (self.plain, p_pool) = run(fwd), run(plain)
        (self.backward, b_pool), (self.residual_only, _) = run(bwd), run(only)
        made = {v.n for v in fwd.ins}
        self.forward_peak = max(  # temporaries, as a tape's; residuals are the tape's
            max(0, peak_bytes(fwd, pooled=f_pool) - sum(
                v.nbytes for v in self.residuals if v.n not in made | f_pool)),
            peak_bytes(plain, pooled=p_pool))
        self.backward_peak = peak_bytes(bwd, pooled=b_pool)

    def backward_for(self, cts):
        """The backward program for these cotangents: through `bind` when one is a value of
        an outer transform (forward-over-reverse: an hvp through the loop)."""
        if not any(isinstance(c, Tracer) for c in cts):
            return self.backward
        if self._backward_bind is None:
            self._backward_bind = compile_program(self.programs[2], through_bind=True)
        return self._backward_bind


def _runner(kind, outer: bool, pool: dict | None):
    """How the programs run: `program -> (function, numbers of the variables kept in
    buffers)`, with preallocated outputs where the backend of array type `kind` offers
    them (`Backend.program_buffers`; not with values of `outer` transforms, nor no pool)."""
    from diffkit.core.dispatch import registry

    backend = registry().backend_of(kind) if kind is not None else None
    offer = getattr(backend, "program_buffers", None)
    if pool is None or offer is None or outer:
        def run(program):
            return compile_program(program), frozenset()
    else:
        def run(program):
            buffers = offer(program, pool)
            pooled = frozenset(program.body[k].outs[0].n for k in buffers)
            return compile_program(program, buffers=buffers), pooled

    lowering = None if outer else getattr(backend, "lower_program", None)
    run.lower = lowering or (lambda program, runs: program)  # (`run.lower`: values of outer
    return run  # transforms go through bind, which a lowered program cannot)


def _step_vjp(entry: _Entry, residuals):
    """The VJP closure of one replayed (or traced) taped step."""
    slots, zeros, flows = entry.ct_slots, entry.zeros, entry.flows

    def step_vjp(cts):
        given = []
        for k in slots:
            c = cts[k]
            given.append(zeros[k]() if c is None else c)
        out = iter(entry.backward_for(given)(*residuals, *given))
        return [next(out) if f else None for f in flows]

    step_vjp.tape = _ResidualTape(entry.kept_nbytes)
    return step_vjp


class _MeasuredTrace(ProgramTrace):
    """A program trace that also measures the peak bytes of its values alive at once (weak
    references, as `core.reverse.LiveBytesTrace`): tracing runs the step's Python, whose
    temporaries the plan must fit."""

    __slots__ = ("live", "peak", "limit", "__weakref__")

    def __init__(self, transform, limit: int | None = None, stand_in=None):
        super().__init__(transform, stand_in)
        self.live = self.peak = 0
        self.limit = limit

    def new(self, value, unknown=False):
        t = super().new(value, unknown)
        n = (0 if unknown else t.var.nbytes) + 112  # a stand-in takes no memory
        if self.live < 0:  # (an input, not counted, was freed: it never is while tracing)
            self.live = 0
        self.live += n
        self._grew(self.live)
        base = value
        while isinstance(base, Tracer):
            base = base.primal
        with contextlib.suppress(TypeError):  # a Python number has none: counted as kept
            weakref.finalize(base, _freed, weakref.ref(self), n)  # (a bound method would
        return t  # keep the trace, its values and programs, as long as the caller's state)

    def transient(self, nbytes: int) -> None:
        self._grew(self.live + nbytes)

    def _grew(self, live: int) -> None:
        """Note `live` bytes alive; past the limit (with the backward's objects), stop."""
        self.peak = max(self.peak, live)
        if self.limit is not None and \
                live + _tracing_bytes(2 * len(self.body)) > self.limit:
            raise _TraceTooLarge(
                f"tracing it holds more than the {human_bytes(self.limit)} that "
                f"budget.memory leaves for one step's values")


class _TraceTooLarge(NotProgrammable):
    """Tracing a step's values outgrew what the budget leaves (`_MeasuredTrace.limit`)."""


def _freed(trace_ref, n: int) -> None:
    trace = trace_ref()
    if trace is not None:
        trace.live -= n


class _ResidualTape:
    """What a compiled taped step holds: its residuals (bytes as counted at tracing)."""

    __slots__ = ("_nbytes",)

    def __init__(self, nbytes: int):
        self._nbytes = nbytes

    def nbytes(self) -> int:
        return self._nbytes


_NUMBERS = (int, float, complex, bool)


def _box(trace, x, k, ns, na, diff):
    """Leaf k of the step's inputs as the trace sees it: a program input, or (an argument
    that is a Python number and not differentiated: the same at every step) a constant."""
    if type(x) in _NUMBERS:
        if k < ns:
            raise NotProgrammable(
                f"state leaf {k} is a Python {type(x).__name__}, which a program would turn "
                f"into an array; make it one (dnp.asarray(x)) to compile the step")
        if k < na and k not in diff:
            return x
        return trace.new(x)
    if k < ns and trace.stand_in is not None:  # shapes only: the state's values are unread
        return trace.new(trace.stand_in(x), True)
    if isinstance(x, Tracer) or hasattr(x, "dtype"):
        return trace.new(x)
    raise NotProgrammable(f"input leaf {k} is a {type(x).__name__}, not an array")


def _ct_inputs(trace, outs):
    """A cotangent input (example: ones) for each output that depends on a differentiated
    input and can carry one: ({output variable: its cotangent}, {output position: input})."""
    cts, slots = {}, {}
    for k, o in enumerate(outs):
        if type(o) is ProgramTracer and o._trace is trace and o.var.n in trace.diff \
                and _inexact(o):
            ct = slots[k] = trace.new(_ones_like(o.primal)) if trace.stand_in is None else \
                trace.new(trace.stand_in(o.primal), True)  # (shapes only: any value)
            prev = cts.get(o.var.n)
            cts[o.var.n] = ct if prev is None else prev + ct
    return cts, slots


def _primal(x):
    return x.primal if type(x) is ProgramTracer else x


def _inexact(x) -> bool:
    from diffkit.core.dispatch import is_inexact

    return is_inexact(x)


def _ones_like(x):
    from diffkit import numpy as dnp

    return dnp.ones_like(x)


def _zero_maker(x):
    """A function making zeros like `x` without keeping `x` (one element of it is kept)."""
    from diffkit import numpy as dnp

    shape = tuple(x.shape)
    tiny = dnp.ravel(x)[:1] + 0  # a copy: a view would keep x alive
    return lambda: dnp.zeros_like(tiny, shape=shape)


def _data_nbytes(values) -> int:
    return sum(int(getattr(v.primal if isinstance(v, Tracer) else v, "nbytes", 8))
               for v in values)


def _signature(leaves) -> tuple:
    """Types, shapes and dtypes of the inputs: a program applies only to the same."""
    try:  # arrays (the common case, once per replayed step)
        return tuple([(type(x), x.shape, x.dtype) for x in leaves])
    except AttributeError:  # a Python number among them
        return tuple((type(x), getattr(x, "shape", None), getattr(x, "dtype", None))
                     for x in leaves)


def _same_body(a: list, b: list) -> bool:
    """Whether two traces of one step recorded the same equations (primitives, parameters,
    constants) and guards."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if type(x) is not type(y):
            return False
        if hasattr(x, "prim"):
            if x.prim is not y.prim or not _same(x.params, y.params) or \
                    not _same([_lit(v) for v in x.ins], [_lit(v) for v in y.ins]):
                return False
        elif x.expected != y.expected or x.var.n != y.var.n:
            return False
    return True


def _lit(v):
    return ("var", v.n) if hasattr(v, "n") else ("const", v.value)


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, Tracer):
        return a is b
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype and bool((a == b).all())
    try:
        return bool(a == b)
    except Exception:
        return False
