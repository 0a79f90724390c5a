"""Passes over a traced program: dead-code elimination, the forward/backward split (which
decides the residuals), and liveness (what each equation frees; the peak bytes held)."""

from __future__ import annotations

from diffkit.core.program import Eqn, Guard, Lit, Program, Var

__all__ = ["ref", "prune", "split", "rematerialize", "last_uses", "peak_bytes", "cse",
           "order_for_memory", "OUTPUTS_ONLY"]


def ref(x):
    """The program reference of a traced output: its variable, or a constant."""
    var = getattr(x, "var", None)
    return var if type(var) is Var else Lit(x)


def _reads(item):
    return (item.var,) if type(item) is Guard else item.ins


def cse(body, outs, boundary: int):
    """Common subexpressions merged: an equation applying the same primitive, with the same
    parameters, to the same inputs as an earlier one reuses its outputs (VJP rules often
    compute one term twice). Items before and after `boundary` (the forward and the
    backward part) are merged only among themselves, so that merging never turns a
    recomputation into a kept residual. Returns (new body, `outs` renamed, new boundary,
    {removed variable number: the variable that replaces it})."""
    alias: dict[int, Var] = {}
    seen: dict = {}
    new = []
    rename = lambda v: alias.get(v.n, v) if type(v) is Var else v  # noqa: E731
    cut = None
    for k, item in enumerate(body):
        if k == boundary:
            seen, cut = {}, len(new)
        if type(item) is Guard:
            new.append(Guard(rename(item.var), item.kind, item.expected, item.what))
            continue
        ins = [rename(v) for v in item.ins]
        key = _key(item.prim, ins, item.params)
        first = seen.get(key) if key is not None else None
        if first is not None:
            alias.update((o.n, f) for o, f in zip(item.outs, first.outs, strict=True))
            continue
        eqn = Eqn(item.prim, ins, item.params, item.outs, item.kernel)
        if key is not None:
            seen[key] = eqn
        new.append(eqn)
    return new, [rename(v) for v in outs], len(new) if cut is None else cut, alias


def _key(prim, ins, params):
    """A hashable identity of an application, or None when a parameter or constant is not
    simple enough to compare cheaply (arrays)."""
    parts = []
    for v in ins:
        if type(v) is Var:
            parts.append(v.n)
        elif type(v.value) in (int, float, complex, bool):
            parts.append((type(v.value), v.value))
        else:
            parts.append(("id", id(v.value)))
    try:
        frozen = tuple(sorted(params.items()))
        hash(frozen)
    except TypeError:
        return None
    return prim, tuple(parts), frozen


def prune(body, outs, guards: bool = True, skip: frozenset = frozenset()) -> list:
    """The items of `body` that `outs` (and, with `guards`, every guard) need, in order;
    items whose index is in `skip` are left out (their outputs become inputs)."""
    need = {v.n for v in outs if type(v) is Var}
    keep = []
    for k in range(len(body) - 1, -1, -1):
        item = body[k]
        if k in skip:
            continue
        if type(item) is Guard:
            if not guards:
                continue
        elif not any(o.n in need for o in item.outs):
            continue
        keep.append(k)
        need.update(v.n for v in _reads(item) if type(v) is Var)
    return sorted(keep)


def split(body, n_fwd: int, ins, fwd_outs, bwd_ins, bwd_outs):
    """Cut a traced function with its recorded backward pass into (forward program that also
    returns the residuals, forward program without them, backward program, residuals).
    The forward part keeps every forward guard; the backward part recomputes whatever the
    forward part does not need, from the residuals: the variables it reads that the
    forward part (or the inputs) defined."""
    fwd_idx = prune(body[:n_fwd], fwd_outs)
    fwd_set = frozenset(fwd_idx)
    bwd_idx = prune(body, bwd_outs, guards=False, skip=fwd_set)
    defined_bwd = {v.n for v in bwd_ins}
    for k in bwd_idx:
        defined_bwd.update(o.n for o in body[k].outs)
    residuals, seen = [], set()
    for v in [v for k in bwd_idx for v in body[k].ins] + list(bwd_outs):
        if type(v) is Var and v.n not in defined_bwd and v.n not in seen:
            seen.add(v.n)
            residuals.append(v)
    fwd_body = [body[k] for k in fwd_idx]
    forward = Program(ins, list(fwd_outs) + residuals, fwd_body)
    plain = Program(ins, fwd_outs, [body[k] for k in prune(body[:n_fwd], fwd_outs)])
    backward = Program(residuals + list(bwd_ins), bwd_outs, [body[k] for k in bwd_idx])
    return forward, plain, backward, residuals


_REMAT_MAX = 32  # equations a backward recomputes at most (beyond: kept as residuals)


def rematerialize(forward: Program, backward: Program, residuals: list):
    """`split`'s programs with the backward recomputing every residual that elementwise-
    shaped equations (outputs shaped as the residual) make from the forward's inputs, at
    most `_REMAT_MAX` equations: (forward, backward, residuals, the recomputed equations),
    or None when there is none. The tape then keeps the inputs instead (a stencil step's
    derivatives recomputed inside one fused backward loop, where they cost no memory)."""
    body = forward.body
    made = {o.n: k for k, item in enumerate(body) if type(item) is Eqn for o in item.outs}
    moved: set[int] = set()
    kept = []
    for r in residuals:
        cone = _cone(body, made, r)
        if cone is None or len(moved | cone) > _REMAT_MAX:
            kept.append(r)
        else:
            moved |= cone
    if not moved:
        return None
    again = [body[k] for k in sorted(moved)]
    defined = {o.n for e in again for o in e.outs}
    new, seen = [], set()
    for v in kept + [v for e in again for v in e.ins]:
        if type(v) is Var and v.n not in defined and v.n not in seen:
            seen.add(v.n)
            new.append(v)
    outs = forward.outs[:len(forward.outs) - len(residuals)]
    fwd = Program(forward.ins, outs + new, [body[k] for k in prune(body, outs + new)])
    bwd = Program(new + backward.ins[len(residuals):], backward.outs, again + backward.body)
    return fwd, bwd, new, again


def _cone(body, made, r):
    """Body indices of the equations computing `r` from the inputs, if all are shaped as
    `r` (elementwise, a roll) and single-output; else None."""
    cone, todo = set(), [r]
    while todo:
        k = made.get(todo.pop().n)
        if k is None or k in cone:
            continue
        e = body[k]
        if len(e.outs) != 1 or e.outs[0].shape != r.shape or e.outs[0].dtype != r.dtype:
            return None
        cone.add(k)
        todo += [v for v in e.ins if type(v) is Var]
    return cone or None


def last_uses(program: Program) -> list[list[Var]]:
    """For each body item, the variables no later item or output reads: freed after it."""
    alive = {v.n for v in program.outs if type(v) is Var}
    frees = []
    for item in reversed(program.body):
        dead = []
        for v in _reads(item):
            if type(v) is Var and v.n not in alive:
                alive.add(v.n)
                dead.append(v)
        frees.append(dead)
    frees.reverse()
    return frees


OUTPUTS_ONLY: set[str] = set()  # primitives whose kernels allocate only their outputs (a
# backend's fused loops register theirs): `peak_bytes` adds no temporaries for them


def peak_bytes(program: Program, held_inputs: bool = False,
               pooled: frozenset = frozenset()) -> int:
    """Most bytes of variables alive at once while the program runs with every variable
    freed at its last use (the inputs count only with `held_inputs`: their owner keeps
    them anyway), plus the largest output being made (a kernel's own temporaries).
    Variables numbered in `pooled` live in preallocated buffers, counted by their owner."""
    frees = last_uses(program)
    live = sum(v.nbytes for v in program.ins) if held_inputs else 0
    skip = pooled if held_inputs else pooled | {v.n for v in program.ins}
    peak, largest = live, 0
    for item, dead in zip(program.body, frees, strict=True):
        if type(item) is Eqn:
            made = sum(o.nbytes for o in item.outs if o.n not in pooled)
            if item.prim.name not in OUTPUTS_ONLY:
                largest = max(largest, made)
            live += made
            peak = max(peak, live)
        live -= sum(v.nbytes for v in dead if v.n not in skip)
    return peak + largest


_ORDER_MAX = 4000  # longer programs keep the traced order (the greedy pass is quadratic)


def order_for_memory(program: Program) -> Program:
    """The same program with its equations reordered to hold fewer bytes at once: between
    two guards (which stay where the trace put them, so a check still precedes what it
    protects), the next equation is the ready one that frees the most bytes net of what it
    makes, ties in traced order. Every equation computes exactly what it did, so results are
    bitwise the same; a step's rolls and sums then die early instead of all living to the
    end (about a third less peak on a 2-D stencil step)."""
    body = program.body
    if len(body) > _ORDER_MAX or len(body) < 3:
        return program
    readers: dict[int, int] = {}
    for item in body:
        for v in _reads(item):
            if type(v) is Var:
                readers[v.n] = readers.get(v.n, 0) + 1
    pinned = {v.n for v in program.outs if type(v) is Var} | {v.n for v in program.ins}
    made_by = {o.n: k for k, item in enumerate(body) if type(item) is Eqn for o in item.outs}
    out, start = [], 0
    for end in [k for k, item in enumerate(body) if type(item) is Guard] + [len(body)]:
        out += _greedy(body, range(start, end), readers, pinned, made_by)
        if end < len(body):
            out.append(body[end])
            for v in _reads(body[end]):
                if type(v) is Var:
                    readers[v.n] -= 1
        start = end + 1
    return Program(program.ins, program.outs, out)


def _greedy(body, segment, readers, pinned, made_by):
    """The equations of `segment` in a dependency-respecting order, least bytes held first
    (`readers` counts each variable's readers still to run; updated as they are placed)."""
    todo = set(segment)
    waits = {k: {made_by[v.n] for v in body[k].ins if type(v) is Var
                 and made_by.get(v.n) in todo} for k in todo}
    order = []
    while todo:
        best, score = None, None
        for k in sorted(k for k in todo if not waits[k]):
            item = body[k]
            freed = sum(v.nbytes for v in {v.n: v for v in item.ins if type(v) is Var
                                           and v.n not in pinned}.values()
                        if readers[v.n] == sum(1 for w in item.ins
                                               if type(w) is Var and w.n == v.n))
            gain = freed - sum(o.nbytes for o in item.outs)
            if score is None or gain > score:
                best, score = k, gain
        todo.discard(best)
        order.append(body[best])
        for v in body[best].ins:
            if type(v) is Var:
                readers[v.n] -= 1
        for k in todo:
            waits[k].discard(best)
    return order
