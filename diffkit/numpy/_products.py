"""Products with NumPy's names and signatures: matmul and einsum are primitives, the rest
(dot, vdot, inner, outer, kron, tensordot, trace) are compositions of them."""

from __future__ import annotations

import operator
import string

from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import asarray, iscomplexobj, ndim, shape
from diffkit.primitives import products as P

__all__ = ["matmul", "einsum", "tensordot", "dot", "vdot", "inner", "outer", "kron", "trace"]


def _no_out(name: str, out) -> None:
    if out is not None:
        raise TypeError(f"dnp.{name} does not support out=: diffkit arrays are immutable; "
                        f"use the returned value")


def matmul(x1, x2, /, out=None, *, dtype=None):
    """Matrix product with NumPy's rules: a 1-D operand is a row (left) or column (right)
    vector whose added dimension is removed again; leading dimensions broadcast."""
    s1, s2 = getattr(x1, "shape", ()), getattr(x2, "shape", ())
    if (out is None and dtype is None and len(s1) >= 2 and len(s2) >= 2
            and s1[-1] == s2[-2]):  # the common case: matrices, no 1-D promotion
        return P.matmul.bind(x1, x2)
    _no_out("matmul", out)
    x1, x2 = asarray(x1), asarray(x2)
    n1, n2 = ndim(x1), ndim(x2)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"dnp.matmul: input operand {0 if n1 == 0 else 1} does not have "
                         f"enough dimensions (a 0-d array); use dnp.multiply for scalars")
    s1, s2 = shape(x1), shape(x2)
    k1, k2 = s1[-1], s2[-2] if n2 > 1 else s2[0]
    if k1 != k2:
        raise ValueError(f"dnp.matmul: shapes {s1} and {s2} are not aligned: the last "
                         f"dimension of the first ({k1}) must equal the "
                         f"{'first' if n2 == 1 else 'second-to-last'} of the second ({k2})")
    a = _sh.reshape(x1, (1, k1)) if n1 == 1 else x1
    b = _sh.reshape(x2, (k2, 1)) if n2 == 1 else x2
    r = P.matmul.bind(a, b)
    if n1 == 1 or n2 == 1:
        rs = shape(r)
        r = _sh.reshape(r, rs[:-2] + (() if n1 == 1 else rs[-2:-1])
                        + (() if n2 == 1 else rs[-1:]))
    return r if dtype is None else _el.astype(r, dtype)


def _explicit(subscripts: str, shapes: list) -> str:
    """NumPy's einsum subscripts made explicit: an output always given, each '...' replaced
    by letters (right-aligned across operands, as NumPy broadcasts them)."""
    s = subscripts.replace(" ", "")
    ins, arrow, out = s.partition("->")
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"dnp.einsum: subscripts {subscripts!r} name {len(ins)} operand(s) "
                         f"but {len(shapes)} were given")
    unused = [c for c in string.ascii_letters if c not in s]
    n_ell = [len(sh) - (len(sub) - 3) if "..." in sub else 0 for sub, sh in zip(ins, shapes)]
    ell = "".join(unused[: max(0, *n_ell)])
    subs = []
    for sub, sh, n in zip(ins, shapes, n_ell, strict=True):
        sub = sub.replace("...", ell[len(ell) - n:] if n else "")
        if len(sub) != len(sh) or (sub and not sub.isalpha()):
            raise ValueError(f"dnp.einsum: subscripts {sub!r} do not match an operand of "
                             f"shape {tuple(sh)}")
        subs.append(sub)
    if not arrow:
        labels = [c for c in "".join(subs) if c not in ell]
        out = ell + "".join(sorted(c for c in set(labels) if labels.count(c) == 1))
    elif "..." in out:
        out = out.replace("...", ell)
    elif ell:
        raise ValueError("dnp.einsum: output has more dimensions than subscripts given in "
                         "einstein sum, but no '...' ellipsis provided to broadcast the extra "
                         "dimensions")
    return ",".join(subs) + "->" + out


_SYMBOLS = string.ascii_lowercase + string.ascii_uppercase  # NumPy's order for sublist ints


def _sublist(sub) -> str:
    try:
        return "".join("..." if s is Ellipsis else _SYMBOLS[operator.index(s)] for s in sub)
    except (TypeError, IndexError):
        raise ValueError(f"dnp.einsum: a sublist holds integers in [0, 52) and Ellipsis, "
                         f"got {sub!r}") from None


def _from_sublists(args: tuple):
    """The interleaved form (op0, sublist0, op1, sublist1, ..., [sublist_out]) as
    (subscripts, operands)."""
    ops, subs = list(args[0::2]), [_sublist(s) for s in args[1::2]]
    if len(args) % 2 == 0:
        return ",".join(subs), ops
    return ",".join(subs) + "->" + _sublist(ops.pop()), ops


def einsum(subscripts, *operands, out=None, optimize=True, dtype=None):
    """Einstein summation (NumPy's subscripts, with '...' and implicit outputs). The
    gradient with respect to each operand is another einsum."""
    _no_out("einsum", out)
    if not isinstance(subscripts, str):  # einsum(op0, sublist0, op1, sublist1, ..., [out])
        subscripts, operands = _from_sublists((subscripts, *operands))
    ops = [asarray(o) for o in operands]
    spec = _explicit(subscripts, [shape(o) for o in ops])
    r = P.einsum.bind(*ops, subscripts=spec)
    return r if dtype is None else _el.astype(r, dtype)


def _axes_pair(axes, na: int, nb: int):
    if isinstance(axes, int):
        if axes < 0 or axes > min(na, nb):
            raise ValueError(f"dnp.tensordot: axes={axes} must be in [0, {min(na, nb)}]")
        return list(range(na - axes, na)), list(range(axes))
    try:
        ax_a, ax_b = axes
    except (TypeError, ValueError):
        raise ValueError("dnp.tensordot: axes must be an int or a pair of sequences") from None
    ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
    ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    if len(ax_a) != len(ax_b):
        raise ValueError("dnp.tensordot: the two axis lists have different lengths "
                         f"({len(ax_a)} and {len(ax_b)})")
    return [a % na for a in ax_a], [b % nb for b in ax_b]


def tensordot(a, b, axes=2):
    """Sum of products over `axes` of a and b (an int N: a's last N with b's first N)."""
    a, b = asarray(a), asarray(b)
    sa, sb = shape(a), shape(b)
    ax_a, ax_b = _axes_pair(axes, len(sa), len(sb))
    if any(sa[i] != sb[j] for i, j in zip(ax_a, ax_b, strict=True)):
        raise ValueError(f"dnp.tensordot: shape-mismatch for sum: {sa} over axes {ax_a} "
                         f"and {sb} over axes {ax_b}")
    letters = iter(string.ascii_letters)
    la = [next(letters) for _ in sa]
    lb = [next(letters) for _ in sb]
    for i, j in zip(ax_a, ax_b, strict=True):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in ax_a]
    out += [c for j, c in enumerate(lb) if j not in ax_b]
    spec = "".join(la) + "," + "".join(lb) + "->" + "".join(out)
    return P.einsum.bind(a, b, subscripts=spec)


def dot(a, b, out=None):
    """NumPy's dot: products of scalars, inner product of vectors, matrix product, and in
    general a sum over the last axis of a and the second-to-last of b."""
    _no_out("dot", out)
    a, b = asarray(a), asarray(b)
    na, nb = ndim(a), ndim(b)
    if na == 0 or nb == 0:
        return _el.multiply(a, b)
    if na == 1 and nb == 1:  # inner product: two primitives instead of reshapes + matmul
        if shape(a) != shape(b):
            raise ValueError(f"dnp.dot: shapes {shape(a)} and {shape(b)} not aligned")
        return _rd.sum(_el.multiply(a, b))
    if nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, ([-1], [-2]))


def vdot(a, b, /):
    """Dot product of the flattened arrays, conjugating the first."""
    a, b = asarray(a), asarray(b)
    a, b = _sh.reshape(a, (-1,)), _sh.reshape(b, (-1,))
    if shape(a) != shape(b):
        raise ValueError(f"dnp.vdot: the arrays have {shape(a)[0]} and {shape(b)[0]} "
                         f"elements; they must have the same size")
    if iscomplexobj(a):
        a = _el.conj(a)
    return P.einsum.bind(a, b, subscripts="i,i->")


def inner(a, b, /):
    """Sum over the last axes of a and b (ordinary inner product for vectors)."""
    a, b = asarray(a), asarray(b)
    if ndim(a) == 0 or ndim(b) == 0:
        return _el.multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def outer(a, b, out=None):
    """out[i, j] = a.ravel()[i] * b.ravel()[j]."""
    _no_out("outer", out)
    return _el.multiply(_sh.reshape(asarray(a), (-1, 1)), _sh.reshape(asarray(b), (1, -1)))


def kron(a, b):
    """Kronecker product: blocks a[i, j, ...] * b, by an interleaved outer product."""
    a, b = asarray(a), asarray(b)
    n = max(ndim(a), ndim(b))
    sa = (1,) * (n - ndim(a)) + shape(a)
    sb = (1,) * (n - ndim(b)) + shape(b)
    ra = _sh.reshape(a, tuple(d for s in sa for d in (s, 1)))
    rb = _sh.reshape(b, tuple(d for s in sb for d in (1, s)))
    return _sh.reshape(_el.multiply(ra, rb), tuple(x * y for x, y in zip(sa, sb, strict=True)))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal (`offset` above the main one) of the axis1/axis2 planes."""
    _no_out("trace", out)
    a = asarray(a)
    sa = shape(a)
    n = len(sa)
    if n < 2:
        raise ValueError(f"dnp.trace: the array must be at least 2-d, got shape {sa}")
    for ax in (axis1, axis2):
        if not -n <= ax < n:
            raise ValueError(f"dnp.trace: axis {ax} is out of bounds for an array of "
                             f"dimension {n}")
    i, j = axis1 % n, axis2 % n
    if i == j:
        raise ValueError("dnp.trace: axis1 and axis2 cannot be the same")
    letters = list(string.ascii_letters[:n])
    rest = "".join(c for k, c in enumerate(letters) if k not in (i, j))
    if offset == 0 and sa[i] == sa[j]:  # the plain diagonal: a repeated label
        letters[j] = letters[i]
        r = P.einsum.bind(a, subscripts="".join(letters) + "->" + rest)
    else:
        eye = P.shifted_eye(sa[i], sa[j], offset, a)
        spec = "".join(letters) + "," + letters[i] + letters[j] + "->" + rest
        r = P.einsum.bind(a, eye, subscripts=spec)
    return r if dtype is None else _el.astype(r, dtype)
