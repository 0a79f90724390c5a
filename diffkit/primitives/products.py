"""Products: matmul (bilinear, batched) and einsum (multilinear, any number of operands).

The other products (dot, tensordot, inner, outer, vdot, kron, trace) are compositions of
these in `diffkit.numpy._products`. Complex numbers follow JAX: each VJP is the plain
transpose of the JVP map, with no conjugation (ct_x = g @ y^T for matmul).
"""

from __future__ import annotations

import string

from diffkit.core.primitive import Primitive
from diffkit.core.rules import bilinear
from diffkit.primitives.creation import ones_like, zeros_like
from diffkit.primitives.elementwise import equal, where
from diffkit.primitives.reductions import cumsum
from diffkit.primitives.sampling import cases
from diffkit.primitives.shape import broadcast, expand, swap_last


def _normal(*shapes, complex_=False):
    def build(rng):
        if complex_:
            return tuple(rng.normal(size=s) + 1j * rng.normal(size=s) for s in shapes)
        return tuple(rng.normal(size=s) for s in shapes)

    return build


# Operands have at least 2 dimensions here: NumPy's 1-D promotion is done by the namespace's
# matmul with reshapes. Leading (batch) dimensions broadcast; `fit_to` sums them back.
matmul = bilinear(
    "matmul",
    lambda g, _ans, _x, y: matmul.bind(g, swap_last(y)),
    lambda g, _ans, x, _y: matmul.bind(swap_last(x), g),
    saves_ans=False,
    sample=cases(
        (_normal((3, 4), (4, 2)), {}),
        (_normal((2, 3, 4), (4, 5)), {}),
        (_normal((2, 1, 3, 4), (5, 4, 2)), {}),
        (_normal((2, 3), (3, 2), complex_=True), {}),
    ),
)


def shifted_eye(n: int, m: int, offset: int, like):
    """The constant E[i, j] = (j - i == offset), of `like`'s dtype and backend."""
    pos = cumsum.bind(ones_like.bind(like, dtype=None, shape=(max(n, m),)), axis=0)
    hit = equal(pos[:m] - expand(pos[:n], 1), offset)
    return where(hit, ones_like.bind(like, dtype=None, shape=(n, m)),
                 zeros_like.bind(like, dtype=None, shape=(n, m)))


def _einsum_cotangent(k: int):
    """VJP for operand k: another einsum, of the cotangent with the other operands.

    A label repeated in operand k ('ii') becomes a fresh label tied to the first by an
    identity operand (the cotangent lives on the diagonal); a label summed inside operand
    k alone gets no dimension in that einsum and is broadcast back here. Labels of size 1
    broadcast against larger ones are summed back by `fit_to`.
    """

    def rule(g, _ans, *ops, subscripts):
        ins, out = subscripts.split("->")
        ins = ins.split(",")
        fresh = iter(c for c in string.ascii_letters if c not in subscripts)
        sub, eyes, seen = [], [], set()
        for pos, c in enumerate(ins[k]):
            if c in seen:
                f = next(fresh)
                eyes.append((c + f, ops[k].shape[pos]))
                c = f
            seen.add(c)
            sub.append(c)
        present = set(out).union(*(ins[j] for j in range(len(ops)) if j != k),
                                 *(e for e, _ in eyes))
        kept = "".join(c for c in sub if c in present)
        spec = ",".join([out, *(ins[j] for j in range(len(ops)) if j != k),
                         *(e for e, _ in eyes)]) + "->" + kept
        args = [g, *(ops[j] for j in range(len(ops)) if j != k),
                *(shifted_eye(n, n, 0, g) for _, n in eyes)]
        ct = einsum.bind(*args, subscripts=spec)
        lonely = tuple(i for i, c in enumerate(sub) if c not in present)
        if not lonely:
            return ct
        ct = expand(ct, lonely)
        return broadcast(ct, tuple(ops[k].shape[i] if i in lonely else n
                                   for i, n in enumerate(ct.shape)))

    return rule


def _einsum_tangent(k: int):
    def rule(t, ans, *ops, subscripts):
        args = list(ops)
        args[k] = t
        return einsum.bind(*args, subscripts=subscripts)

    return rule


# One rule per operand position, so only the traced operands' rules run; NumPy's einsum
# takes at most 64 operands (NPY_MAXARGS).
_MAX_OPERANDS = 64

einsum = Primitive(
    "einsum",
    jvp=tuple(_einsum_tangent(k) for k in range(_MAX_OPERANDS)),
    vjp=tuple(_einsum_cotangent(k) for k in range(_MAX_OPERANDS)),
    saves_ans=False,
    sample=cases(
        (_normal((3, 3)), {"subscripts": "ii->"}),
        (_normal((3, 3)), {"subscripts": "ii->i"}),
        (_normal((2, 3), (3, 4)), {"subscripts": "ij,jk->ik"}),
        (_normal((3,), (3,)), {"subscripts": "i,i->"}),
        (_normal((2, 3), (3, 4), (4, 2)), {"subscripts": "ij,jk,kl->il"}),
        (_normal((2, 3, 4)), {"subscripts": "ijk->ki"}),
        (_normal((1, 3), (2, 3)), {"subscripts": "ai,bi->abi"}),
        (_normal((2, 3, 3), (3,)), {"subscripts": "bii,i->b"}),
        (_normal((1, 3), (2, 3)), {"subscripts": "ai,ai->ai"}),
        (_normal((2, 3), (3,), complex_=True), {"subscripts": "ij,j->i"}),
    ),
)

PRIMITIVES = (matmul, einsum)
