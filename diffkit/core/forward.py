"""Forward mode: a JVP trace carries (primal, tangent) pairs through every primitive.

Tangents are computed with diffkit operations, so they may themselves be traced by an
outer transform: this is what makes forward-over-reverse (hvp) and jvp-of-jvp work.
"""

from __future__ import annotations

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
        return JVPTracer(self, ans, fit_to(t, ans))


def _add_tangents(a, b):
    if isinstance(a, tuple):
        return tuple(x if y is None else y if x is None else x + y for x, y in zip(a, b))
    return a + b


def fit_to(t, like):
    """Make a rule's tangent/cotangent match its primal's shape and dtype (the one place
    broadcasting is undone or applied, and real/complex mismatches are resolved)."""
    try:
        if t.shape == like.shape and t.dtype == like.dtype:
            return t
    except AttributeError:  # a Python scalar on either side
        if type(t) in (float, complex, int) and getattr(like, "dtype", None) is not None:
            return _number_like(t, like)
    t_shape = _shape(t)
    shape = _shape(like)
    if t_shape != shape:
        # a broadcast input's tangent contribution is stretched; a cotangent of the
        # broadcast result is summed back
        stretch = _broadcasts_to(t_shape, shape)
        t = dnp.broadcast_to(t, shape) if stretch else unbroadcast(t, shape)
    dt = getattr(like, "dtype", None)
    tdt = getattr(t, "dtype", None)
    if dt is not None and tdt is not None and tdt != dt:
        if dnp.iscomplexobj(t) and not dnp.iscomplexobj(like):
            t = dnp.real(t)
        t = dnp.astype(t, dt)
    return t


def _number_like(t, like):
    """A Python number fitted to `like`: the real part for a real `like`, and an array of its
    dtype and backend when `like` is an array (a shape/dtype record keeps the number)."""
    if not dnp.iscomplexobj(like):
        t = t.real
    if isinstance(like, Tracer) or registry().backend_of(type(like)) is not None:
        return dnp.full_like(like, t)
    return t


def _broadcasts_to(small: tuple, big: tuple) -> bool:
    if len(small) > len(big):
        return False
    return all(a == b or a == 1 for a, b in zip(small, big[len(big) - len(small):]))


def unbroadcast(g, shape):
    """Sum `g` over the axes broadcasting added or stretched, to get back to `shape`."""
    g_shape = _shape(g)
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g_shape[lead + i] != 1
    )
    if axes:  # the primitives themselves: the axes are already normalized
        g = _reductions.sum.bind(g, axis=axes, keepdims=False)
    return _shapes.reshape.bind(g, shape=tuple(shape)) if _shape(g) != tuple(shape) else g


def _shape(x):
    s = getattr(x, "shape", ())
    return s if type(s) is tuple else tuple(s)


from diffkit import numpy as dnp  # noqa: E402  (cycle: diffkit.numpy builds on the core)
from diffkit.plugins import registry  # noqa: E402
from diffkit.primitives import reductions as _reductions  # noqa: E402
from diffkit.primitives import shape as _shapes  # noqa: E402
