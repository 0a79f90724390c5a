"""Passes over a traced program: dead-code elimination, the forward/backward split (which
decides the residuals), and liveness (what each equation frees; the peak bytes held)."""

from __future__ import annotations

from diffkit.core.program import Eqn, Guard, Lit, Program, Var

__all__ = ["ref", "prune", "split", "last_uses", "peak_bytes", "cse"]


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


def peak_bytes(program: Program, held_inputs: bool = False) -> int:
    """Most bytes of variables alive at once while the program runs with every variable
    freed at its last use (the inputs count only with `held_inputs`: their owner keeps
    them anyway), plus the largest output being made (a kernel's own temporaries)."""
    frees = last_uses(program)
    live = sum(v.nbytes for v in program.ins) if held_inputs else 0
    inputs = {v.n for v in program.ins}
    peak, largest = live, 0
    for item, dead in zip(program.body, frees, strict=True):
        if type(item) is Eqn:
            made = sum(o.nbytes for o in item.outs)
            largest = max(largest, made)
            live += made
            peak = max(peak, live)
        live -= sum(v.nbytes for v in dead if held_inputs or v.n not in inputs)
    return peak + largest
