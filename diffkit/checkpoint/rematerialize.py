"""`remat` (JAX's `jax.checkpoint` / `jax.remat`): recompute a function's internals in the
reverse pass instead of keeping them on the tape.

Under reverse mode a remat'ed call is one tape node that keeps only the call's inputs (and
its outputs, which the rest of the computation holds anyway); its backward runs the
function again under a fresh `vjp` and pulls the cotangent through that. Under forward mode
(`jvp`) and outside any transform it is the function itself; under a forward level with a
reverse level below it (grad of jvp) the pair (f, its JVP) is remat'ed on that level. Nested
reverse levels (grad of grad, hvp) each keep one node: the forward value is computed by the
remat'ed function one level down. Recomputation must reproduce the forward pass: the
global NumPy and torch generators are replayed (`preserve_rng_state`, as
`torch.utils.checkpoint`), and the outputs' fingerprint is compared (`check_recompute`, as
the checkpointed loops do), so a non-deterministic function is an error and never a
silently wrong gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from diffkit.checkpoint.stepcheck import RngState, fingerprint
from diffkit.core import pytree
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.program import ProgramTrace
from diffkit.core.reverse import VJPTracer
from diffkit.core.tracer import Tracer
from diffkit.core.zeros import instantiate
from diffkit.custom import carries_tangent, top_trace, unbox
from diffkit.errors import TransformError
from diffkit.transforms import jvp, vjp

__all__ = ["remat"]


def remat(f: Callable | None = None, *, static_argnums: int | tuple = (),
          preserve_rng_state: bool = True, check_recompute: bool = True):
    """`f`, with its internals recomputed in the reverse pass instead of stored.

    >>> import diffkit as dk, diffkit.numpy as dnp
    >>> @dk.remat
    ... def block(x):
    ...     return dnp.sin(dnp.cos(x))
    >>> float(dk.grad(lambda x: block(x) * 2.0)(0.5))  # doctest: +ELLIPSIS
    -0.61...

    JAX's `jax.checkpoint(f, static_argnums=...)` and `torch.utils.checkpoint.checkpoint`
    both map here; `jax.checkpoint`'s `policy=` (save some internals) and `prevent_cse`
    are not offered: everything inside `f` is recomputed. `static_argnums` name positional
    arguments that are plain Python values (never traced: a traced one is an error).
    `preserve_rng_state` replays the global NumPy/torch generators on recomputation;
    `check_recompute` compares an 8-byte fingerprint of the outputs with the forward's.
    Usable as `@dk.remat` or `@dk.remat(static_argnums=(1,))`.
    """
    if f is None:
        return functools.partial(remat, static_argnums=static_argnums,
                                 preserve_rng_state=preserve_rng_state,
                                 check_recompute=check_recompute)
    if not callable(f):
        raise TransformError(f"remat: expected a function to wrap, got a {type(f).__name__}")
    return _Remat(f, static_argnums, preserve_rng_state, check_recompute)


class _Remat:
    """The wrapped function (see `remat`)."""

    def __init__(self, f, static_argnums, preserve_rng_state, check_recompute):
        functools.update_wrapper(self, f)
        self.fun = f
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
            raise TransformError(f"remat of {self._name}: static_argnums={static_argnums!r} "
                                 f"must be int positions of positional arguments")
        self.static = frozenset(nums)
        self.rng, self.check = preserve_rng_state, check_recompute

    @property
    def _name(self) -> str:
        return getattr(self.fun, "__name__", "f")

    def __call__(self, *args, **kwargs):
        static = self._static_positions(args)
        dyn = ([a for i, a in enumerate(args) if i not in static], kwargs)
        flat, tree = pytree.flatten(dyn)
        top = top_trace(flat)
        if top is None or isinstance(top, ProgramTrace):  # a program: inlined, as JAX's jit
            return self.fun(*args, **kwargs)
        if not top.active:
            raise top.leaked(self._name)
        if isinstance(top, JVPTrace):
            return self._forward(top, args, kwargs, static, flat, tree)
        return self._reverse(top, args, static, flat, tree)

    def _forward(self, trace, args, kwargs, static, flat, tree):
        """Forward mode keeps nothing: f as it is, unless a reverse level lies below (grad
        of jvp): then the pair (f, its JVP) is remat'ed there, keeping only its inputs."""
        traced = [i for i, x in enumerate(flat) if type(x) is JVPTracer and x._trace is trace]
        primals, tangents = unbox(flat, trace), [flat[i].tangent for i in traced]
        if top_trace(primals + tangents) is None:
            return self.fun(*args, **kwargs)
        fixed = _Fixed(len(args), {n: args[n] for n in static}, tree)

        def f_and_jvp(ps, ts):
            def f_of_traced(*xs):
                full = list(ps)
                for i, x in zip(traced, xs, strict=True):
                    full[i] = x
                return fixed.call(self.fun, full)

            return jvp(f_of_traced, tuple(ps[i] for i in traced), tuple(ts))

        f_and_jvp.__name__ = self._name
        pair = _Remat(f_and_jvp, (), self.rng, self.check)
        out, t_out = pair(primals, tangents)
        flat_out, out_tree = pytree.flatten(out)
        return pytree.unflatten(out_tree, [
            JVPTracer(trace, o, t) if carries_tangent(o) else o
            for o, t in zip(flat_out, pytree.leaves(t_out), strict=True)])

    def _static_positions(self, args: tuple) -> frozenset:
        """The static positions among the call's arguments; none may hold a traced value."""
        nargs = len(args)
        static = frozenset(n % nargs for n in self.static if -nargs <= n < nargs)
        if len(static) != len(self.static):
            raise TransformError(
                f"remat of {self._name}: static_argnums={tuple(sorted(self.static))} but it "
                f"was called with {nargs} positional argument(s)")
        for n in sorted(static):
            if top_trace(pytree.leaves(args[n])) is not None:
                raise TransformError(
                    f"remat of {self._name}: argument {n} is listed in static_argnums but "
                    f"holds a traced value; static arguments must not depend on what is "
                    f"differentiated (leave it out of static_argnums)")
        return static

    def _reverse(self, trace, args, static, flat, tree):
        """One tape node for the call: f runs one level down (itself remat'ed there)."""
        primals = unbox(flat, trace)
        rng = RngState() if self.rng else None
        fixed = _Fixed(len(args), {n: args[n] for n in static}, tree)
        out = fixed.call(self, primals)  # remat'ed at the level below too, if there is one
        flat_out, out_tree = pytree.flatten(out)
        self._refuse_closure(trace, flat_out)
        parents = tuple((i, x.idx, x.out, x.primal.shape, x.primal.dtype)
                        for i, x in enumerate(flat) if type(x) is VJPTracer and x._trace is trace)
        seen = _fingerprint(flat_out)[0] if self.check else None
        rule = _RematRule(self, fixed, out_tree, rng, seen, [p[0] for p in parents])
        idx = trace.add_node(rule, (_Inputs(primals),), tuple(flat_out), parents, len(flat_out))
        return pytree.unflatten(out_tree, [
            VJPTracer(trace, o, idx, k) if carries_tangent(o) else o
            for k, o in enumerate(flat_out)])

    def _refuse_closure(self, trace, flat_out) -> None:
        """An output traced at this level or above came from a traced value f closes over:
        the node would not see it as an input, so its gradient would be lost."""
        for o in flat_out:
            if isinstance(o, Tracer) and o._trace.level >= trace.level:
                raise TransformError(
                    f"remat of {self._name}: the function closes over a value traced by "
                    f"`{o._trace.transform}` (its output depends on it, but it is not an "
                    f"argument), so remat cannot recompute its derivative. Pass that value "
                    f"as an argument of the remat'ed function.")


class _Fixed:
    """How a call's arguments are rebuilt from its flat dynamic leaves."""

    __slots__ = ("nargs", "static", "tree")

    def __init__(self, nargs: int, static: dict, tree):
        self.nargs, self.static, self.tree = nargs, static, tree

    def call(self, fun, flat):
        """`fun` on the dynamic leaves `flat` (positional and keyword), statics as given."""
        dyn, kwargs = pytree.unflatten(self.tree, flat)
        dyn = iter(dyn)
        full = [self.static[i] if i in self.static else next(dyn) for i in range(self.nargs)]
        return fun(*full, **kwargs)


class _Inputs:
    """The flat inputs a remat node keeps, as one tape argument whose `nbytes` the tape's
    own accounting (`VJPTrace.nbytes`) counts, however many leaves there are."""

    __slots__ = ("values",)

    def __init__(self, values: list):
        self.values = values

    @property
    def nbytes(self) -> int:
        total = 0
        for v in self.values:
            while isinstance(v, Tracer):
                v = v.primal
            total += int(getattr(v, "nbytes", 0))
        return total


class _RematRule:
    """Stands in for a primitive on the tape: the backward of one remat'ed call."""

    __slots__ = ("owner", "fixed", "out_tree", "rng", "seen", "traced")
    name = "remat"
    multiple_results = True
    vjp_args = None

    def __init__(self, owner, fixed, out_tree, rng, seen, traced):
        self.owner, self.fixed, self.out_tree = owner, fixed, out_tree
        self.rng, self.seen, self.traced = rng, seen, traced

    def vjp_all(self, g, ans, inputs):
        """Run f again on the kept inputs under a fresh vjp; pull the cotangent `g` back."""
        primals = inputs.values
        traced, consts = self.traced, list(primals)

        def f_of_traced(*xs):
            full = list(consts)
            for i, x in zip(traced, xs, strict=True):
                full[i] = x
            return self.fixed.call(self.owner.fun, full)

        now = RngState() if self.rng is not None else None
        try:
            if self.rng is not None:
                self.rng.restore()
            out, f_vjp = vjp(f_of_traced, *(primals[i] for i in traced), _transform="remat")
        finally:
            if now is not None:
                now.restore()
        if self.seen is not None:
            self._check(pytree.leaves(out))
        cts = f_vjp(pytree.unflatten(self.out_tree, [instantiate(c) for c in g]))
        full = [None] * len(primals)
        for i, c in zip(traced, cts, strict=True):
            full[i] = c
        return full

    def _check(self, flat_out) -> None:
        """The recomputed outputs must be the forward's (their fingerprints agree)."""
        value, tol = _fingerprint(flat_out)
        old = self.seen
        if not (abs(value - old) <= tol or (value != value and old != old)):
            raise TransformError(
                f"remat of {self.owner._name}: recomputing it in the reverse pass did not "
                f"reproduce its forward outputs: it is not deterministic (it draws from a "
                f"random generator other than the global NumPy/torch ones, or reads something "
                f"that changed since). The gradient would be wrong. Pass the randomness as an "
                f"argument (draw outside the remat'ed function), or use the global generators "
                f"with preserve_rng_state=True.")


def _fingerprint(leaves) -> tuple[float, float]:
    """(fingerprint of the leaves, the deviation a recomputation may show): the loops'."""
    return fingerprint(leaves, tolerance=True)
