"""The VJP of a traced program, as more equations of the same trace.

After a function has been traced (`core.program`), its equations are walked backwards and
each primitive's own VJP rules are called on the trace's values and on cotangent
*variables*: the rules are written with primitives, so what they compute is recorded as
equations too. The result is one program from (inputs, output cotangents) to (outputs,
input cotangents); `program_passes.split` cuts it into the forward program, the residuals
and the backward program.
"""

from __future__ import annotations

from diffkit.core import ops
from diffkit.core.program import Eqn, Guard, NotProgrammable, ProgramTrace, ProgramTracer, Var
from diffkit.core.zeros import Zero

__all__ = ["transpose"]


def transpose(trace: ProgramTrace, n_fwd: int, diff_in: list[ProgramTracer],
              cts: dict[int, ProgramTracer]) -> list:
    """Record the backward pass of the first `n_fwd` body items of `trace`, which tracked
    dependence on `diff_in` (`ProgramTrace.differentiate`): `cts` maps output variable
    numbers to their cotangent tracers. Returns the cotangent of each `diff_in` (a tracer,
    a constant, or None where nothing flows)."""
    body, kept, active = trace.body, trace.keep, trace.diff
    trace.diff = None  # what the rules compute now needs no keeping
    acc: dict[int, object] = dict(cts)
    for k in range(n_fwd - 1, -1, -1):
        e = body[k]
        if type(e) is not Eqn or e.prim.nondiff:
            continue
        prim = e.prim
        if prim.multiple_results:
            got = [acc.pop(o.n, None) for o in e.outs]
            if all(g is None for g in got):
                continue
            ans = tuple(kept.get(o.n, o) for o in e.outs)
            g = tuple(Zero(a) if c is None else c for a, c in zip(ans, got, strict=True))
        else:
            g = acc.pop(e.outs[0].n, None)
            if g is None:
                continue
            ans = kept.get(e.outs[0].n)
        args = [kept.get(v.n) if type(v) is Var else v.value for v in e.ins]
        where = [p for p, v in enumerate(e.ins) if type(v) is Var and v.n in active]
        if prim.vjp_args is not None:
            for p in where:
                rule = prim.vjp_args[p]
                if rule is not None:
                    _add(acc, e.ins[p], rule(g, ans, *args, **e.params))
        elif prim.vjp_all is not None:
            out = prim.vjp_all(g, ans, *args, **e.params)
            for p in where:
                if out[p] is not None and not isinstance(out[p], Zero):
                    _add(acc, e.ins[p], out[p])
        else:
            raise NotProgrammable(f"primitive {prim.name!r} has no VJP rule")
    for item in body[n_fwd:]:
        if type(item) is Guard:
            raise NotProgrammable(
                f"a VJP rule decides on a traced value ({item.what}): its backward pass "
                f"cannot be fixed in a program")
    return [acc.get(t.var.n) for t in diff_in]


def _add(acc, var: Var, ct) -> None:
    if ct is None or isinstance(ct, Zero):
        return
    ct = _fit(ct, var)
    prev = acc.get(var.n)
    acc[var.n] = ct if prev is None else prev + ct


class _Like:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


def _fit(ct, var: Var):
    try:
        if tuple(ct.shape) == var.shape and ct.dtype == var.dtype:
            return ct
    except AttributeError:
        pass
    return ops.fit_to(ct, _Like(var.shape, var.dtype))
