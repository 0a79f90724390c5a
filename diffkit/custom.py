"""User-defined derivative rules: `custom_vjp` and `custom_jvp` (JAX's API).

A custom rule becomes one node on the reverse tape (or one step of a JVP trace); the rule
runs with diffkit operations, so it is differentiable again where the user's code is.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from diffkit import numpy as dnp
from diffkit.core import pytree
from diffkit.core.dispatch import is_inexact, registry
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.program import refuse_inside
from diffkit.core.reverse import VJPTrace, VJPTracer
from diffkit.core.tracer import Tracer
from diffkit.core.zeros import Zero, instantiate
from diffkit.errors import RuleError, TransformError
from diffkit.primitives.fit import fit_to
from diffkit.transforms import vjp

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
    """Stands in for a primitive on the tape: a node whose VJP is a closure. `hands_over`:
    the closure gets its cotangents in a one-item list it empties (`VJPTrace.backward`)."""

    __slots__ = ("name", "vjp_all", "hands_over")
    multiple_results = True
    vjp_args = None

    def __init__(self, name, vjp_all, hands_over=False):
        self.name = name
        self.vjp_all = vjp_all
        self.hands_over = hands_over


def record_node(trace, name, flat_in, out, vjp_all, lean: bool = False):
    """One tape node for a rule given as a closure; the inexact array outputs are traced
    (Python numbers and integer arrays come back as they are: nothing flows through them).
    `lean` (a checkpointed loop, which bounds its memory): the node keeps zero-memory
    stand-ins of the outputs, and `vjp_all` takes its cotangents over (`hands_over`), so
    that the reverse sweep holds neither the loop's result nor its incoming cotangent."""
    flat_out, out_tree = pytree.flatten(out)
    kept = tuple(_stand_in(o) for o in flat_out) if lean else tuple(flat_out)
    idx = trace.add_node(_TapeRule(name, vjp_all, lean), (), kept,
                         _parents(flat_in, trace), len(flat_out))
    return pytree.unflatten(out_tree, [
        VJPTracer(trace, o, idx, k) if carries_tangent(o) else o for k, o in enumerate(flat_out)
    ])


def _stand_in(x):
    """`x`'s shape, dtype and device in no memory (`Backend.stand_in`), or `x` itself."""
    backend = registry().backend_of(type(x))
    stand_in = getattr(backend, "stand_in", None)
    return x if stand_in is None else stand_in(x)


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

    def positions(self, n_dyn: int) -> list[int]:
        """The positions, among all arguments, of the `n_dyn` differentiable ones."""
        return [i for i in range(n_dyn + len(self.nums)) if i not in self.nums]

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
    differentiated instead (JAX refuses; diffkit stays useful). What the rules return is
    checked: a pair from fwd, and per argument leaf a cotangent of its exact shape, real
    for a real argument (precision is cast); else a RuleError names the leaf.
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
        refuse_inside(top, f"custom_vjp {self.__name__!r}")
        _check_ready("custom_vjp", self.__name__, self.fwd, "defvjp(fwd, bwd)", top)
        primals = unbox(flat, top)
        p_args = self._static.merge(pytree.unflatten(in_tree, primals), static)
        out, res = _pair(self.fwd(*p_args), f"the VJP forward rule (fwd) of {self.__name__!r}",
                         "(out, residuals)")
        _, out_tree = pytree.flatten(out)
        rule = f"the VJP rule of {self.__name__!r}"
        bwd, where = self.bwd, self._static.positions(len(dyn))
        p_dyn = pytree.unflatten(in_tree, primals)

        def vjp_all(g, ans):
            cts = bwd(*static, res, pytree.unflatten(out_tree, [instantiate(c) for c in g]))
            return _fit_cts(rule, self.__name__, cts, p_dyn, where)

        return record_node(top, self.__name__, flat, out, vjp_all)


def _pair(res, rule: str, names: str) -> tuple:
    """What a rule returned, which must be a pair: a bare array must not be unpacked along
    its first axis."""
    if not isinstance(res, tuple | list) or len(res) != 2:
        raise RuleError(f"{rule} returned {_describe(res)}; it must return a pair {names}")
    return res[0], res[1]


def _describe(x) -> str:
    if isinstance(x, tuple | list):
        return f"a {type(x).__name__} of length {len(x)}"
    if hasattr(x, "shape"):
        return f"an array of shape {_shape(x)}"
    return f"a {type(x).__name__}"


def _fit_cts(rule: str, name: str, cts, args: tuple, where: list[int]) -> list:
    """The flat cotangents of a custom bwd, one per input leaf (None where none flows),
    checked against the inputs `args` (one per positional argument, at `where`)."""
    if not isinstance(cts, tuple | list) or len(cts) != len(args):
        got = f"{len(cts)} cotangent(s)" if isinstance(cts, tuple | list) else _describe(cts)
        raise RuleError(
            f"{rule} returned {got}, but {name!r} takes "
            f"{len(args)} argument(s) (besides nondiff_argnums): return a tuple with one "
            f"cotangent per argument (None for an argument that gets none)"
        )
    flat = []
    for n, c, a in zip(where, cts, args, strict=True):
        if c is None:
            flat.extend([None] * len(pytree.leaves(a)))
            continue
        fitted = _fit_tree(rule, "cotangent", c, a, f"argument {n}")
        flat.extend(x for x, p in zip(fitted, _flat_with_none(a)[0], strict=True)
                    if p is not None)
    return flat


def _flat_with_none(tree):
    return pytree.flatten(tree, is_leaf=lambda x: x is None)


def _fit_tree(rule: str, kind: str, ts, ps, what: str) -> list:
    """The leaves of the (co)tangents `ts` a custom rule returned for the values `ps`,
    checked (same structure, exact shapes, real for real values) and fitted to their dtype
    and backend; None where nothing flows (a None leaf, an integer value)."""
    flat_t, tree_t = _flat_with_none(ts)
    flat_p, tree_p = _flat_with_none(ps)
    if tree_t != tree_p:
        raise RuleError(
            f"{rule} returned a {kind} of structure {tree_t!r} for {what}, whose structure "
            f"is {tree_p!r}; they must match (None stands for a zero leaf)"
        )
    return [_fit_leaf(rule, kind, t, p, what + path)
            for t, p, path in zip(flat_t, flat_p, _leaf_paths(tree_p), strict=True)]


def _fit_leaf(rule: str, kind: str, t, p, what: str):
    """One (co)tangent `t` of a custom rule for the value `p` (see `_fit_tree`)."""
    if t is None or p is None or not is_inexact(p):
        return None  # integers carry no derivative: whatever the rule said is ignored
    st, sp = _shape(t), _shape(p)
    if st != sp:
        raise RuleError(f"{rule} returned a {kind} of shape {st} for {what}, whose shape "
                        f"is {sp}; they must match")
    real_p = not dnp.iscomplexobj(p)
    if not (type(t) is int or is_inexact(t)) or (real_p and dnp.iscomplexobj(t)):
        dt = getattr(t, "dtype", type(t).__name__)
        want = "a real floating" if real_p else "a floating or complex"
        raise RuleError(
            f"{rule} returned a {kind} of dtype {dt} for {what}, whose dtype is "
            f"{getattr(p, 'dtype', type(p).__name__)}: it must be {want} value"
            + (" (take dnp.real of it if that is what you mean)" if real_p else "")
        )
    return fit_to(t, p)


def _leaf_paths(td, prefix: str = "") -> list[str]:
    """Where each leaf of the structure `td` sits, as `[0]['w'].b` (for error messages)."""
    if td.kind is None:
        return [prefix]
    if td.kind is dict:
        keys = [f"[{k!r}]" for k in td.aux]
    elif hasattr(td.kind, "_fields"):
        keys = [f".{f}" for f in td.kind._fields]
    elif dataclasses.is_dataclass(td.kind):
        keys = [f".{f}" for f in td.aux]
    else:
        keys = [f"[{i}]" for i in range(len(td.children))]
    return [p for k, c in zip(keys, td.children, strict=True) for p in _leaf_paths(c, prefix + k)]


def _shape(x) -> tuple:
    return tuple(getattr(x, "shape", ()))


class custom_jvp:
    """A function with a hand-written forward rule, used by every transform.

    `jvp_rule(primals, tangents) -> (out, tangent_out)`. Reverse mode differentiates the
    rule's (linear) tangent map, so one rule serves jvp, grad, and their compositions.
    With `nondiff_argnums`, the rule is `jvp_rule(*static_args, primals, tangents)` over
    the other arguments, as in JAX. The rule must return a pair whose tangent has the
    output's structure and, per leaf, its exact shape (None for a zero; real for a real
    output; precision is cast); else a RuleError names the output leaf.

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
        refuse_inside(top, f"custom_jvp {self.__name__!r}")
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
        out, t_out = _pair(rule(p_args, t_args), self._rule_name, "(primal_out, tangent_out)")
        flat_t = _fit_tree(self._rule_name, "tangent", t_out, out, "its output")
        flat_o, out_tree = _flat_with_none(out)
        boxed = [o if t is None else JVPTracer(trace, o, t)
                 for o, t in zip(flat_o, flat_t, strict=True)]
        return pytree.unflatten(out_tree, boxed)

    @property
    def _rule_name(self) -> str:
        return f"the JVP rule of {self.__name__!r}"

    def _reverse(self, trace, rule, flat, in_tree, p_args, primals, out):
        positions = [i for i, x in enumerate(flat) if type(x) is VJPTracer and x._trace is trace]

        name = self._rule_name

        def tangent_map(*ts):
            full = [dnp.zeros_like(p) for p in primals]
            for i, t in zip(positions, ts, strict=True):
                full[i] = t
            p_out, t_out = _pair(rule(p_args, pytree.unflatten(in_tree, full)), name,
                                 "(primal_out, tangent_out)")
            _same_structure(name, p_out, out)
            flat_t = _fit_tree(name, "tangent", t_out, out, "its output")
            flat_o, tree_o = _flat_with_none(out)
            return pytree.unflatten(tree_o, [
                o if o is None else dnp.zeros_like(o) if t is None else t
                for o, t in zip(flat_o, flat_t, strict=True)
            ])

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


def _same_structure(rule: str, p_out, out) -> None:
    """The rule's primal output has the structure and shapes of the function's output."""
    flat_r, tree_r = pytree.flatten(p_out)
    flat_f, tree_f = pytree.flatten(out)
    shapes_r, shapes_f = [_shape(x) for x in flat_r], [_shape(x) for x in flat_f]
    if tree_r != tree_f or shapes_r != shapes_f:
        raise RuleError(
            f"{rule} returned a primal output of structure {tree_r!r} and shapes {shapes_r}, "
            f"but the function returns structure {tree_f!r} and shapes {shapes_f}; the rule's "
            f"primal output must be the function's output"
        )

