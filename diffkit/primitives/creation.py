"""Array creation: constants carry no derivative.

Each primitive takes the array to imitate (or None) as its first positional argument,
`like`, so that dispatch picks its backend (and device); the rest are static parameters.
`dtype` may be None (NumPy's default for the function), a NumPy dtype or type, a dtype
name, or a dtype of like's backend.
"""

from __future__ import annotations

from diffkit.core.rules import nondiff
from diffkit.primitives.sampling import cases, uniform


def _like(*params: dict):
    return cases(*(((lambda r: (r.normal(size=(2,)),)), p) for p in params))


zeros_like = nondiff("zeros_like", sample=uniform())
ones_like = nondiff("ones_like", sample=uniform())
full_like = nondiff("full_like", sample=uniform(fill_value=1.5))
zeros = nondiff("zeros", sample=_like({"shape": (2, 3), "dtype": None}))
ones = nondiff("ones", sample=_like({"shape": (3,), "dtype": "float32"}))
full = nondiff("full", sample=_like({"shape": (2, 2), "fill_value": 2.5, "dtype": None}))
eye = nondiff("eye", sample=_like({"N": 3, "M": 4, "k": 1, "dtype": None}))
tri = nondiff("tri", sample=_like({"N": 3, "M": 3, "k": 0, "dtype": None}))
arange = nondiff("arange", sample=_like({"start": 0, "stop": 5, "step": 2, "dtype": None}))
linspace = nondiff("linspace", sample=_like(
    {"start": 0.0, "stop": 1.0, "num": 5, "endpoint": True, "dtype": None, "axis": 0}))

PRIMITIVES = (zeros_like, ones_like, full_like, zeros, ones, full, eye, tri, arange, linspace)
