"""A primitive: a named operation, its JVP/VJP rules beside it, and kernel dispatch.

`bind` is the hot path. With no tracer among the arguments it is one dict lookup from the
argument's type to the active backend's kernel; otherwise the trace of the highest level
processes the call (see `core.forward` and `core.reverse`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from diffkit.core.dispatch import (
    SCALAR_TYPES,
    WEAK,
    dispatch_slow,
    kernel_failed,
    registry,
    weak_type,
)
from diffkit.core.tracer import Tracer

__all__ = ["Primitive", "SCALAR_TYPES"]


class Primitive:
    """An operation declared once, with its rules; backends supply kernels by its name.

    Args:
        name: unique name, also the key kernels are registered under.
        jvp: tuple of per-argument rules `rule(t, ans, *args, **params)` giving that
            argument's contribution to the output tangent (None for a non-differentiable
            argument), or one callable `rule(tangents, ans, *args, **params)` receiving
            every tangent (`Zero` where none flows).
        vjp: tuple of per-argument rules `rule(g, ans, *args, **params)` giving that
            argument's cotangent, or one callable returning a tuple of all cotangents.
        nondiff: outputs carry no derivative (floor, comparisons, argmax, ...).
        multiple_results: the kernel returns a tuple of arrays.
        sample: `sample(rng) -> [(args, params), ...]`, NumPy inputs inside the
            primitive's domain, used by `diffkit.testing.check_primitive`.
        subgradient: at non-differentiable points, the value the rules return
            (documentation, listed in the docs table; the rules implement it).
        saves_args / saves_ans: upper bounds on what the reverse tape keeps of the inputs /
            output; within them a node keeps what its VJP rules' parameter names declare
            they read (`_x`: not read; core/residuals.py).
    """

    __slots__ = (
        "name", "jvp_args", "jvp_all", "vjp_args", "vjp_all", "nondiff", "multiple_results",
        "sample", "subgradient", "saves_args", "saves_ans", "value_shaped", "doc", "kernels",
        "keep",
    )

    def __init__(
        self,
        name: str,
        *,
        jvp: Sequence[Callable | None] | Callable | None = None,
        vjp: Sequence[Callable | None] | Callable | None = None,
        nondiff: bool = False,
        multiple_results: bool = False,
        sample: Callable | None = None,
        subgradient: str | None = None,
        saves_args: bool = True,
        saves_ans: bool = True,
        value_shaped: bool | Callable = False,
        doc: str = "",
    ):
        self.name = name
        self.jvp_args, self.jvp_all = _split_rule(jvp)
        self.vjp_args, self.vjp_all = _split_rule(vjp)
        self.nondiff = nondiff
        self.multiple_results = multiple_results
        self.sample = sample
        self.subgradient = subgradient
        self.saves_args = saves_args
        self.saves_ans = saves_ans
        # its outputs' shapes depend on its inputs' values (nonzero, a boolean mask): True,
        # or a predicate on the arguments saying when; a program guards those shapes
        self.value_shaped = value_shaped
        self.doc = doc
        self.kernels: dict[type, Callable] = {}  # cache of the active registry: type -> kernel
        self.keep: dict[int, tuple] = {}  # traced-argument mask -> what a tape node keeps

    def def_jvp(self, *rules: Callable | None) -> Primitive:
        """Set per-argument JVP rules (one callable per positional argument)."""
        self.jvp_args, self.jvp_all = _split_rule(rules)
        return self

    def def_vjp(self, *rules: Callable | None) -> Primitive:
        """Set per-argument VJP rules (one callable per positional argument)."""
        self.vjp_args, self.vjp_all = _split_rule(rules)
        self.keep = {}
        return self

    @property
    def has_jvp(self) -> bool:
        return self.jvp_args is not None or self.jvp_all is not None

    @property
    def has_vjp(self) -> bool:
        return self.vjp_args is not None or self.vjp_all is not None

    def bind(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive: process by the innermost trace, or run the kernel."""
        top = None
        constant = False  # an array that is not traced: a weak constant may have to move
        for a in args:
            if isinstance(a, Tracer):
                t = a._trace
                if top is None or t.level > top.level:
                    top = t
            elif type(a) not in SCALAR_TYPES:
                constant = True
        if top is None:
            return self.impl(args, params)
        if not top.active:
            raise top.leaked(self.name)
        if constant:  # the rules then see the moved constant, never a NumPy one
            args = promote_weak(args)
        return top.process(self, args, params)

    __call__ = bind

    def impl(self, args: tuple, params: dict) -> Any:
        """Run the kernel of the arguments' backend (dict lookup on the argument types)."""
        kernel = None
        kernels = self.kernels
        for a in args:
            t = type(a)
            if t in SCALAR_TYPES:
                continue
            k = kernels.get(t)
            if k is None:
                return dispatch_slow(self, args, params)
            if kernel is None:
                kernel = k
            elif k is not kernel:
                return dispatch_slow(self, args, params)
        if kernel is None:
            return dispatch_slow(self, args, params)
        try:  # free unless the kernel raises (zero-cost exceptions, Python >= 3.11)
            return kernel(*args, **params)
        except Exception as e:
            better = kernel_failed(self, args, e)
            if better is e:
                raise
            raise better from e

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


def promote_weak(args: tuple) -> tuple:
    """A traced call's arguments with its weak constants (arrays of the registry's default
    backend) moved to the backend and device of the first traced or other strong array, so
    the rules the trace records never meet a NumPy array next to a tensor."""
    first = None
    for a in args:
        base = a._base() if isinstance(a, Tracer) else a
        t = type(base)
        if t in SCALAR_TYPES:
            continue
        weak = WEAK.get(t)
        if not (weak_type(t) if weak is None else weak):
            first = base
            break
    if first is None:  # the common case: NumPy everywhere (one dict lookup per argument)
        return args
    reg = registry()
    strong, device = reg.backend_of(type(first)), getattr(first, "device", None)
    return tuple(
        strong.asarray(a, device=device)
        if not isinstance(a, Tracer) and getattr(reg.backend_of(type(a)), "default", False)
        else a  # (numbers stay numbers; lists and other objects are the kernels' business)
        for a in args
    )


def _split_rule(rule):
    if rule is None:
        return None, None
    if callable(rule):
        return None, rule
    rules = tuple(rule)
    if not any(r is not None for r in rules):
        return None, None
    return rules, None
