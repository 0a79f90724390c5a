"""NumPy kernels of the fft primitives."""

KERNELS = {}
