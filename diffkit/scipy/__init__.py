"""`diffkit.scipy`: SciPy's names, differentiable (`diffkit.scipy.special`,
`diffkit.scipy.stats`, `diffkit.scipy.signal`, `diffkit.scipy.linalg`). SciPy itself is
needed only for some NumPy kernels (special functions beyond the erf and gamma basics;
lu_factor, solve_sylvester, sqrtm): pip install 'diffkit[scipy]'."""

from diffkit.scipy import linalg, signal, special, stats  # noqa: F401
