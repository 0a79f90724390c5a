"""Shape primitives: linear maps that move elements around; their VJPs move them back.

Static parameters are already normalised by `diffkit.numpy._shape` (axes non-negative
tuples, shapes without -1), so kernels and rules never re-check them.
"""

from __future__ import annotations

from diffkit.core.primitive import Primitive
from diffkit.core.residuals import pass_cotangent
from diffkit.core.rules import linear
from diffkit.core.zeros import instantiate
from diffkit.primitives.sampling import cases


def _normal(*shapes):
    return lambda r: tuple(r.normal(size=s) for s in shapes)


reshape = linear(
    "reshape",
    lambda g, _ans, x, shape, order="C": reshape.bind(g, shape=tuple(x.shape), order=order),
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
    lambda g, _ans, x, axis: reshape_to(g, x.shape),
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
    lambda g, _ans, _x, axes: transpose.bind(g, axes=_inverse(axes)),
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
        out.append(g[(slice(None),) * axis + (slice(start, stop),)])
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



# -- positional forms the rules call (axes and shapes as the primitives take them) ------------
def reshape_to(x, shape):
    """`x` in `shape` (itself when it has it already)."""
    shape = tuple(shape)
    return x if tuple(x.shape) == shape else reshape.bind(x, shape=shape, order="C")


def broadcast(x, shape):
    """`x` broadcast to `shape` (itself when it has it already)."""
    shape = tuple(shape)
    return x if tuple(x.shape) == shape else broadcast_to.bind(x, shape=shape)


def expand(x, axes):
    """`x` with new length-1 axes at `axes` (an int or ints, negative from the end of the
    result)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    nd = len(x.shape) + len(axes)
    return expand_dims.bind(x, axis=tuple(sorted(a % nd for a in axes)))


def swap_last(x):
    """`x` with its last two axes swapped (the matrix transpose of a stack)."""
    nd = len(x.shape)
    return transpose.bind(x, axes=(*range(nd - 2), nd - 1, nd - 2))


PRIMITIVES = (reshape, broadcast_to, expand_dims, transpose, concatenate, flip, roll, tril,
              triu, copy)
