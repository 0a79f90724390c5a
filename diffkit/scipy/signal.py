"""`diffkit.scipy.signal`: convolve, correlate and fftconvolve with SciPy's signatures,
n-dimensional, modes full/same/valid, differentiable in both inputs.

1-D direct convolutions are the exact convolution primitive (`dnp.convolve`'s); the rest
go through real or complex FFTs of the padded inputs (dnp.fft, differentiable), which is
what SciPy's `method='fft'` does; integer inputs are rounded back to their integer dtype,
as SciPy's `convolve` does.
"""

from __future__ import annotations

import numpy as np  # static shape bookkeeping and result_type

import diffkit.numpy as dnp
from diffkit.numpy import fft as _fft
from diffkit.primitives import fft as _fft_p

__all__ = ["convolve", "correlate", "fftconvolve", "choose_conv_method"]

_MODES = ("full", "same", "valid")


def _np_dtype(x):
    dt = x.dtype
    return dt if isinstance(dt, np.dtype) else np.dtype(str(dt).removeprefix("torch."))


def _inputs(fn: str, in1, in2, mode: str):
    if mode not in _MODES:
        raise ValueError(f"{fn}: acceptable mode flags are 'valid', 'same', or 'full'; got "
                         f"{mode!r}")
    in1 = dnp.asarray(in1)
    in2 = dnp.asarray(in2, like=in1)
    if in1.ndim != in2.ndim:
        raise ValueError(f"{fn}: in1 and in2 should have the same dimensionality; got "
                         f"shapes {tuple(in1.shape)} and {tuple(in2.shape)}")
    if in1.size == 0 or in2.size == 0:
        raise ValueError(f"{fn}: in1 and in2 must not be empty")
    return in1, in2


def _swap_needed(mode: str, s1, s2, axes) -> bool:
    """SciPy's rule for 'valid': one input must be at least as large as the other along
    every convolved axis; the smaller one becomes the kernel."""
    if mode != "valid":
        return False
    ok1 = all(s1[a] >= s2[a] for a in axes)
    ok2 = all(s2[a] >= s1[a] for a in axes)
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in "
                         "every dimension")
    return not ok1


def _centered(x, shape, axes):
    idx = [slice(None)] * x.ndim
    for a in axes:
        start = (x.shape[a] - shape[a]) // 2
        idx[a] = slice(start, start + shape[a])
    return x[tuple(idx)]


def _fft_full(in1, in2, axes):
    """The full linear convolution along `axes` (other axes broadcast) via FFTs."""
    sizes = [in1.shape[a] + in2.shape[a] - 1 for a in axes]
    if dnp.iscomplexobj(in1) or dnp.iscomplexobj(in2):
        spec = _fft.fftn(in1, sizes, axes) * _fft.fftn(in2, sizes, axes)
        return _fft.ifftn(spec, sizes, axes)
    spec = _fft.rfftn(in1, sizes, axes) * _fft.rfftn(in2, sizes, axes)
    return _fft.irfftn(spec, sizes, axes)


def _conv(fn: str, in1, in2, mode: str, axes, exact_1d: bool):
    s1, s2 = tuple(in1.shape), tuple(in2.shape)
    for a in range(in1.ndim):
        if a not in axes and s1[a] != s2[a] and 1 not in (s1[a], s2[a]):
            raise ValueError(f"{fn}: incompatible shapes for in1 and in2: {s1} and {s2} "
                             f"(axis {a} is not convolved, so it must broadcast)")
    if _swap_needed(mode, s1, s2, axes):
        in1, in2, s1, s2 = in2, in1, s2, s1
    if exact_1d and in1.ndim == 1:
        full = _fft_p.convolve.bind(in1, in2)
    else:
        full = _fft_full(in1, in2, axes)
    if mode == "full":
        return full
    shape = list(full.shape)
    for a in axes:
        shape[a] = s1[a] if mode == "same" else s1[a] - s2[a] + 1
    return _centered(full, shape, axes)


def _is_int(x) -> bool:
    return _np_dtype(x).kind in "uib"


def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays (SciPy's modes; method 'auto', 'direct' and
    'fft' all give the same values up to rounding: 1-D is direct, N-d uses FFTs)."""
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"convolve: acceptable method flags are 'auto', 'direct', or 'fft'; "
                         f"got {method!r}")
    in1, in2 = _inputs("convolve", in1, in2, mode)
    if in1.ndim == 0:
        return in1 * in2
    dtype = np.result_type(_np_dtype(in1), _np_dtype(in2))
    ints = dtype.kind in "uib"
    a, b = (dnp.astype(in1, "float64"), dnp.astype(in2, "float64")) if ints else (in1, in2)
    out = _conv("convolve", a, b, mode, tuple(range(in1.ndim)), exact_1d=method != "fft")
    if ints:
        out = dnp.astype(dnp.round(out), dtype)
    return out


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays: convolve(in1, conj(in2) reversed)."""
    in1, in2 = _inputs("correlate", in1, in2, mode)
    if in1.ndim == 0:
        return in1 * (dnp.conj(in2) if dnp.iscomplexobj(in2) else in2)
    rev = dnp.flip(in2)
    return convolve(in1, dnp.conj(rev) if dnp.iscomplexobj(rev) else rev, mode, method)


def fftconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays with FFTs, over `axes` (default: all; the others
    must broadcast). Integer inputs give float64, as SciPy."""
    in1, in2 = _inputs("fftconvolve", in1, in2, mode)
    if in1.ndim == 0:
        return in1 * in2
    nd = in1.ndim
    axes = tuple(range(nd)) if axes is None else tuple(
        a % nd for a in ((axes,) if isinstance(axes, int) else axes))
    if _is_int(in1):
        in1 = dnp.astype(in1, "float64")
    if _is_int(in2):
        in2 = dnp.astype(in2, "float64")
    return _conv("fftconvolve", in1, in2, mode, axes, exact_1d=False)


def choose_conv_method(in1, in2, mode="full", measure=False):
    """Which method `convolve` uses: 'direct' for 1-D, 'fft' otherwise."""
    return "direct" if dnp.ndim(in1) <= 1 else "fft"
