"""User-defined derivative rules: `custom_vjp` and `custom_jvp` (JAX's API).

A custom rule becomes one node on the reverse tape (or one step of a JVP trace); the rule
runs with diffkit operations, so it is differentiable again where the user's code is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from diffkit.core import pytree
from diffkit.core.forward import JVPTrace, JVPTracer, fit_to
from diffkit.core.reverse import VJPTrace, VJPTracer
from diffkit.core.tracer import Tracer
from diffkit.core.transforms import is_inexact
from diffkit.core.zeros import Zero, instantiate
from diffkit.errors import RuleError, TransformError

__all__ = ["custom_vjp", "custom_jvp"]


def top_trace(flat):
    top = None
    for x in flat:
        if isinstance(x, Tracer) and (top is None or x._trace.level > top.level):
            top = x._trace
    return top


def unbox(flat, trace):
    return [x.primal if isinstance(x, Tracer) and x._trace is trace else x for x in flat]


def _parents(flat, trace):
    return tuple(
        (i, x.idx, x.out, x.primal.shape, x.primal.dtype)
        for i, x in enumerate(flat) if type(x) is VJPTracer and x._trace is trace
    )


class _TapeRule:
    """Stands in for a primitive on the tape: a node whose VJP is a closure."""

    __slots__ = ("name", "vjp_all")
    multiple_results = True
    vjp_args = None

    def __init__(self, name, vjp_all):
        self.name = name
        self.vjp_all = vjp_all


def record_node(trace, name, flat_in, out, vjp_all):
    """One tape node for a rule given as a closure; the inexact array outputs are traced
    (Python numbers and integer arrays come back as they are: nothing flows through them)."""
    flat_out, out_tree = pytree.flatten(out)
    idx = trace.add_node(_TapeRule(name, vjp_all), (), tuple(flat_out),
                         _parents(flat_in, trace), len(flat_out))
    return pytree.unflatten(out_tree, [
        VJPTracer(trace, o, idx, k) if carries_tangent(o) else o for k, o in enumerate(flat_out)
    ])


def carries_tangent(x) -> bool:
    return type(x) not in (int, float, complex, bool) and is_inexact(x)  # np.float64 counts


def _check_ready(kind: str, name: str, rule, setter: str, trace) -> None:
    """A custom rule is set, and the trace differentiating it is still active."""
    if rule is None:
        raise TransformError(
            f"{kind} function {name!r} was differentiated before its rule was set; "
            f"call {name}.{setter} first"
        )
    if not trace.active:
        raise trace.leaked(name)


class _Static:
    """Splits a call's arguments into the static ones (`nondiff_argnums`) and the rest."""

    def __init__(self, name: str, nondiff_argnums):
        self.name = name
        self.nums = tuple(sorted(set(nondiff_argnums)))

    def split(self, args: tuple) -> tuple[tuple, tuple]:
        static = tuple(args[i] for i in self.nums)
        if top_trace(pytree.leaves(static)) is not None:
            raise TransformError(
                f"{self.name!r}: an argument listed in nondiff_argnums={self.nums} is a "
                f"traced value; nondiff arguments must not depend on what is differentiated"
            )
        return tuple(a for i, a in enumerate(args) if i not in self.nums), static

    def merge(self, dyn, static) -> tuple:
        dyn, static, out = list(dyn), list(static), []
        for i in range(len(dyn) + len(static)):
            out.append(static.pop(0) if i in self.nums else dyn.pop(0))
        return tuple(out)


class custom_vjp:
    """A function with a hand-written reverse rule.

    >>> import diffkit as dk, diffkit.numpy as dnp
    >>> @dk.custom_vjp
    ... def clip_grad(x):
    ...     return x
    >>> clip_grad.defvjp(lambda x: (x, None), lambda res, g: (dnp.clip(g, -1.0, 1.0),))
    <...>
    >>> float(dk.grad(lambda x: 5.0 * clip_grad(x))(2.0))
    1.0

    `fwd(*args) -> (out, residuals)`; `bwd(residuals, g) -> tuple` with one cotangent per
    positional argument (None for none), each shaped like its argument. With
    `nondiff_argnums` (use `functools.partial(dk.custom_vjp, nondiff_argnums=(0,))` as the
    decorator), those arguments are static: `bwd(*static_args, residuals, g)` returns
    cotangents for the others only, as in JAX. Under `jvp` the original function is
    differentiated instead (JAX refuses; diffkit stays useful).
    """

    def __init__(self, fun: Callable, nondiff_argnums: tuple = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd = self.bwd = None
        self._static = _Static(fun.__name__, nondiff_argnums)

    def defvjp(self, fwd: Callable, bwd: Callable) -> custom_vjp:
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args):
        dyn, static = self._static.split(args)
        flat, in_tree = pytree.flatten(dyn)
        top = top_trace(flat)
        if top is None or isinstance(top, JVPTrace):
            return self.fun(*args)
        _check_ready("custom_vjp", self.__name__, self.fwd, "defvjp(fwd, bwd)", top)
        primals = unbox(flat, top)
        out, res = self.fwd(*self._static.merge(pytree.unflatten(in_tree, primals), static))
        _, out_tree = pytree.flatten(out)
        name = self.__name__
        bwd = self.bwd

        def vjp_all(g, ans):
            cts = bwd(*static, res, pytree.unflatten(out_tree, [instantiate(c) for c in g]))
            return _check_cts(name, cts, dyn, in_tree, primals)

        return record_node(top, name, flat, out, vjp_all)


def _check_cts(name, cts, args, in_tree, primals):
    """Flatten a custom bwd's cotangents, checking count and shapes against the inputs."""
    if not isinstance(cts, tuple | list) or len(cts) != len(args):
        got = len(cts) if isinstance(cts, tuple | list) else type(cts).__name__
        raise RuleError(
            f"the VJP rule of {name!r} returned {got} cotangent(s), but {name!r} takes "
            f"{len(args)} argument(s): return a tuple with one cotangent per argument "
            f"(None for an argument that gets none)"
        )
    flat = []
    for n, (c, a) in enumerate(zip(cts, args, strict=True)):
        leaves_a = pytree.leaves(a)
        if c is None:
            flat.extend([None] * len(leaves_a))
            continue
        leaves_c = pytree.leaves(c)
        if len(leaves_c) != len(leaves_a):
            raise RuleError(
                f"the VJP rule of {name!r} returned a cotangent for argument {n} with "
                f"{len(leaves_c)} leaves; the argument has {len(leaves_a)}"
            )
        for lc, la in zip(leaves_c, leaves_a, strict=True):
            sc, sa = tuple(getattr(lc, "shape", ())), tuple(getattr(la, "shape", ()))
            if lc is not None and sc != sa:
                raise RuleError(
                    f"the VJP rule of {name!r} returned a cotangent of shape {sc} for "
                    f"argument {n}, whose shape is {sa}; they must match"
                )
            flat.append(lc)
    return flat


class custom_jvp:
    """A function with a hand-written forward rule, used by every transform.

    `jvp_rule(primals, tangents) -> (out, tangent_out)`. Reverse mode differentiates the
    rule's (linear) tangent map, so one rule serves jvp, grad, and their compositions.
    With `nondiff_argnums`, the rule is `jvp_rule(*static_args, primals, tangents)` over
    the other arguments, as in JAX.

    >>> import diffkit as dk, diffkit.numpy as dnp
    >>> @dk.custom_jvp
    ... def safe_log(x):
    ...     return dnp.log(x)
    >>> safe_log.defjvp(lambda p, t: (safe_log(p[0]), t[0] / p[0]))
    <...>
    >>> float(dk.grad(safe_log)(2.0))
    0.5
    """

    def __init__(self, fun: Callable, nondiff_argnums: tuple = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.jvp_rule = None
        self._static = _Static(fun.__name__, nondiff_argnums)

    def defjvp(self, jvp_rule: Callable) -> custom_jvp:
        self.jvp_rule = jvp_rule
        return self

    def __call__(self, *args):
        dyn, static = self._static.split(args)
        flat, in_tree = pytree.flatten(dyn)
        top = top_trace(flat)
        if top is None:
            return self.fun(*args)
        _check_ready("custom_jvp", self.__name__, self.jvp_rule, "defjvp(rule)", top)
        primals = unbox(flat, top)
        p_args = pytree.unflatten(in_tree, primals)
        rule = functools.partial(self.jvp_rule, *static)
        if isinstance(top, JVPTrace):
            return self._forward(top, rule, flat, in_tree, p_args, primals)
        assert isinstance(top, VJPTrace)
        out = self.fun(*self._static.merge(p_args, static))
        return self._reverse(top, rule, flat, in_tree, p_args, primals, out)

    def _forward(self, trace, rule, flat, in_tree, p_args, primals):
        tangents = [
            x.tangent if isinstance(x, JVPTracer) and x._trace is trace else Zero(p)
            for x, p in zip(flat, primals, strict=True)
        ]
        t_args = pytree.unflatten(in_tree, [instantiate(t) for t in tangents])
        out, t_out = rule(p_args, t_args)
        flat_o, out_tree = pytree.flatten(out)
        flat_t = pytree.leaves(t_out)
        boxed = [JVPTracer(trace, o, fit_to(t, o)) for o, t in zip(flat_o, flat_t, strict=True)]
        return pytree.unflatten(out_tree, boxed)

    def _reverse(self, trace, rule, flat, in_tree, p_args, primals, out):
        positions = [i for i, x in enumerate(flat) if type(x) is VJPTracer and x._trace is trace]

        def tangent_map(*ts):
            full = [dnp.zeros_like(p) for p in primals]
            for i, t in zip(positions, ts, strict=True):
                full[i] = t
            return rule(p_args, pytree.unflatten(in_tree, full))[1]

        def vjp_all(g, ans):
            zeros = [dnp.zeros_like(primals[i]) for i in positions]
            _, f_vjp = vjp(tangent_map, *zeros)
            cts = f_vjp(pytree.unflatten(out_tree, [instantiate(c) for c in g]))
            full = [None] * len(flat)
            for i, c in zip(positions, cts, strict=True):
                full[i] = c
            return full

        _, out_tree = pytree.flatten(out)
        return record_node(trace, self.__name__, flat, out, vjp_all)


from diffkit import numpy as dnp  # noqa: E402  (cycle: diffkit.numpy builds on the core)
from diffkit.core.transforms import vjp  # noqa: E402
