"""`diffkit.scipy`: SciPy's names, differentiable (`diffkit.scipy.special`)."""

from diffkit.scipy import special  # noqa: F401
