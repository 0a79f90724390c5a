"""More linear-algebra primitives (issue 13): eig (general matrices, complex results),
the complete Q of a tall QR, LU with partial pivoting, the Sylvester equation and the
principal matrix square root. Conventions as in linalg.py: complex numbers as JAX (a VJP
is the plain transpose of the JVP under Re(sum(u * v))); kernels in the backends'
linalg modules.
"""

from __future__ import annotations

import numpy as np  # static permutation indices and sample data

from diffkit.core.primitive import Primitive
from diffkit.core.rules import nondiff
from diffkit.core.zeros import is_zero
from diffkit.errors import RuleError
from diffkit.primitives.elementwise import abs as absolute
from diffkit.primitives.elementwise import conj, equal, imag, real, stop_gradient, where
from diffkit.primitives.indexing import getitem
from diffkit.primitives.linalg import _T, _diag, _diag_embed, _eye, _raw, _wellcond, solve
from diffkit.primitives.products import matmul
from diffkit.primitives.reductions import max as amax
from diffkit.primitives.reductions import sum_over
from diffkit.primitives.sampling import cases
from diffkit.primitives.shape import tril, triu


# -- eig ----------------------------------------------------------------------------------
def _gaps(w):
    """F[i, j] = 1 / (w[j] - w[i]); 0 on the diagonal and where two eigenvalues agree to
    rounding (no derivative of the vectors exists there)."""
    d = w[..., None, :] - w[..., :, None]
    rel = 1e-5 if any(k in str(w.dtype) for k in ("float32", "complex64")) else 1e-12
    scale = stop_gradient(amax.bind(absolute(w), axis=-1, keepdims=True))[..., None]
    same = absolute(d) <= rel * scale
    return where(same, 0, 1 / where(same, 1, d))


def _pivots(v):
    """1 at the largest-modulus entry of each eigenvector (LAPACK makes it real), else 0."""
    m = stop_gradient(absolute(v))
    return where(equal(m, amax.bind(m, axis=-2, keepdims=True)), 1.0, 0.0)


def _eig_jvp(tangents, ans, a):
    """dw = diag(V^-1 dA V); dV = V (F o V^-1 dA V), then kept unit-norm and with the
    largest entry real (LAPACK's normalization, so it matches finite differences)."""
    w, v = ans
    x = solve.bind(v, matmul.bind(tangents[0], v))  # a real tangent meets complex v
    dv = v @ (_gaps(w) * x)
    dv = dv - v * real(sum_over(conj(v) * dv, -2, keepdims=True))
    m = _pivots(v)
    pivot = sum_over(m * v, -2, keepdims=True)
    dv = dv - 1j * v * imag(sum_over(m * dv, -2, keepdims=True) / pivot)
    return _diag(x), dv


def _eig_vjp(g, ans, a):
    w, v = ans
    gw, gv = g
    gx = 0
    if not is_zero(gv):
        m = _pivots(v)
        pivot = sum_over(m * v, -2, keepdims=True)
        gv = gv + m * (1j * real(sum_over(gv * 1j * v, -2, keepdims=True)) / pivot)
        gv = gv - conj(v) * real(sum_over(gv * v, -2, keepdims=True))
        gx = _gaps(w) * (_T(v) @ gv)
    if not is_zero(gw):
        gx = gx + _diag_embed(gw)
    return (solve.bind(_T(v), gx @ _T(v)),)


eig = Primitive(
    "eig", jvp=_eig_jvp, vjp=_eig_vjp, multiple_results=True,
    subgradient="eigenvector terms of (numerically) repeated eigenvalues are 0; vectors "
                "keep LAPACK's normalization (unit norm, largest entry real)",
    sample=cases((lambda r: (r.normal(size=(3, 3)),), {}),
                 (lambda r: (r.normal(size=(2, 3, 3)) + 1j * r.normal(size=(2, 3, 3)),), {})),
)

# the complete Q of a tall QR (no derivative: the namespace attaches one to its columns)
qr_complete = nondiff("qr_complete", sample=cases((lambda r: (r.normal(size=(4, 2)),), {})))


# -- LU with partial pivoting (LAPACK getrf: P A = L U, packed as lu = L - I + U) -------------
def _permutation(piv) -> np.ndarray:
    """The row order P A = A[perm] from LAPACK's sequential swaps (0-based piv)."""
    piv = np.asarray(_raw(piv).tolist(), dtype=np.int64)
    perm = np.arange(piv.shape[-1])
    for i, p in enumerate(piv):
        perm[i], perm[p] = perm[p], perm[i]
    return perm


def _lu_parts(lu):
    n = lu.shape[-1]
    return tril.bind(lu, k=-1) + _eye(n, lu), triu.bind(lu, k=0)


def _check_lu(a):
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise RuleError(f"the derivative of lu_factor is defined for one square matrix; got "
                        f"shape {tuple(a.shape)}")


def _lu_jvp(tangents, ans, a):
    """X = L^-1 P dA U^-1: dL = L tril(X, -1), dU = triu(X) U."""
    _check_lu(a)
    lu, piv = ans
    low, up = _lu_parts(lu)
    x = solve.bind(low, getitem.bind(tangents[0], idx=(_permutation(piv),)))
    x = _T(solve.bind(_T(up), _T(x)))
    return low @ tril.bind(x, k=-1) + triu.bind(x, k=0) @ up, None


def _lu_vjp(g, ans, a):
    _check_lu(a)
    lu, piv = ans
    low, up = _lu_parts(lu)
    glu = g[0]
    gx = tril.bind(_T(low) @ glu, k=-1) + triu.bind(glu @ _T(up), k=0)
    z = _T(solve.bind(up, _T(solve.bind(_T(low), gx))))
    return (getitem.bind(z, idx=(np.argsort(_permutation(piv)),)),)


lu_factor = Primitive(
    "lu_factor", jvp=_lu_jvp, vjp=_lu_vjp, multiple_results=True,  # (lu, piv), piv 0-based
    subgradient="the pivot order is piecewise constant (no derivative in piv)",
    sample=cases((lambda r: (r.normal(size=(4, 4)),), {})),
)


# -- Sylvester equation A X + X B = Q, and the square root X X = A ----------------------------
def _sylvester_vjp_q(g, ans, a, b, q):
    return solve_sylvester.bind(_T(a), _T(b), g)


solve_sylvester = Primitive(
    "solve_sylvester",
    jvp=(lambda t, ans, a, b, q: solve_sylvester.bind(a, b, -matmul.bind(t, ans)),
         lambda t, ans, a, b, q: solve_sylvester.bind(a, b, -matmul.bind(ans, t)),
         lambda t, ans, a, b, q: solve_sylvester.bind(a, b, t)),
    vjp=(lambda g, ans, a, b, q: -matmul.bind(_sylvester_vjp_q(g, ans, a, b, q), _T(ans)),
         lambda g, ans, a, b, q: -matmul.bind(_T(ans), _sylvester_vjp_q(g, ans, a, b, q)),
         _sylvester_vjp_q),
    sample=cases((lambda r: (_wellcond(r, (3, 3)), _wellcond(r, (2, 2)),
                             r.normal(size=(3, 2))), {}),
                 (lambda r: (_wellcond(r, (2, 2)) + 1j * r.normal(size=(2, 2)),
                             _wellcond(r, (3, 3)), r.normal(size=(2, 3))), {})),
)


def _spd(r, n):
    x = r.normal(size=(n, n))
    return x @ x.T + n * np.eye(n)


sqrtm = Primitive(
    "sqrtm",  # the principal square root; X dX + dX X = dA
    jvp=(lambda t, ans, a: solve_sylvester.bind(ans, ans, t),),
    vjp=(lambda g, ans, _a: solve_sylvester.bind(_T(ans), _T(ans), g),),
    saves_args=False,
    sample=cases((lambda r: (_spd(r, 3),), {}),
                 (lambda r: (_wellcond(r, (3, 3)) + 1j * r.normal(size=(3, 3)),), {})),
)


PRIMITIVES = (eig, qr_complete, lu_factor, solve_sylvester, sqrtm)
