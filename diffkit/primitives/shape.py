"""Shape primitives: linear maps that move elements around; their VJPs move them back.

Static parameters are already normalised by `diffkit.numpy._shape` (axes non-negative
tuples, shapes without -1), so kernels and rules never re-check them.
"""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.core.primitive import Primitive
from diffkit.core.residuals import pass_cotangent
from diffkit.core.rules import linear
from diffkit.core.zeros import instantiate
from diffkit.primitives.sampling import cases


def _normal(*shapes):
    return lambda r: tuple(r.normal(size=s) for s in shapes)


reshape = linear(
    "reshape",
    lambda g, _ans, x, shape, order="C": dnp.reshape(g, x.shape, order=order),
    saves_ans=False,
    sample=cases((_normal((2, 3)), {"shape": (3, 2)}),
                 (_normal((4,)), {"shape": (2, 1, 2)}),
                 (_normal((2, 3)), {"shape": (3, 2), "order": "F"})),
)
broadcast_to = linear(
    "broadcast_to",
    pass_cotangent,  # `fit_to` sums the broadcast axes back
    saves_ans=False,
    sample=cases((_normal((3,)), {"shape": (2, 3)}),
                 (_normal((2, 1)), {"shape": (2, 4)})),
)
expand_dims = linear(
    "expand_dims",
    lambda g, _ans, x, axis: dnp.reshape(g, x.shape),
    saves_ans=False,
    sample=cases((_normal((2, 3)), {"axis": 1}), (_normal((2, 3)), {"axis": (0, 3)})),
)


def _inverse(perm: tuple) -> tuple:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


transpose = linear(
    "transpose",
    lambda g, _ans, _x, axes: dnp.transpose(g, _inverse(axes)),
    saves_args=False, saves_ans=False,
    sample=cases((_normal((2, 3)), {"axes": (1, 0)}), (_normal((2, 3, 4)), {"axes": (2, 0, 1)})),
)


# -- concatenate(*xs, axis): the cotangent is cut back into the pieces ------------------------
def _concat_jvp(tangents, ans, *xs, axis):
    if len(xs) == 1:
        return instantiate(tangents[0])
    return concatenate.bind(*(instantiate(t) for t in tangents), axis=axis)


def _concat_vjp(g, ans, *xs, axis):
    out, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        out.append(dnp._getitem(g, (slice(None),) * axis + (slice(start, stop),)))
        start = stop
    return tuple(out)


concatenate = Primitive(
    "concatenate", jvp=_concat_jvp, vjp=_concat_vjp, saves_ans=False,
    sample=cases((_normal((2, 3), (1, 3), (4, 3)), {"axis": 0}),
                 (_normal((2, 3), (2, 2)), {"axis": 1})),
)

flip = linear(
    "flip",
    lambda g, _ans, _x, axis: flip.bind(g, axis=axis),
    saves_args=False, saves_ans=False,
    sample=cases((_normal((2, 3)), {"axis": (1,)}), (_normal((2, 3, 2)), {"axis": (0, 2)})),
)
roll = linear(
    "roll",
    lambda g, _ans, _x, shift, axis: roll.bind(g, shift=tuple(-s for s in shift), axis=axis),
    saves_args=False, saves_ans=False,
    sample=cases((_normal((5,)), {"shift": (2,), "axis": (0,)}),
                 (_normal((3, 4)), {"shift": (1, -5), "axis": (0, 1)})),
)
# tril/triu zero a fixed set of entries: each is its own transpose.
tril = linear("tril", lambda g, _ans, _x, k: tril.bind(g, k=k), saves_args=False,
              saves_ans=False, sample=cases((_normal((3, 4)), {"k": 0}),
                                            (_normal((2, 3, 3)), {"k": -1})))
triu = linear("triu", lambda g, _ans, _x, k: triu.bind(g, k=k), saves_args=False,
              saves_ans=False, sample=cases((_normal((3, 4)), {"k": 1}),
                                            (_normal((2, 3, 3)), {"k": 0})))
copy = linear("copy", pass_cotangent, saves_args=False, saves_ans=False,
              sample=cases((_normal((2, 3)), {})))

PRIMITIVES = (reshape, broadcast_to, expand_dims, transpose, concatenate, flip, roll, tril,
              triu, copy)
