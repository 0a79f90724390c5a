"""NumPy kernels of the indexing primitives."""

KERNELS = {}
