"""`diffkit.numpy.fft`: NumPy's fft functions, differentiable.

Each transform is a resize (NumPy's `n`/`s`: zero-pad or truncate the input) followed by
one of three primitives (complex, real-to-complex, complex-to-real); see
diffkit/primitives/fft.py for their transposes.
"""

from __future__ import annotations

import operator

from diffkit.numpy import _core as _co
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy._core import is_traced
from diffkit.primitives import fft as P

__all__ = [
    "fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
    "rfftn", "irfftn", "hfft", "ihfft", "fftshift", "ifftshift", "fftfreq", "rfftfreq",
]

_NORMS = {None: "backward", "backward": "backward", "ortho": "ortho", "forward": "forward"}
_SWAP = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def _norm(norm):
    if norm not in _NORMS:
        raise ValueError(f'Invalid norm value {norm!r}; should be "backward", "ortho" or '
                         f'"forward".')
    return _NORMS[norm]


def _no_out(out):
    if out is not None:
        raise TypeError("dnp.fft functions do not support out=: diffkit arrays are immutable")


def _resize(a, axes, sizes):
    sizes = tuple(operator.index(n) for n in sizes)
    for n in sizes:
        if n < 1:
            raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    if all(a.shape[ax] == n for ax, n in zip(axes, sizes, strict=True)):
        return a
    return P.fft_resize.bind(a, axes=axes, sizes=sizes)


def _axes_sizes(a, s, axes):
    """NumPy's defaults: all axes, or the last len(s); s defaults to the current sizes."""
    if axes is None:
        axes = tuple(range(a.ndim)) if s is None else tuple(range(a.ndim - len(s), a.ndim))
    axes = tuple(operator.index(ax) % a.ndim for ax in ((axes,) if isinstance(axes, int)
                                                        else axes))
    if s is None:
        s = tuple(a.shape[ax] for ax in axes)
    if len(s) != len(axes):
        raise ValueError(f"shape s={tuple(s)} and axes={axes} have different lengths")
    return axes, tuple(s)


# -- complex transforms -----------------------------------------------------------------------
def _c2c(a, s, axes, norm, inverse):
    a = _co.asarray(a)
    axes, s = _axes_sizes(a, s, axes)
    return P.fft_c2c.bind(_resize(a, axes, s), axes=axes, norm=_norm(norm), inverse=inverse)


def fft(a, n=None, axis=-1, norm=None, out=None):
    _no_out(out)
    return _c2c(a, None if n is None else (n,), (axis,), norm, False)


def ifft(a, n=None, axis=-1, norm=None, out=None):
    _no_out(out)
    return _c2c(a, None if n is None else (n,), (axis,), norm, True)


def fftn(a, s=None, axes=None, norm=None, out=None):
    _no_out(out)
    return _c2c(a, s, axes, norm, False)


def ifftn(a, s=None, axes=None, norm=None, out=None):
    _no_out(out)
    return _c2c(a, s, axes, norm, True)


def fft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return fftn(a, s, axes, norm, out)


def ifft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return ifftn(a, s, axes, norm, out)


# -- real transforms --------------------------------------------------------------------------
def rfftn(a, s=None, axes=None, norm=None, out=None):
    _no_out(out)
    a = _co.asarray(a)
    if _co.iscomplexobj(a):
        raise TypeError("rfft needs real input; use fft for complex input")
    axes, s = _axes_sizes(a, s, axes)
    return P.rfftn.bind(_resize(a, axes, s), axes=axes, norm=_norm(norm))


def irfftn(a, s=None, axes=None, norm=None, out=None):
    """Inverse of rfftn; the output length along the last axis defaults to 2 * (m - 1)."""
    _no_out(out)
    a = _co.asarray(a)
    axes, s_in = _axes_sizes(a, s, axes)
    if s is None:
        s_in = s_in[:-1] + (2 * (s_in[-1] - 1),)
    n = operator.index(s_in[-1])
    if n < 1:
        raise ValueError(f"Invalid number of data points ({n}) specified")
    a = _resize(a, axes, s_in[:-1] + (n // 2 + 1,))
    return P.irfftn.bind(a, axes=axes, n=n, norm=_norm(norm))


def rfft(a, n=None, axis=-1, norm=None, out=None):
    return rfftn(a, None if n is None else (n,), (axis,), norm, out)


def irfft(a, n=None, axis=-1, norm=None, out=None):
    return irfftn(a, None if n is None else (n,), (axis,), norm, out)


def rfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return rfftn(a, s, axes, norm, out)


def irfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return irfftn(a, s, axes, norm, out)


def hfft(a, n=None, axis=-1, norm=None, out=None):
    """FFT of a Hermitian-symmetric signal given by its first half: irfft(conj(a)) with
    the opposite normalization, as NumPy."""
    a = _co.asarray(a)
    return irfft(_el.conj(a), n, axis, _SWAP[_norm(norm)], out)


def ihfft(a, n=None, axis=-1, norm=None, out=None):
    return _el.conj(rfft(a, n, axis, _SWAP[_norm(norm)], out))


# -- shifts and frequencies ---------------------------------------------------------------------
def _shift_axes(x, axes):
    if axes is None:
        return tuple(range(_co.ndim(x)))
    return (axes,) if isinstance(axes, int) else tuple(axes)


def fftshift(x, axes=None):
    """Move the zero-frequency bin to the centre (np.roll by n // 2 along each axis)."""
    return P.fftshift.bind(x, axes=_shift_axes(x, axes))


def ifftshift(x, axes=None):
    """Inverse of fftshift (they differ for odd lengths)."""
    return P.ifftshift.bind(x, axes=_shift_axes(x, axes))


def fftfreq(n, d=1.0, device=None, *, like=None):
    """Sample frequencies of an n-point DFT, k / (n d); `like` picks the backend.
    Differentiable in a traced spacing `d`."""
    return _freq(n, d, device, like, real=False)


def rfftfreq(n, d=1.0, device=None, *, like=None):
    """Sample frequencies of rfft's n // 2 + 1 outputs; differentiable in a traced `d`."""
    return _freq(n, d, device, like, real=True)


def _freq(n, d, device, like, real: bool):
    if is_traced(d):  # k / (n d) = (k / n) / d
        unit = P.fftfreq.bind(_like(d if like is None else like, device), n=operator.index(n),
                              d=1.0, real=real)
        return unit / d
    out = P.fftfreq.bind(_like(like, device), n=operator.index(n), d=float(d), real=real)
    return out if like is not None else _cr._float_array(out)  # the default float dtype


def _like(like, device):
    if device not in (None, "cpu") and like is None:
        raise ValueError(f"fftfreq(device={device!r}): pass like=<an array on that device>")
    return _cr._like(like)  # with no like: the default backend (dk.default_backend)
