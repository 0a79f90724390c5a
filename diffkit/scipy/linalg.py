"""`diffkit.scipy.linalg`: SciPy's linear-algebra functions, differentiable.

Triangular, Cholesky and banded solves read what SciPy reads (one triangle, the band)
and solve through `dnp.linalg.solve`; LU, the Sylvester equation and the square root are
primitives (diffkit/primitives/linalg_extra.py; SciPy kernels on NumPy arrays, torch
kernels on tensors); expm is scaling and squaring with Pade approximants (Higham 2005,
as SciPy and JAX), composed of matmul and solve, so every derivative order comes from it.
"""

from __future__ import annotations

import math

import numpy as np  # static indices and dtype bookkeeping

import diffkit.numpy as dnp
from diffkit.numpy._core import _value
from diffkit.primitives import linalg_extra as PX

__all__ = ["solve_triangular", "cho_factor", "cho_solve", "lu_factor", "lu_solve",
           "solve_banded", "solve_sylvester", "expm", "sqrtm", "block_diag", "eigh"]

_L = dnp.linalg


def _float(x, like=None):
    x = dnp.asarray(x, like=like)
    return x if dnp.iscomplexobj(x) or "float" in str(x.dtype) else dnp.astype(x, "float64")


def _square(fn: str, a):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{fn}: expected a square matrix, got shape {tuple(a.shape)}")


def _H(x):
    x = dnp.swapaxes(x, -1, -2)
    return dnp.conj(x) if dnp.iscomplexobj(x) else x


def _eye_like(a):
    return dnp.eye(a.shape[-1], dtype=a.dtype, like=a)


# -- triangular, Cholesky, LU and banded solves ---------------------------------------------
def _trans(trans):
    t = {0: "N", 1: "T", 2: "C", "N": "N", "T": "T", "C": "C"}.get(trans)
    if t is None:
        raise ValueError(f"solve_triangular: trans must be 0/'N', 1/'T' or 2/'C', got "
                         f"{trans!r}")
    return t


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """Solve op(a) x = b with op(a) = a, a.T or a.H, reading only a's `lower` (or upper)
    triangle, and its diagonal as ones if `unit_diagonal`."""
    a = _float(a)
    b = _float(b, like=a)
    _square("solve_triangular", a)
    t = dnp.tril(a, -1 if unit_diagonal else 0) if lower else \
        dnp.triu(a, 1 if unit_diagonal else 0)
    if unit_diagonal:
        t = t + _eye_like(t)
    op = _trans(trans)
    if op == "T":
        t = dnp.swapaxes(t, -1, -2)
    elif op == "C":
        t = _H(t)
    return _L.solve(t, b)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """(c, lower): the Cholesky factor in c's `lower` (or upper) triangle; the other
    triangle holds a's entries, as SciPy leaves them."""
    a = _float(a)
    _square("cho_factor", a)
    if lower:
        return _L.cholesky(a) + dnp.triu(a, 1), lower
    return _L.cholesky(a, upper=True) + dnp.tril(a, -1), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """Solve a x = b given cho_factor(a); only c's factor triangle is read."""
    c, lower = c_and_lower
    c = _float(c)
    b = _float(b, like=c)
    low = dnp.tril(c) if lower else _H(dnp.triu(c))
    return _L.solve(_H(low), _L.solve(low, b))


def lu_factor(a, overwrite_a=False, check_finite=True):
    """(lu, piv): P a = L U with L unit lower (below lu's diagonal) and U upper, piv the
    0-based row swaps (int32), as SciPy (LAPACK getrf). Differentiable in a."""
    a = _float(a)
    if a.ndim != 2:
        raise ValueError(f"lu_factor: expected one matrix (2-D), got shape {tuple(a.shape)}")
    _square("lu_factor", a)
    return PX.lu_factor.bind(a)


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """Solve a x = b (trans 0), a.T x = b (1) or a.H x = b (2) given lu_factor(a)."""
    lu, piv = lu_and_piv
    lu = _float(lu)
    b = _float(b, like=lu)
    perm = PX._permutation(piv)
    low = dnp.tril(lu, -1) + _eye_like(lu)
    up = dnp.triu(lu)
    op = _trans(trans)
    if op == "N":
        return _L.solve(up, _L.solve(low, b[perm]))
    t = (lambda m: dnp.swapaxes(m, -1, -2)) if op == "T" else _H
    return _L.solve(t(low), _L.solve(t(up), b))[np.argsort(perm)]


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """Solve a x = b for the banded a stored as ab[u + i - j, j] = a[i, j] (SciPy's
    layout); entries outside the band are never read."""
    nl, nu = (int(v) for v in l_and_u)
    ab = _float(ab)
    b = _float(b, like=ab)
    if ab.ndim != 2 or ab.shape[0] != nl + nu + 1:
        raise ValueError(f"solve_banded: invalid values for the number of lower and upper "
                         f"diagonals: l+u+1 ({nl + nu + 1}) does not equal ab.shape[0] "
                         f"({ab.shape[0] if ab.ndim else 'none'})")
    n = ab.shape[1]
    i, j = np.indices((n, n))
    band = (j - i <= nu) & (i - j <= nl)
    rows = np.where(band, nu + i - j, 0)
    dense = dnp.where(dnp.asarray(band, like=ab), ab[rows, j], 0)
    return _L.solve(dense, b)


# -- matrix equations and functions ---------------------------------------------------------
def solve_sylvester(a, b, q):
    """X with a X + X b = q (Bartels-Stewart in SciPy; one Kronecker system on torch)."""
    a = _float(a)
    b, q = _float(b, like=a), _float(q, like=a)
    _square("solve_sylvester (a)", a)
    _square("solve_sylvester (b)", b)
    if tuple(q.shape[-2:]) != (a.shape[-1], b.shape[-1]):
        raise ValueError(f"solve_sylvester: q must have shape ({a.shape[-1]}, {b.shape[-1]}), "
                         f"got {tuple(q.shape)}")
    return PX.solve_sylvester.bind(a, b, q)


def sqrtm(A, disp=True, blocksize=64):
    """The principal square root (real for a real matrix with no eigenvalue on the
    negative real axis, complex otherwise, as SciPy). Its derivative solves the Sylvester
    equation X dX + dX X = dA."""
    a = _float(A)
    _square("sqrtm", a)
    return PX.sqrtm.bind(a)


# Higham (2005), "The scaling and squaring method for the matrix exponential revisited":
# the largest 1-norm each Pade degree handles to double precision, and its coefficients.
_THETA = ((3, 1.495585217958292e-2), (5, 2.539398330063230e-1), (7, 9.504178996162932e-1),
          (9, 2.097847961257068e0))
_THETA13 = 5.371920351148152e0
_PADE = {
    3: (120.0, 60.0, 12.0, 1.0),
    5: (30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0),
    7: (17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0),
    9: (17643225600.0, 8821612800.0, 2075673600.0, 302702400.0, 30270240.0, 2162160.0,
        110880.0, 3960.0, 90.0, 1.0),
    13: (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
         129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0,
         40840800.0, 960960.0, 16380.0, 182.0, 1.0),
}


def expm(A):
    """The matrix exponential (batched over leading axes), by scaling and squaring with
    the Pade degree that the 1-norm allows, as SciPy."""
    a = _float(A)
    _square("expm", a)
    norm = float(_value(dnp.max(dnp.sum(dnp.abs(dnp.stop_gradient(a)), axis=-2))))
    for m, theta in _THETA:
        if norm <= theta:
            return _pade(a, m)
    s = max(0, math.ceil(math.log2(norm / _THETA13))) if norm > 0 else 0
    x = _pade(a / 2.0 ** s, 13)
    for _ in range(s):
        x = x @ x
    return x


def _pade(a, m: int):
    b = _PADE[m]
    eye = _eye_like(a)
    a2 = a @ a
    if m < 13:
        powers = [eye, a2]
        while len(powers) < (m + 1) // 2:
            powers.append(powers[-1] @ a2)
        u = a @ sum(b[2 * k + 1] * p for k, p in enumerate(powers))
        v = sum(b[2 * k] * p for k, p in enumerate(powers))
    else:
        a4 = a2 @ a2
        a6 = a4 @ a2
        u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4
                 + b[3] * a2 + b[1] * eye)
        v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 \
            + b[0] * eye
    return _L.solve(v - u, v + u)


# -- building and decomposing ---------------------------------------------------------------
def block_diag(*arrs):
    """The block-diagonal matrix of the given arrays (1-D ones are rows, scalars 1x1)."""
    if not arrs:
        return dnp.zeros((1, 0))
    blocks = [dnp.atleast_2d(dnp.asarray(x)) for x in arrs]
    for k, x in enumerate(blocks):
        if x.ndim != 2:
            raise ValueError(f"block_diag: arguments must have 2 or fewer dimensions; "
                             f"argument {k} has shape {tuple(x.shape)}")
    dtype = np.result_type(*(_np_dtype(x) for x in blocks))
    cols = [x.shape[1] for x in blocks]
    total, before = sum(cols), 0
    rows = []
    for x, c in zip(blocks, cols, strict=True):
        x = dnp.astype(x, dtype)
        parts = [dnp.zeros((x.shape[0], before), dtype=dtype, like=x), x,
                 dnp.zeros((x.shape[0], total - before - c), dtype=dtype, like=x)]
        rows.append(dnp.concatenate(parts, axis=1))
        before += c
    return dnp.concatenate(rows, axis=0)


def _np_dtype(x):
    dt = x.dtype
    return dt if isinstance(dt, np.dtype) else np.dtype(str(dt).removeprefix("torch."))


def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None,  # noqa: A002
         driver=None):
    """Eigenvalues (ascending) and vectors of a Hermitian a, or of the generalized problem
    with a positive definite b (type 1: a v = w b v; 2: a b v = w v; 3: b a v = w v),
    reading the `lower` (or upper) triangles, as SciPy. Vectors of the generalized problem
    are b-orthonormal. Derivatives as dnp.linalg.eigh (vector terms divide by gaps)."""
    a = _float(a)
    uplo = "L" if lower else "U"
    if b is None:
        w, v = _L.eigh(a, uplo)
    else:
        if type not in (1, 2, 3):
            raise ValueError(f"eigh: type must be 1, 2 or 3, got {type!r}")
        b = _float(b, like=a)
        low = _L.cholesky(b) if lower else _H(_L.cholesky(b, upper=True))
        sym = dnp.tril(a) + _H(dnp.tril(a, -1)) if lower else dnp.triu(a) + _H(dnp.triu(a, 1))
        c = _L.solve(low, _H(_L.solve(low, sym))) if type == 1 else _H(low) @ sym @ low
        w, y = _L.eigh(c)
        v = low @ y if type == 3 else _L.solve(_H(low), y)
    if subset_by_index is not None:
        lo, hi = (int(i) for i in subset_by_index)
        w, v = w[..., lo:hi + 1], v[..., lo:hi + 1]
    elif subset_by_value is not None:
        lo, hi = subset_by_value
        w0 = dnp.stop_gradient(w)
        keep = dnp.flatnonzero((w0 > lo) & (w0 <= hi))  # SciPy's half-open (lo, hi]
        w, v = w[..., keep], v[..., keep]
    return w if eigvals_only else (w, v)
