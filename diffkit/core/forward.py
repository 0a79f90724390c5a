"""Forward mode: a JVP trace carries (primal, tangent) pairs through every primitive.

Tangents are computed with diffkit operations, so they may themselves be traced by an
outer transform: this is what makes forward-over-reverse (hvp) and jvp-of-jvp work.
"""

from __future__ import annotations

from diffkit.core import ops
from diffkit.core.tracer import Trace, Tracer
from diffkit.core.zeros import Zero

__all__ = ["JVPTrace", "JVPTracer"]


class JVPTracer(Tracer):
    """A value of a JVP trace: its primal and its (never symbolic-zero) tangent."""

    __slots__ = ("_trace", "primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    def __repr__(self):
        return f"JVPTracer(primal={self.primal!r}, tangent={self.tangent!r})"


class JVPTrace(Trace):
    """Processes primitives by running the primal and pushing tangents through JVP rules."""

    __slots__ = ()

    def __init__(self):
        super().__init__("jvp")

    def box(self, primal, tangent) -> JVPTracer:
        return JVPTracer(self, primal, tangent)

    def process(self, prim, args, params):
        primals = list(args)
        tangents = [None] * len(args)
        lower = False  # tracers of outer transforms remain among the primals
        for i, a in enumerate(args):
            if type(a) is JVPTracer and a._trace is self:
                p = primals[i] = a.primal
                tangents[i] = a.tangent
                lower = lower or isinstance(p, Tracer)
            elif isinstance(a, Tracer):
                lower = True
        ans = prim.bind(*primals, **params) if lower else prim.impl(primals, params)
        if prim.nondiff:
            return ans
        if prim.jvp_args is not None:
            out_t = None
            rules = prim.jvp_args
            for i, t in enumerate(tangents):
                if t is not None and rules[i] is not None:
                    c = rules[i](t, ans, *primals, **params)
                    out_t = c if out_t is None else _add_tangents(out_t, c)
        else:
            ts = tuple(Zero(p) if t is None else t for p, t in zip(primals, tangents))
            out_t = prim.jvp_all(ts, ans, *primals, **params)
        if prim.multiple_results:
            if out_t is None:
                return ans
            return tuple(self._wrap(a, t) for a, t in zip(ans, out_t))
        return self._wrap(ans, out_t)

    def _wrap(self, ans, t):
        if t is None or isinstance(t, Zero):
            return ans
        return JVPTracer(self, ans, ops.fit_to(t, ans))


def _add_tangents(a, b):
    if isinstance(a, tuple):
        return tuple(x if y is None else y if x is None else x + y for x, y in zip(a, b))
    return a + b

