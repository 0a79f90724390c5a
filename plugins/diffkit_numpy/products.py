"""NumPy kernels of the products primitives."""

KERNELS = {}
