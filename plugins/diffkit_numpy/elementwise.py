"""NumPy kernels of the elementwise primitives: NumPy's function of the primitive's name
(the ufunc itself), except the few listed in `OWN`."""

from __future__ import annotations

import numpy as np

from diffkit.primitives.elementwise import PRIMITIVES


def _dtype(dtype):
    """A NumPy dtype for a NumPy, Python, string or torch dtype (torch.float32 -> float32)."""
    if isinstance(dtype, np.dtype | type | str):
        return np.dtype(dtype)
    return np.dtype(str(dtype).removeprefix("torch."))


def _astype(x, dtype):
    x, dtype = np.asarray(x), _dtype(dtype)
    if x.dtype.kind == "c" and dtype.kind != "c":
        x = x.real  # drop the imaginary part without NumPy's ComplexWarning (as JAX)
    return x.astype(dtype, copy=False)


def _nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


# Kernels that are not NumPy's function of the primitive's name (every other elementwise
# primitive gets that function: a new ufunc primitive needs no line here).
OWN = {
    "angle": lambda z, deg=False: np.angle(z, deg=deg),
    "round": lambda x, decimals=0: np.round(x, decimals),
    "nan_to_num": _nan_to_num,
    "astype": _astype,
    "stop_gradient": lambda x: x,
    "tanh_grad": lambda g, y: g * (1 - y * y),
}



def kernels(primitives) -> dict:
    """The kernel of each of `primitives` that has one: its entry in `OWN`, else NumPy's
    function of its name."""
    return {p.name: OWN[p.name] if p.name in OWN else getattr(np, p.name)
            for p in primitives if p.name in OWN or hasattr(np, p.name)}


KERNELS = kernels(PRIMITIVES)
