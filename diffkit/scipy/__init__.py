"""`diffkit.scipy`: SciPy's names, differentiable (`diffkit.scipy.special`,
`diffkit.scipy.stats`). SciPy itself is needed only for the NumPy kernels of the special
functions beyond the erf and gamma basics: pip install 'diffkit[scipy]'."""

from diffkit.scipy import special, stats  # noqa: F401
