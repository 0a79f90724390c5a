"""Rule constructors: most primitives are declared in one line through these.

- `elementwise(name, d0, d1, ...)`: one derivative expression per argument serves both
  modes (JVP: t * d, VJP: g * d) — ChainRules' `@scalar_rule`. Complex numbers follow JAX:
  for holomorphic f the same f'(z) multiplies tangents and cotangents (no conjugation).
- `linear(name, transpose)`: the JVP applies the primitive itself to the tangent.
- `bilinear(name, vjp_x, vjp_y)`: JVP f(t, y) + f(x, t).
- `nondiff(name)`: outputs carry no derivative.
- `pass_cotangent`: the VJP rule `g -> g` (add, positive, real).

A VJP rule declares what the tape must keep by its parameter names: `_ans`, `_x` (any name
starting with `_`) are not read, so not kept (see `core.residuals`).
"""

from __future__ import annotations

from collections.abc import Callable

from diffkit.core.primitive import Primitive
from diffkit.core.residuals import pass_cotangent

__all__ = ["elementwise", "linear", "bilinear", "nondiff", "pass_cotangent"]


def _times(d: Callable, nargs: int) -> Callable:
    """The rule `t * d(ans, *args)`; spelled out for one and two arguments, since it runs
    once per recorded node in every backward pass."""
    if nargs == 1:
        rule = lambda t, ans, x, **params: t * d(ans, x, **params)
    elif nargs == 2:
        rule = lambda t, ans, x, y, **params: t * d(ans, x, y, **params)
    else:
        rule = lambda t, ans, *args, **params: t * d(ans, *args, **params)
    rule.reads_from = d  # the tape keeps what d's parameter names declare (core.residuals)
    return rule


def elementwise(name: str, *derivs: Callable | None, **kw) -> Primitive:
    """An elementwise primitive from its partial derivatives `d(ans, *args, **params)`.

    Pass None for an argument that is not differentiable (an integer exponent, a mask).
    """
    rules = tuple(None if d is None else _times(d, len(derivs)) for d in derivs)
    return Primitive(name, jvp=rules, vjp=rules, **kw)


def linear(name: str, *transposes: Callable | None, **kw) -> Primitive:
    """A primitive linear in its (first, or each listed) argument(s).

    `transposes[i](g, ans, *args, **params)` is the transpose map for argument i; the JVP
    is the primitive applied to the tangent in that argument's place.
    """
    prim = Primitive(name, vjp=transposes, **kw)

    def jvp_for(i: int) -> Callable:
        def jvp(t, ans, *args, **params):
            args = list(args)
            args[i] = t
            return prim.bind(*args, **params)

        return jvp

    prim.def_jvp(*(None if tr is None else jvp_for(i) for i, tr in enumerate(transposes)))
    return prim


def bilinear(name: str, vjp_x: Callable, vjp_y: Callable, **kw) -> Primitive:
    """A primitive bilinear in its two arguments (multiply, matmul, tensordot, ...)."""
    prim = Primitive(name, vjp=(vjp_x, vjp_y), **kw)
    prim.def_jvp(
        lambda t, ans, x, y, **p: prim.bind(t, y, **p),
        lambda t, ans, x, y, **p: prim.bind(x, t, **p),
    )
    return prim


def nondiff(name: str, **kw) -> Primitive:
    """A primitive whose outputs carry no derivative (floor, comparisons, argmax)."""
    return Primitive(name, nondiff=True, **kw)
