"""NumPy kernels of the creation primitives (`like` only selects this backend)."""

import numpy as np


def _dt(dtype):
    """NumPy dtype for None, a NumPy dtype/type/name, or another backend's dtype."""
    if dtype is None or isinstance(dtype, np.dtype | type | str):
        return dtype
    name = str(dtype).removeprefix("torch.")
    return np.bool_ if name == "bool" else np.dtype(name)


KERNELS = {
    "zeros_like": lambda a, dtype=None, shape=None: np.zeros_like(a, dtype=_dt(dtype),
                                                                  shape=shape),
    "ones_like": lambda a, dtype=None, shape=None: np.ones_like(a, dtype=_dt(dtype),
                                                                shape=shape),
    "full_like": lambda a, fill_value, dtype=None, shape=None: np.full_like(
        a, fill_value, dtype=_dt(dtype), shape=shape),
    "zeros": lambda like, shape, dtype=None: np.zeros(shape, dtype=_dt(dtype)),
    "ones": lambda like, shape, dtype=None: np.ones(shape, dtype=_dt(dtype)),
    "full": lambda like, shape, fill_value, dtype=None: np.full(shape, fill_value,
                                                                dtype=_dt(dtype)),
    "eye": lambda like, N, M, k, dtype=None: np.eye(N, M, k, dtype=_dt(dtype) or float),
    "tri": lambda like, N, M, k, dtype=None: np.tri(N, M, k, dtype=_dt(dtype) or float),
    "arange": lambda like, start, stop, step, dtype=None: np.arange(start, stop, step,
                                                                    dtype=_dt(dtype)),
    "linspace": lambda like, start, stop, num, endpoint, dtype, axis: np.linspace(
        start, stop, num, endpoint=endpoint, dtype=_dt(dtype), axis=axis),
}
