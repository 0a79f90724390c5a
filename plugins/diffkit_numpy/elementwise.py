"""NumPy kernels of the elementwise primitives (mostly the ufuncs themselves)."""

from __future__ import annotations

import numpy as np


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


KERNELS = {
    **{name: getattr(np, name) for name in (
        "add", "subtract", "multiply", "divide", "mod", "fmod", "power", "float_power",
        "negative", "positive", "reciprocal", "square", "sqrt", "cbrt", "abs", "fabs",
        "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "logaddexp", "logaddexp2",
        "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "hypot", "sinh", "cosh",
        "tanh", "arcsinh", "arccosh", "arctanh", "deg2rad", "rad2deg", "sinc",
        "real", "imag", "conj", "maximum", "minimum", "fmax", "fmin", "clip", "where",
        "heaviside", "floor", "ceil", "rint", "trunc", "fix", "sign", "floor_divide",
        "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
        "logical_and", "logical_or", "logical_xor", "logical_not",
        "bitwise_and", "bitwise_or", "bitwise_xor", "invert",
        "isnan", "isinf", "isfinite", "signbit",
    )},
    "angle": lambda z, deg=False: np.angle(z, deg=deg),
    "round": lambda x, decimals=0: np.round(x, decimals),
    "nan_to_num": _nan_to_num,
    "astype": _astype,
    "stop_gradient": lambda x: x,
    "tanh_grad": lambda g, y: g * (1 - y * y),
}
