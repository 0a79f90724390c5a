"""NumPy kernels of the products primitives."""

import numpy as np


def _einsum(*ops, subscripts):
    # optimize=True picks a contraction order and uses BLAS (tensordot) where it can, but
    # its path search costs ~20 us: worth it for 3+ operands or large ones, not tiny pairs.
    big = len(ops) > 2 or (len(ops) == 2 and ops[0].size + ops[1].size > 4096)
    return np.einsum(subscripts, *ops, optimize=big)


KERNELS = {
    "matmul": np.matmul,
    "einsum": _einsum,
}
