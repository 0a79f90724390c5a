"""NumPy kernels of the linalg primitives."""

KERNELS = {}
