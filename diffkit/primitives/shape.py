"""Shape primitives: linear maps that move elements around; their VJPs move them back."""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.core.rules import linear
from diffkit.core.sampling import cases

reshape = linear(
    "reshape",
    lambda g, ans, x, shape, order="C": dnp.reshape(g, x.shape, order=order),
    saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(2, 3)),), {"shape": (3, 2)}),
                 (lambda r: (r.normal(size=(4,)),), {"shape": (2, 1, 2)})),
)
broadcast_to = linear(
    "broadcast_to",
    lambda g, ans, x, shape: g,  # `fit_to` sums the broadcast axes back
    saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(3,)),), {"shape": (2, 3)}),
                 (lambda r: (r.normal(size=(2, 1)),), {"shape": (2, 4)})),
)
expand_dims = linear(
    "expand_dims",
    lambda g, ans, x, axis: dnp.reshape(g, x.shape),
    saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(2, 3)),), {"axis": 1})),
)

PRIMITIVES = (reshape, broadcast_to, expand_dims)
