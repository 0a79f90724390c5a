"""NumPy kernels of the creation primitives."""

import numpy as np

KERNELS = {
    "zeros_like": lambda a, dtype=None, shape=None: np.zeros_like(a, dtype=dtype, shape=shape),
    "ones_like": lambda a, dtype=None, shape=None: np.ones_like(a, dtype=dtype, shape=shape),
    "full_like": lambda a, fill_value, dtype=None, shape=None: np.full_like(
        a, fill_value, dtype=dtype, shape=shape),
}
