"""Elementwise primitives: arithmetic, powers, exp/log, trig and friends.

Each derivative is one expression `d(ans, *args)` (see `core.rules.elementwise`).
Non-differentiable points follow the minimum-norm subgradient (docs/conventions.md).
"""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.core.primitive import Primitive
from diffkit.core.rules import elementwise, linear, nondiff
from diffkit.core.sampling import away_from, uniform

# -- arithmetic ----------------------------------------------------------------------------
add = Primitive(
    "add",
    jvp=(lambda t, ans, x, y: t, lambda t, ans, x, y: t),
    vjp=(lambda g, ans, x, y: g, lambda g, ans, x, y: g),
    saves_args=False, saves_ans=False, sample=uniform(nargs=2),
)
subtract = Primitive(
    "subtract",
    jvp=(lambda t, ans, x, y: t, lambda t, ans, x, y: -t),
    vjp=(lambda g, ans, x, y: g, lambda g, ans, x, y: -g),
    saves_args=False, saves_ans=False, sample=uniform(nargs=2),
)
multiply = elementwise(
    "multiply", lambda ans, x, y: y, lambda ans, x, y: x, saves_ans=False,
    sample=uniform(nargs=2),
)
divide = elementwise(
    "divide", lambda ans, x, y: 1 / y, lambda ans, x, y: -ans / y,
    sample=away_from([0.0], nargs=2),
)
negative = linear("negative", lambda g, ans, x: -g, saves_args=False, saves_ans=False,
                  sample=uniform())

# -- exp / log / trig ------------------------------------------------------------------------
sin = elementwise("sin", lambda ans, x: dnp.cos(x), saves_ans=False, sample=uniform())
cos = elementwise("cos", lambda ans, x: -dnp.sin(x), saves_ans=False, sample=uniform())
exp = elementwise("exp", lambda ans, x: ans, saves_args=False, sample=uniform())
log = elementwise("log", lambda ans, x: 1 / x, saves_ans=False, sample=uniform(0.1, 3.0))
tanh = elementwise("tanh", lambda ans, x: 1 - ans * ans, saves_args=False, sample=uniform())
sqrt = elementwise("sqrt", lambda ans, x: 0.5 / ans, saves_args=False,
                   sample=uniform(0.1, 3.0))

# -- no derivative -----------------------------------------------------------------------------
stop_gradient = nondiff("stop_gradient", sample=uniform())

PRIMITIVES = (add, subtract, multiply, divide, negative, sin, cos, exp, log, tanh, sqrt,
              stop_gradient)
