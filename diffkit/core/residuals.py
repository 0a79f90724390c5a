"""What a tape node keeps: only the values its VJP rules declare they read.

A VJP rule `rule(g, ans, *args, **params)` declares what it reads by its parameter names:
a parameter whose name starts with `_` (`_ans`, `_x`, `*_unread`) is not read, every other
one is. Rules built by `core.rules.elementwise` declare through their derivative
`d(ans, *args)` (`reads_from`). The names are read once per primitive and pattern of traced
arguments (`inspect.signature`, cached on the primitive). A rule whose signature cannot be
read or does not cover every argument position, and a primitive with one all-argument VJP
of that kind, keep what `saves_args`/`saves_ans` allow: never less than a rule reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

__all__ = ["keep_plan", "pass_cotangent", "passes_through", "rule_reads"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def pass_cotangent(g, *_unread, **_params):
    """The VJP rule that returns its cotangent itself (add, positive, real, copy): it reads
    nothing and allocates nothing, which the memory model counts (`passes_through`)."""
    return g


def passes_through(rule: Callable) -> bool:
    """Whether a VJP rule is `pass_cotangent` (declared, not guessed from its code)."""
    return rule is pass_cotangent


def rule_reads(rule: Callable, nargs: int) -> tuple[bool, tuple[bool, ...]] | None:
    """(reads the output, reads argument i for each i) as the rule's parameter names declare
    them, or None when its signature cannot say (then everything is kept)."""
    d = getattr(rule, "reads_from", None)
    fn, skip = (d, 0) if d is not None else (rule, 1)
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return None
    reads = []
    for p in params:
        if len(reads) == 1 + nargs:
            break
        if p.kind in _POSITIONAL:
            reads.append(not p.name.startswith("_"))
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            reads.extend([not p.name.startswith("_")] * (1 + nargs - len(reads)))
        else:
            break
    if len(reads) != 1 + nargs:
        return None
    return reads[0], tuple(reads[1:])


def keep_plan(prim, mask: int, nargs: int):
    """(args to keep: True | False | tuple of bools, keep the output) for a call whose
    traced arguments are the set bits of `mask`; cached on the primitive."""
    plan = _plan(prim, mask, nargs)
    prim.keep[mask] = plan
    return plan


def _plan(prim, mask: int, nargs: int):
    if prim.vjp_args is not None:
        if len(prim.vjp_args) != nargs:
            return prim.saves_args, prim.saves_ans or prim.multiple_results
        rules = [r for i, r in enumerate(prim.vjp_args) if r is not None and mask >> i & 1]
    else:
        rules = [prim.vjp_all]
    reads_ans, reads = False, [False] * nargs
    for rule in rules:
        r = rule_reads(rule, nargs)
        if r is None:
            return prim.saves_args, prim.saves_ans or prim.multiple_results
        reads_ans = reads_ans or r[0]
        reads = [a or b for a, b in zip(reads, r[1], strict=True)]
    if not prim.saves_args or not any(reads):
        keep_args = False
    else:
        keep_args = True if all(reads) else tuple(reads)
    # a multiple-result node keeps its outputs: the backward walk reads their count and shapes
    return keep_args, prim.multiple_results or prim.saves_ans and reads_ans
