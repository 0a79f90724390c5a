"""Torch kernels of the linalg primitives (`torch.linalg`, batched over leading axes).

Inputs arrive as floating arrays (the user functions cast them); mixed dtypes are
promoted, as NumPy does. Eigen- and singular vectors are unique only up to sign (phase):
torch and NumPy call the same LAPACK routines on CPU, but a GPU may pick other signs —
the rules only use sign-invariant quantities.
"""

from __future__ import annotations

import torch


def _solve(a, b):
    if a.dtype != b.dtype:
        dt = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dt), b.to(dt)
    if b.ndim == a.ndim - 1:
        # b is a stack of matrices (NumPy 2); torch would read this shape as vectors
        b = torch.broadcast_to(b, a.shape[:-2] + b.shape)
    return torch.linalg.solve(a, b)


def _vector_norm2(x, axis=None, keepdims=False):
    if not (x.is_floating_point() or x.is_complex()):
        x = x.to(torch.float64)
    return torch.linalg.vector_norm(x, ord=2, dim=axis, keepdim=keepdims)


def _lu_factor(a):
    lu, piv = torch.linalg.lu_factor(a)
    return lu, (piv - 1).to(torch.int32)  # SciPy's 0-based int32 pivots


def _solve_sylvester(a, b, q):
    """A X + X B = Q as one linear system (I kron A + B^T kron I) vec X = vec Q: torch has
    no Schur decomposition (Bartels-Stewart); O((mn)^3), fine for small matrices."""
    dt = torch.promote_types(torch.promote_types(a.dtype, b.dtype), q.dtype)
    a, b, q = a.to(dt).contiguous(), b.to(dt).mT.contiguous(), q.to(dt)
    m, n = q.shape[-2:]
    k = (torch.kron(torch.eye(n, dtype=dt, device=a.device), a)
         + torch.kron(b, torch.eye(m, dtype=dt, device=a.device)))
    x = torch.linalg.solve(k, q.mT.reshape(*q.shape[:-2], m * n, 1))
    return x.reshape(*q.shape[:-2], n, m).mT


def _sqrtm(a):
    """V sqrt(diag w) V^-1 (principal branch), real when `a` is real with no eigenvalue on
    the closed negative real axis, as SciPy's; needs a well-conditioned eigenbasis."""
    w, v = torch.linalg.eig(a)
    x = v @ torch.diag_embed(torch.sqrt(w)) @ torch.linalg.inv(v)
    if not a.is_complex() and not bool(((w.imag == 0) & (w.real < 0)).any()):
        return x.real.to(a.dtype)
    return x


KERNELS = {
    "eig": lambda a: tuple(torch.linalg.eig(a)),
    "qr_complete": lambda a: torch.linalg.qr(a, mode="complete")[0],
    "lu_factor": _lu_factor,
    "solve_sylvester": _solve_sylvester,
    "sqrtm": _sqrtm,
    "inv": torch.linalg.inv,
    "solve": _solve,
    "det": torch.linalg.det,
    "slogdet": lambda a: tuple(torch.linalg.slogdet(a)),
    "cholesky": torch.linalg.cholesky,
    "eigh": lambda a, UPLO="L": tuple(torch.linalg.eigh(a, UPLO=UPLO)),
    "svd": lambda a, full_matrices=False: tuple(
        torch.linalg.svd(a, full_matrices=full_matrices)),
    "qr": lambda a: tuple(torch.linalg.qr(a, mode="reduced")),
    "pinv": lambda a, rtol=None: torch.linalg.pinv(a, rtol=rtol),
    "matrix_rank": lambda a, rtol=None: torch.linalg.matrix_rank(a, rtol=rtol),
    "vector_norm2": _vector_norm2,
}
