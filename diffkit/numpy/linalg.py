"""`diffkit.numpy.linalg`: NumPy's linalg functions, differentiable.

Primitives (diffkit/primitives/linalg.py) cover inv, solve, det, slogdet, cholesky, eigh,
svd, qr, pinv and the vector 2-norm; the rest are compositions of them, so their
gradients come for free: eigvalsh and svdvals drop the vectors, cond and the spectral
norms go through the singular values, lstsq is `pinv(a) @ b` (the derivative is exact
wherever the rank of `a` is locally constant, full-rank problems included).
"""

from __future__ import annotations

import operator
from typing import NamedTuple

from diffkit.core.dispatch import is_inexact
from diffkit.numpy import _core as _co
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _products as _pr
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _value, concrete, is_traced
from diffkit.primitives import linalg as P
from diffkit.primitives import linalg_extra as PX

__all__ = [
    "inv", "solve", "det", "slogdet", "cholesky", "eigh", "eigvalsh", "svd", "svdvals", "qr",
    "pinv", "lstsq", "matrix_rank", "matrix_power", "cond", "multi_dot", "norm",
    "vector_norm", "matrix_norm", "SlogdetResult", "EighResult", "SVDResult", "QRResult",
    "eig", "eigvals", "EigResult",
]

_INF = float("inf")


class SlogdetResult(NamedTuple):
    sign: object
    logabsdet: object


class EighResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class EigResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class SVDResult(NamedTuple):
    U: object
    S: object
    Vh: object


class QRResult(NamedTuple):
    Q: object
    R: object


def _float(x):
    x = _co.asarray(x)
    return x if is_inexact(x) else _el.astype(x, "float64")


def _H(x):
    x = _sh.swapaxes(x, -1, -2)
    return _el.conj(x) if _co.iscomplexobj(x) else x


# -- inverses and solves ----------------------------------------------------------------------
def inv(a):
    """Inverse of a (stack of) square matrices."""
    return P.inv.bind(_float(a))


def solve(a, b):
    """Solve a @ x = b. As NumPy 2: a 1-D b is a vector, otherwise a stack of matrices
    (..., M, K) whose leading axes broadcast with a's."""
    a, b = _float(a), _float(b)
    if b.ndim == 1:
        x = P.solve.bind(a, _sh.reshape(b, (b.shape[0], 1)))
        return _sh.reshape(x, x.shape[:-1])
    return P.solve.bind(a, b)


def det(a):
    """Determinant (batched). The gradient uses the inverse: undefined where singular."""
    return P.det.bind(_float(a))


def slogdet(a) -> SlogdetResult:
    """(sign, log|det|); only logabsdet is differentiable (the sign is locally constant)."""
    return SlogdetResult(*P.slogdet.bind(_float(a)))


def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """Moore-Penrose pseudo-inverse; singular values below rtol * max(s) count as zero
    (default max(M, N) * eps, as NumPy). Differentiable where the rank is locally constant."""
    return P.pinv.bind(_float(a), rtol=_threshold(rcond if rcond is not None else rtol))


def matrix_power(a, n):
    """a ** n for an integer n by repeated squaring; a negative n inverts first."""
    n = operator.index(n)
    a = _co.asarray(a)
    if n == 0:
        return _sh.broadcast_to(_cr.eye(a.shape[-1], dtype=a.dtype, like=a), a.shape)
    if n < 0:
        a, n = inv(a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else result @ a
        n >>= 1
        if n:
            a = a @ a
    return result


def multi_dot(arrays, *, out=None):
    """Chained matmul, left to right (the first and last may be vectors, as NumPy)."""
    if out is not None:
        raise TypeError("multi_dot does not support out=: diffkit arrays are immutable")
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("multi_dot expects at least two arrays")
    result = arrays[0]
    for m in arrays[1:]:
        result = _pr.matmul(result, m)
    return result


def lstsq(a, b, rcond=None):
    """Least squares, as NumPy: (x, residuals, rank, s), with x = pinv(a) @ b.

    x (and s, residuals) are differentiable wherever the rank of `a` is locally constant,
    which covers every full-rank problem, tall (least squares) or wide (minimum norm).
    """
    a, b = _float(a), _float(b)
    if a.ndim != 2 or b.ndim not in (1, 2):
        raise ValueError(f"lstsq expects a 2-D a and a 1-D or 2-D b; got shapes "
                         f"{a.shape} and {b.shape}")
    m, n = a.shape
    x = pinv(a, rtol=rcond) @ b
    s = svdvals(a)
    rank = int(matrix_rank(a, rtol=rcond))
    if rank == n and m > n:
        r = b - a @ x
        resid = _rd.sum(_el.abs(r) ** 2, axis=0)
        resid = _sh.reshape(resid, (1,)) if b.ndim == 1 else resid
    else:
        resid = _cr.zeros_like(s, shape=(0,))
    return x, resid, rank, s


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """Number of singular values above tol (absolute) or rtol * max(s); not differentiable."""
    A = _float(A)
    if tol is not None:
        return _rd.sum(_el.stop_gradient(svdvals(A)) > tol, axis=-1)
    return P.matrix_rank.bind(A, rtol=_threshold(rtol))


def _threshold(t):
    """A rank threshold as plain data: the results change with it only in steps (when a
    singular value crosses it), so its derivative is 0 and dropping it is exact."""
    return _value(t)


# -- decompositions ---------------------------------------------------------------------------
def cholesky(a, /, *, upper=False):
    """Cholesky factor, lower (or upper) triangular; reads one triangle of `a`, as NumPy."""
    a = _float(a)
    if upper:
        return _H(P.cholesky.bind(_H(a)))
    return P.cholesky.bind(a)


def _uplo(UPLO):
    uplo = str(UPLO).upper()
    if uplo not in ("L", "U"):
        raise ValueError(f"UPLO argument must be 'L' or 'U', got {UPLO!r}")
    return uplo


def eigh(a, UPLO="L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of a symmetric (complex: Hermitian) matrix
    (one triangle read; a complex input's eigenvectors have JAX's phase, docs/conventions.md).

    Eigenvector gradients divide by eigenvalue gaps (F = 1/(w_j - w_i)). At exactly
    repeated eigenvalues that block's terms are taken as 0, which is right for losses
    invariant to the basis chosen inside the eigenspace (projectors, eigenvalues) and
    meaningless otherwise; nearly repeated eigenvalues make the gradient large.
    """
    return EighResult(*P.eigh.bind(_float(a), UPLO=_uplo(UPLO)))


def eigvalsh(a, UPLO="L"):
    """Eigenvalues of a symmetric matrix; gradients are fine at repeated eigenvalues."""
    return eigh(a, UPLO)[0]


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Singular value decomposition, as NumPy (U, S, Vh); compute_uv=False gives S.

    Differentiable for full_matrices=False (or square a): Townsend (2016). Singular
    vector gradients divide by gaps between singular values and by the values themselves.
    """
    a = _float(a)
    if not compute_uv:
        return svdvals(a)
    return SVDResult(*P.svd.bind(a, full_matrices=bool(full_matrices)))


def svdvals(x, /):
    """Singular values, descending."""
    return P.svd.bind(_float(x), full_matrices=False)[1]


def qr(a, mode="reduced"):
    """QR factorization: mode 'reduced' (differentiable for square and tall a), 'r' (R
    only), or 'complete'. A tall a's complete Q appends NumPy's orthonormal basis Q2 of
    the complement of Q1's columns; any rotation of Q2 would do, so its derivative is a
    convention, as at eigh's repeated eigenvalues: Q2 turns only as much as Q1 forces,
    dQ2 = -Q1 dQ1^H Q2 (the derivative of (I - Q1 Q1^H) Q2 at fixed Q2). It is right to
    first order for losses invariant to rotations inside the complement (Q2 Q2^H, norms of
    Q2^H x); Q1 and R are exact to any order."""
    a = _float(a)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    q, r = P.qr.bind(a)
    m, n = a.shape[-2:]
    if mode == "complete" and m > n:
        q2 = PX.qr_complete.bind(_el.stop_gradient(a))[..., n:]
        turned = q2 - q @ (_H(q) @ q2)  # = q2 to rounding, with the derivative above
        q = _sh.concatenate([q, q2 + (turned - _el.stop_gradient(turned))], axis=-1)
        r = _sh.concatenate([r, _cr.zeros_like(r, shape=r.shape[:-2] + (m - n, n))], axis=-2)
    return r if mode == "r" else QRResult(q, r)


def eig(a) -> EigResult:
    """Eigenvalues and right eigenvectors of a general square matrix, as NumPy: real
    arrays when `a` is real and every eigenvalue is real, complex ones otherwise. Vectors
    have unit norm and their largest entry real (LAPACK's choice, which the derivative
    keeps). Differentiable where the eigenvalues are distinct (the vector derivative
    divides by their gaps)."""
    a = _float(a)
    w, v = PX.eig.bind(a)
    if not _co.iscomplexobj(a) and not bool(_value(_rd.any(_el.imag(_el.stop_gradient(w))
                                                          != 0))):
        w, v = _el.real(w), _el.real(v)
    return EigResult(w, v)


def eigvals(a):
    """Eigenvalues of a general square matrix (see eig)."""
    return eig(a)[0]


def cond(x, p=None):
    """Condition number; p None/2/-2 through the singular values, others norm * norm(inv)."""
    x = _float(x)
    p = concrete(p, "dnp.linalg.cond", "p", "the order of a matrix norm picks one of a few "
                 "formulas (None, 1, 2, inf, 'fro', 'nuc'), with no derivative in the order")
    if p in (None, 2, -2):
        s = svdvals(x)
        big, small = _rd.max(s, axis=-1), _rd.min(s, axis=-1)
        return big / small if p != -2 else small / big
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


# -- norms ------------------------------------------------------------------------------------
def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm with NumPy's rules for ord and axis. The 2-norm's gradient
    at 0 is 0 (the minimum-norm subgradient)."""
    x = _float(x)
    nd = x.ndim
    if axis is None:
        if ord is None:
            return P.vector_norm2.bind(x, axis=None, keepdims=keepdims)
        if nd not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(nd))
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    axis = tuple(operator.index(a) % nd for a in axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis, keepdims)
    if len(axis) == 2 and axis[0] != axis[1]:
        return _matrix_norm(x, ord, axis, keepdims)
    raise ValueError(f"Improper number of dimensions to norm (axis={axis}).")


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """NumPy 2's vector_norm: with axis=None, the norm of the flattened array."""
    x = _float(x)
    if axis is None:
        r = _vector_norm(_sh.reshape(x, (-1,)), ord, (0,), False)
        return _sh.reshape(r, (1,) * x.ndim) if keepdims else r
    return norm(x, ord, axis if isinstance(axis, int) else tuple(axis), keepdims)


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """NumPy 2's matrix_norm over the last two axes."""
    return norm(x, ord, (-2, -1), keepdims)


def _vector_norm(x, ord, axis, keepdims):
    if is_traced(ord):  # differentiable in the order p, by the general formula
        p = float(_value(ord))
        if p in (0, _INF, -_INF):
            concrete(ord, "dnp.linalg.norm", "ord", f"ord = {p} is a count, a max or a min, "
                     f"with no derivative in the order")
        return _rd.sum(_el.abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1 / ord)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order {ord!r} for vectors")
    if ord is None or ord == 2:
        return P.vector_norm2.bind(x, axis=axis, keepdims=keepdims)
    a = _el.abs(x)
    if ord == _INF:
        return _rd.max(a, axis=axis, keepdims=keepdims)
    if ord == -_INF:
        return _rd.min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return _rd.sum(_el.astype(a != 0, a.dtype), axis=axis, keepdims=keepdims)
    if ord == 1:
        return _rd.sum(a, axis=axis, keepdims=keepdims)
    p = float(ord)
    return _rd.sum(a ** p, axis=axis, keepdims=keepdims) ** (1 / p)


def _matrix_norm(x, ord, axis, keepdims):
    ord = concrete(ord, "dnp.linalg.norm", "ord", "a matrix norm's order picks one of a few "
                   "formulas (1, 2, inf, 'fro', 'nuc'), with no derivative in the order")
    row, col = axis
    if ord in (None, "fro", "f"):
        return P.vector_norm2.bind(x, axis=axis, keepdims=keepdims)
    if ord in (2, -2, "nuc"):
        rest = [i for i in range(x.ndim) if i not in axis]
        s = svdvals(_sh.transpose(x, (*rest, row, col)))
        r = _rd.sum(s, axis=-1) if ord == "nuc" else (
            _rd.max(s, axis=-1) if ord == 2 else _rd.min(s, axis=-1))
    elif ord in (1, -1, _INF, -_INF):
        if ord in (_INF, -_INF):
            row, col = col, row
        sums = _rd.sum(_el.abs(x), axis=row)
        col = col - 1 if col > row else col
        r = _rd.max(sums, axis=col) if ord > 0 else _rd.min(sums, axis=col)
    else:
        raise ValueError(f"Invalid norm order {ord!r} for matrices")
    return _sh.expand_dims(r, tuple(sorted(axis))) if keepdims else r
