"""Linear-algebra primitives: inverses, solves, determinants and the decompositions.

Everything is batched over leading axes (the matrix is the last two). Complex numbers
follow JAX: a VJP is the plain transpose (no conjugation) of the R-linear JVP under the
pairing Re(sum(u * v)); every rule here accepts complex input. Eigen- and singular vectors
of complex matrices are unique up to a phase each: the JVPs fix it as JAX does (v_i^H dv_i
real for eigh and for svd's V, the imaginary diagonal term in U), so only phase-invariant
losses (|v|^2, U diag(s) V^H, projectors) have a meaningful derivative.

The decompositions that read one triangle (cholesky, eigh) are differentiated as the
kernels compute them: a perturbation of the unread triangle changes nothing (nor, for
complex input, of the diagonal's imaginary part: LAPACK ignores it), so the tangent seen
is the Hermitian completion of the read triangle, and a cotangent lands on the read
triangle only (off-diagonal entries doubled, for a Hermitian cotangent).
"""

from __future__ import annotations

import numpy as np  # static diagonal indices and sample data

from diffkit.core.primitive import Primitive
from diffkit.core.rules import nondiff
from diffkit.core.tracer import Tracer
from diffkit.core.zeros import is_zero
from diffkit.errors import RuleError
from diffkit.primitives.creation import eye, ones_like
from diffkit.primitives.elementwise import abs as absolute
from diffkit.primitives.elementwise import conj, imag, is_complex, real, stop_gradient, where
from diffkit.primitives.indexing import getitem
from diffkit.primitives.reductions import _others, prod, sum_over
from diffkit.primitives.reductions import max as amax
from diffkit.primitives.sampling import cases
from diffkit.primitives.shape import expand, swap_last, tril, triu


# -- helpers (diffkit operations only) -------------------------------------------------------
def _T(x):
    return swap_last(x)


def _H(x):
    return conj(_T(x)) if is_complex(x) else _T(x)


def _conj(x):
    return conj(x) if is_complex(x) else x


def _eye(n, like):
    base = like._base() if isinstance(like, Tracer) else like
    return eye.bind(base, N=n, M=n, k=0, dtype=like.dtype)


def _diag(x):
    i = np.arange(min(x.shape[-2:]))
    return getitem.bind(x, idx=(Ellipsis, i, i))


def _diag_embed(v, like=None):
    """diag(v), batched, of `like`'s dtype if given (torch's matmul wants equal dtypes)."""
    return v[..., None, :] * _eye(v.shape[-1], v if like is None else like)


def _real_diag(x):
    """x with the imaginary part of its diagonal dropped (a no-op for real x)."""
    if not is_complex(x):
        return x
    return x - 1j * _diag_embed(imag(_diag(x)))


def _sym_from(t, uplo):
    """The Hermitian matrix the kernel sees when it reads only the `uplo` triangle of t."""
    if uplo == "L":
        return _real_diag(tril.bind(t, k=0) + _H(tril.bind(t, k=-1)))
    return _real_diag(triu.bind(t, k=0) + _H(triu.bind(t, k=1)))


def _sym_from_T(s, uplo):
    """Transpose of `_sym_from`: the cotangent lands on the read triangle."""
    if uplo == "L":
        return _real_diag(tril.bind(s, k=0) + tril.bind(_H(s), k=-1))
    return _real_diag(triu.bind(s, k=0) + triu.bind(_H(s), k=1))


def _inv_gap(w):
    """F[i, j] = 1 / (w[j] - w[i]), and 0 where w[j] and w[i] agree to rounding (the
    diagonal, and repeated values: their block is a gauge freedom, and 0 is the limit of
    the rules for losses that do not depend on the basis chosen inside it, such as
    projectors; a ~1e-16 gap would otherwise multiply rounding errors by 1e16)."""
    d = w[..., None, :] - w[..., :, None]
    rel = 1e-5 if any(k in str(w.dtype) for k in ("16", "32")) else 1e-12
    scale = stop_gradient(amax.bind(absolute(w), axis=-1, keepdims=True))[..., None]
    same = absolute(d) <= rel * scale
    return where(same, 0, 1 / where(same, 1, d))


# -- test inputs (NumPy arrays: sampling domains feed the generic checker) ---------------
def _wellcond(r, shape):
    """A random matrix (stack) made well conditioned by a dominant diagonal."""
    return r.normal(size=shape) + shape[-1] * np.eye(shape[-1])


# -- inverse, solve, determinants -------------------------------------------------------------
inv = Primitive(
    "inv",
    jvp=(lambda t, ans, a: -(ans @ t @ ans),),
    vjp=(lambda g, ans, _a: -(_T(ans) @ g @ _T(ans)),),
    saves_args=False,
    sample=cases(
        (lambda r: (_wellcond(r, (3, 3)),), {}),
        (lambda r: (_wellcond(r, (2, 3, 3)),), {}),
    ),
)


def _solve_vjp_b(g, _ans, a, _b):
    return solve.bind(_T(a), g)


solve = Primitive(
    "solve",  # b is a stack of matrices (..., M, K); the user function handles vectors
    jvp=(lambda t, ans, a, b: -solve.bind(a, t @ ans), lambda t, ans, a, b: solve.bind(a, t)),
    vjp=(lambda g, ans, a, b: -(_solve_vjp_b(g, ans, a, b) @ _T(ans)), _solve_vjp_b),
    sample=cases(
        (lambda r: (_wellcond(r, (3, 3)), r.normal(size=(3, 2))), {}),
        (lambda r: (_wellcond(r, (2, 3, 3)), r.normal(size=(3, 1))), {}),
    ),
)


def _trace_inv_t(a, t):
    """tr(a^-1 t), batched: the derivative of log det."""
    return sum_over(_T(inv.bind(a)) * t, (-2, -1))


def _raw(x):
    """A value as data (no derivative; recorded by a program being traced)."""
    return x._value() if isinstance(x, Tracer) else x


def _near_singular(a, d) -> bool:
    """True if some |det| is below 1e-5 (float32: 1e-2) times Hadamard's bound prod
    ||column||: det * inv(a) has a relative error ~ eps * cond(a), so it stays within
    ~1e-11 (1e-5) of adj(a) above that, and inv fails at an exactly singular matrix."""
    a, d = _raw(a), _raw(d)  # plain arrays: their own operators, no dispatch (~12 us)
    cplx = is_complex(a)
    squares = real(a * a.conj()) if cplx else a * a
    bound2 = prod.bind(sum_over(squares, -2), axis=-1)  # Hadamard's bound, squared
    tol = 1e-2 if a.dtype.itemsize <= (8 if cplx else 4) else 1e-5  # single/half precision
    return not bool((abs(d) ** 2 > tol * tol * bound2).all())


def _adjugate(a, d):
    """adj(a) = det(a) inv(a), also where a is singular (d det = tr(adj(a) da)). Near
    singular it comes from the SVD a = U S Vh: adj(a) = det(Vh) det(U) V diag(prod_{j!=i}
    s_j) U^H, which has no division (JAX uses an LU cofactor solve to the same end)."""
    if not _near_singular(a, d):
        return d[..., None, None] * inv.bind(a)
    if is_complex(a) and isinstance(a, Tracer):
        # phase and V diag(..) U^H each turn as 1/s_min there (|det| is not smooth at 0),
        # cancelling only to ~1e-3: refuse rather than return a wrong second derivative
        raise RuleError(
            f"the second derivative of det at a (near-)singular complex matrix (shape "
            f"{tuple(a.shape)}) is not supported; the first derivative is. Perturb the "
            f"matrix away from singularity, or differentiate det of a real matrix.")
    u, s, vh = svd.bind(a, full_matrices=False)
    phase = det.bind(u) * det.bind(vh)
    return phase[..., None, None] * (_H(vh) * _others(s, -1)[..., None, :]) @ _H(u)


det = Primitive(
    "det",
    jvp=(lambda t, ans, a: sum_over(_T(_adjugate(a, ans)) * t, (-2, -1)),),
    vjp=(lambda g, ans, a: g[..., None, None] * _T(_adjugate(a, ans)),),
    subgradient="none needed: the rules use the adjugate (an SVD near singular matrices), "
                "so the derivative at a singular matrix is adj(a)^T, not inf or 0",
    sample=cases(
        (lambda r: (_wellcond(r, (3, 3)),), {}),
        (lambda r: (_wellcond(r, (2, 2, 2)),), {}),
        (lambda r: (_rank_deficient(r, (3, 3), 2),), {}),
    ),
)


def _rank_deficient(r, shape, rank):
    """A product of random factors of inner size `rank` (distinct singular values)."""
    return r.normal(size=shape[:-1] + (rank,)) @ r.normal(size=(rank, shape[-1]))


def _slogdet_jvp(tangents, ans, a):
    d = _trace_inv_t(a, tangents[0])
    return None, real(d) if is_complex(d) else d


def _slogdet_vjp(g, ans, a):
    if is_zero(g[1]):
        return (None,)
    return (g[1][..., None, None] * _T(inv.bind(a)),)


slogdet = Primitive(
    "slogdet",  # (sign, logabsdet); the sign is piecewise constant: no derivative
    jvp=_slogdet_jvp, vjp=_slogdet_vjp, multiple_results=True,
    sample=cases((lambda r: (_wellcond(r, (3, 3)),), {}),
                 (lambda r: (-_wellcond(r, (2, 3, 3)),), {})),
)


# -- Cholesky, eigh ---------------------------------------------------------------------------
def _phi(x):
    """Lower triangle with the diagonal halved."""
    return tril.bind(x, k=0) - 0.5 * x * _eye(x.shape[-1], x)


def _cholesky_jvp(t, ans, a):
    linv = inv.bind(ans)
    return ans @ _phi(linv @ _sym_from(t, "L") @ _H(linv))


def _cholesky_vjp(g, ans, a):
    linv = inv.bind(ans)
    return _sym_from_T(_T(linv) @ _phi(_T(ans) @ g) @ _conj(linv), "L")


def _spd(r, shape, cplx=False):
    """Symmetric (Hermitian, for cplx) positive definite."""
    x = r.normal(size=shape) + (1j * r.normal(size=shape) if cplx else 0)
    return x @ x.swapaxes(-1, -2).conj() + shape[-1] * np.eye(shape[-1])


cholesky = Primitive(
    "cholesky", jvp=(_cholesky_jvp,), vjp=(_cholesky_vjp,),
    sample=cases((lambda r: (_spd(r, (3, 3)),), {}), (lambda r: (_spd(r, (2, 3, 3)),), {}),
                 (lambda r: (_spd(r, (3, 3), cplx=True),), {})),
)


def _eigh_jvp(tangents, ans, a, UPLO="L"):
    w, v = ans
    m = _H(v) @ _sym_from(tangents[0], UPLO) @ v
    dw = _diag(m)
    return real(dw) if is_complex(dw) else dw, v @ (_inv_gap(w) * m)


def _eigh_vjp(g, ans, a, UPLO="L"):
    w, v = ans
    gw, gv = g
    inner = 0
    if not is_zero(gw):
        inner = _diag_embed(gw, like=v)
    if not is_zero(gv):
        inner = inner + _inv_gap(w) * (_T(v) @ gv)
    return (_sym_from_T(_conj(v) @ inner @ _T(v), UPLO),)


def _sym(r, shape):
    x = r.normal(size=shape)
    return x + x.swapaxes(-1, -2)


eigh = Primitive(
    "eigh", jvp=_eigh_jvp, vjp=_eigh_vjp, multiple_results=True,
    subgradient="at exactly repeated eigenvalues, the eigenvector terms of that block are "
                "0 (right for basis-invariant losses); near-repeated ones amplify as 1/gap",
    sample=cases((lambda r: (_sym(r, (3, 3)),), {}),
                 (lambda r: (_sym(r, (2, 3, 3)),), {"UPLO": "U"})),
)


# -- SVD, QR ----------------------------------------------------------------------------------
def _check_svd(a, full_matrices):
    m, n = a.shape[-2:]
    if full_matrices and m != n:
        raise RuleError(
            f"the derivative of svd(full_matrices=True) of a non-square {m}x{n} matrix is "
            f"not unique (the extra singular vectors are arbitrary); use full_matrices=False"
        )
    return m, n


def _svd_jvp(tangents, ans, a, full_matrices=False):
    """Townsend (2016), "Differentiating the singular value decomposition"; JAX's form,
    with its phase choice for complex input: Im diag(U^H dA V) / s goes to U alone."""
    m, n = _check_svd(a, full_matrices)
    u, s, vh = ans
    t = tangents[0]
    v = _H(vh)
    tv = t @ v
    ds_mat = _H(u) @ tv
    f = _inv_gap(s * s)
    dss = ds_mat * s[..., None, :]
    sds = s[..., :, None] * ds_mat
    ou = f * (dss + _H(dss))
    ds = _diag(ds_mat)
    if is_complex(ds):
        ds = real(ds)
        ou = ou + 1j * _diag_embed(imag(_diag(ds_mat)) / s)
    du = u @ ou
    dv = v @ (f * (sds + _H(sds)))
    if m > n:
        du = du + (tv - u @ (_H(u) @ tv)) / s[..., None, :]
    if n > m:
        tu = _H(t) @ u
        dv = dv + (tu - v @ (vh @ tu)) / s[..., None, :]
    return du, ds, _H(dv)


def _svd_vjp(g, ans, a, full_matrices=False):
    """The transpose of `_svd_jvp`; for complex input A-bar = conj(U) K V^T (K the
    cotangent of U^H dA V), written as the real case with conjugations."""
    m, n = _check_svd(a, full_matrices)
    u, s, vh = ans
    gu, gs, gvh = g
    inner = 0
    if not is_zero(gs):
        inner = _diag_embed(gs, like=u)
    if not is_zero(gu):
        utgu = _T(u) @ gu
        inner = inner + (_inv_gap(s * s) * (utgu - _H(utgu))) * s[..., None, :]
        if is_complex(utgu):
            inner = inner + 1j * _diag_embed(imag(_diag(utgu)) / s)
    if not is_zero(gvh):
        v, gv = _H(vh), _H(gvh)
        vtgv = _conj(vh) @ gv
        inner = inner + s[..., :, None] * (_inv_gap(s * s) * (vtgv - _H(vtgv)))
    ga = _conj(u) @ inner @ _conj(vh)
    if m > n and not is_zero(gu):
        ga = ga + ((gu - _conj(u) @ (_T(u) @ gu)) / s[..., None, :]) @ _conj(vh)
    if n > m and not is_zero(gvh):
        ga = ga + _conj(u) @ _H((gv - _conj(v) @ (_T(v) @ gv)) / s[..., None, :])
    return (ga,)


svd = Primitive(
    "svd", jvp=_svd_jvp, vjp=_svd_vjp, multiple_results=True,
    subgradient="as eigh at exactly repeated singular values; singular vectors of a "
                "rectangular matrix divide by the values (undefined at 0)",
    sample=cases((lambda r: (r.normal(size=(3, 3)),), {}),
                 (lambda r: (r.normal(size=(4, 2)),), {}),
                 (lambda r: (r.normal(size=(2, 2, 3)),), {})),
)


def _check_qr(a):
    m, n = a.shape[-2:]
    if m < n:
        raise RuleError(
            f"the derivative of qr is defined for square and tall matrices; got {m}x{n} "
            f"(R's trailing columns have no unique derivative). Differentiate qr(a.T) instead."
        )


def _qr_jvp(tangents, ans, a):
    """JAX's rule; for complex input R's diagonal stays real, as LAPACK returns it, by
    the imaginary diagonal term of Q^H dQ."""
    _check_qr(a)
    q, r = ans
    t_rinv = _T(solve.bind(_T(r), _T(tangents[0])))
    qt = _H(q) @ t_rinv
    low = tril.bind(qt, k=-1)
    do = low - _H(low)
    if is_complex(qt):
        do = do + 1j * _diag_embed(imag(_diag(qt)))
    return q @ (do - qt) + t_rinv, (qt - do) @ r


def _qr_vjp(g, ans, a):
    """Walter & Lehmann (2018); Liao et al. (2019): Ā = (Q̄ + conj(Q copyltu(M))) R⁻ᵀ,
    copyltu(M) Hermitian from M's lower triangle with a real diagonal."""
    _check_qr(a)
    q, r = ans
    gq, gr = g
    m = 0
    if not is_zero(gr):
        m = r @ _T(gr)
    if not is_zero(gq):
        m = m - _T(gq) @ q
    x = _conj(q @ _real_diag(tril.bind(m, k=0) + _H(tril.bind(m, k=-1))))
    if not is_zero(gq):
        x = x + gq
    return (_T(solve.bind(r, _T(x))),)


qr = Primitive(
    "qr", jvp=_qr_jvp, vjp=_qr_vjp, multiple_results=True,  # mode="reduced"
    sample=cases((lambda r: (r.normal(size=(3, 3)),), {}),
                 (lambda r: (r.normal(size=(2, 4, 3)),), {}),
                 (lambda r: (r.normal(size=(3, 2)) + 1j * r.normal(size=(3, 2)),), {})),
)


# -- pseudo-inverse, rank ---------------------------------------------------------------------
def _pinv_jvp(t, ans, a, rtol=None):
    """Golub & Pereyra (1973), valid while the rank is constant:
    dP = -P dA P + P P^H dA^H (I - A P) + (I - P A) dA^H P^H P."""
    p = ans
    th = _H(t)
    w = th @ (_H(p) @ p)
    return -(p @ t @ p) + (p @ _H(p)) @ (th - (th @ a) @ p) + (w - p @ (a @ w))


def _pinv_vjp(g, ans, a, rtol=None):
    p = ans
    gt = _T(g)
    y = gt @ (p @ _H(p))
    z = (_H(p) @ p) @ gt
    return -(_T(p) @ g @ _T(p)) + _conj(y - a @ (p @ y)) + _conj(z - (z @ p) @ a)


pinv = Primitive(
    "pinv", jvp=(_pinv_jvp,), vjp=(_pinv_vjp,),
    subgradient="the derivative holds where the rank is locally constant (none at a change)",
    sample=cases((lambda r: (r.normal(size=(3, 3)),), {}),
                 (lambda r: (r.normal(size=(4, 2)),), {}),
                 (lambda r: (r.normal(size=(2, 2, 3)),), {})),
)

matrix_rank = nondiff("matrix_rank", sample=cases((lambda r: (r.normal(size=(3, 3)),), {})))


# -- the vector 2-norm (its own primitive for the gradient 0 at 0) --------------------------
def _norm2_cot(g, ans, x, axis, keepdims):
    if not keepdims:
        axes = tuple(range(x.ndim)) if axis is None else axis
        g, ans = expand(g, axes), expand(ans, axes)
    return g * _conj(x) / where(ans == 0, 1, ans)


def _norm2_jvp(t, ans, x, axis=None, keepdims=False):
    d = _norm2_cot(ones_like(ans), ans, x, axis, keepdims) * t
    return sum_over(real(d) if is_complex(d) else d, axis, keepdims)


vector_norm2 = Primitive(
    "vector_norm2",  # sqrt(sum(|x|**2)) over `axis` (a tuple, or None for all)
    jvp=(_norm2_jvp,),
    vjp=(lambda g, ans, x, axis=None, keepdims=False: _norm2_cot(g, ans, x, axis, keepdims),),
    subgradient="0 where the norm is 0 (the minimum-norm subgradient)",
    sample=cases((lambda r: (r.normal(size=(4,)),), {}),
                 (lambda r: (r.normal(size=(2, 3)),), {"axis": (1,)}),
                 (lambda r: (r.normal(size=(2, 3, 2)),), {"axis": (0, 2), "keepdims": True})),
)

PRIMITIVES = (inv, solve, det, slogdet, cholesky, eigh, svd, qr, pinv, matrix_rank,
              vector_norm2)
