"""What a tape node keeps: only the values its VJP rules will read.

A node keeps, for the arguments that are traced in this call, the inputs (and output)
their per-argument VJP rules read. Which ones a rule reads is found once, from the rule's
bytecode (`x * 3.0` keeps 3.0, not x; `3.0 * x + 0` keeps nothing the caller made), and the
answer per pattern of traced arguments is cached on the primitive. A rule that cannot be
inspected, or a primitive with one all-argument VJP, keeps what `saves_args`/`saves_ans`
say. This is what bounds a store-all tape to the state plus what its rules truly need.
"""

from __future__ import annotations

import dis
import functools
import inspect
from collections.abc import Callable

__all__ = ["keep_plan", "passes_through", "rule_reads"]

_VARARGS = inspect.CO_VARARGS


def rule_reads(rule: Callable, nargs: int) -> tuple[bool, tuple[bool, ...]] | None:
    """(reads the output, reads argument i for each i) for a VJP rule, or None if unknown.

    Rules built by `elementwise` name their derivative expression in `reads_from`
    (signature `(ans, *args)`); other rules have the signature `(g, ans, *args)`.
    """
    d = getattr(rule, "reads_from", None)
    fn, skip = (d, 0) if d is not None else (rule, 1)
    code = getattr(fn, "__code__", None)
    if code is None or code.co_flags & _VARARGS:
        return None
    names = code.co_varnames[skip:code.co_argcount]
    if len(names) != 1 + nargs:
        return None
    loaded = set(code.co_cellvars)  # captured by an inner function: assume read
    for ins in dis.get_instructions(code):
        if ins.opname.startswith("LOAD_FAST") or ins.opname in ("LOAD_DEREF", "LOAD_CLOSURE"):
            v = ins.argval
            loaded.update(v if isinstance(v, tuple) else (v,))
    used = [n in loaded for n in names]
    return used[0], tuple(used[1:])


def keep_plan(prim, mask: int, nargs: int):
    """(args to keep: True | False | tuple of bools, keep the output) for a call whose
    traced arguments are the set bits of `mask`; cached on the primitive."""
    plan = _plan(prim, mask, nargs)
    prim.keep[mask] = plan
    return plan


def _plan(prim, mask: int, nargs: int):
    conservative = (prim.saves_args, prim.saves_ans or prim.multiple_results)
    rules = prim.vjp_args
    if rules is None or prim.multiple_results or len(rules) != nargs:
        return conservative
    reads_ans, reads = False, [False] * nargs
    for i, rule in enumerate(rules):
        if rule is None or not mask >> i & 1:
            continue
        r = rule_reads(rule, nargs)
        if r is None:
            return conservative
        reads_ans = reads_ans or r[0]
        reads = [a or b for a, b in zip(reads, r[1], strict=True)]
    if not prim.saves_args or not any(reads):
        keep_args = False
    else:
        keep_args = True if all(reads) else tuple(reads)
    return keep_args, prim.saves_ans and reads_ans


@functools.lru_cache(maxsize=1024)
def passes_through(rule: Callable) -> bool:
    """Whether a VJP rule `(g, ans, *args)` returns its cotangent `g` itself (add's and
    subtract's first argument): it allocates nothing, which the memory model uses."""
    code = getattr(rule, "__code__", None)
    if code is None or code.co_argcount < 1 or getattr(rule, "reads_from", None) is not None:
        return False
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname != "RESUME"]
    g = code.co_varnames[0]
    return ops == [("LOAD_FAST", g), ("RETURN_VALUE", None)]
