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


KERNELS = {
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
