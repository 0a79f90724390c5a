"""NumPy kernels of the linalg primitives (batched over leading axes, as NumPy is).

lu_factor, solve_sylvester and sqrtm call `scipy.linalg` (the optional extra
`diffkit[scipy]`), imported on first use; without SciPy they say so.
"""

import numpy as np

from diffkit.errors import MissingKernelError


def _scipy_linalg(name: str):
    try:
        import scipy.linalg
    except ImportError:
        raise MissingKernelError(
            f"{name} on NumPy arrays needs SciPy, which is not installed: pip install "
            f"'diffkit[scipy]' (or use torch tensors, whose kernel needs no SciPy)") from None
    return scipy.linalg


def _eig(a):
    w, v = np.linalg.eig(a)
    dt = np.result_type(a.dtype, np.complex64)
    return w.astype(dt, copy=False), v.astype(dt, copy=False)


def _lu_factor(a):
    lu, piv = _scipy_linalg("lu_factor").lu_factor(a)
    return lu, piv


def _slogdet(a):
    sign, logabsdet = np.linalg.slogdet(a)
    return np.asarray(sign), np.asarray(logabsdet)


def _eigh(a, UPLO="L"):
    w, v = np.linalg.eigh(a, UPLO=UPLO)
    return w, v


def _svd(a, full_matrices=False):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return u, s, vh


def _qr(a):
    q, r = np.linalg.qr(a, mode="reduced")
    return q, r


KERNELS = {
    "eig": _eig,
    "qr_complete": lambda a: np.linalg.qr(a, mode="complete")[0],
    "lu_factor": _lu_factor,
    "solve_sylvester": lambda a, b, q: _scipy_linalg("solve_sylvester").solve_sylvester(
        a, b, q),
    "sqrtm": lambda a: _scipy_linalg("sqrtm").sqrtm(a),
    "inv": np.linalg.inv,
    "solve": np.linalg.solve,
    "det": lambda a: np.asarray(np.linalg.det(a)),
    "slogdet": _slogdet,
    "cholesky": np.linalg.cholesky,
    "eigh": _eigh,
    "svd": _svd,
    "qr": _qr,
    "pinv": lambda a, rtol=None: np.linalg.pinv(a, rtol=rtol),
    "matrix_rank": lambda a, rtol=None: np.asarray(np.linalg.matrix_rank(a, rtol=rtol)),
    "vector_norm2": lambda x, axis=None, keepdims=False: np.asarray(
        np.linalg.vector_norm(x, axis=axis, keepdims=keepdims)),
}
