"""NumPy kernels of the special primitives."""

KERNELS = {}
