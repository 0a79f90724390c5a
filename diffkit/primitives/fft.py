"""Fourier transforms, 1-D convolution and linear interpolation.

Every transform is linear, so its JVP is itself and its VJP is its transpose (JAX's
convention: no conjugation, pairing Re(sum(u * v))). The DFT matrix is symmetric, so a
complex transform is its own transpose, whatever the norm. Padding and truncation
(`fft_resize`) are each other's transposes. The real transforms need care:
- rfft = (keep the first n//2+1 outputs) o fft, so its transpose is Re(fft(zero-pad(g))).
- irfft rebuilds the Hermitian spectrum: the bins 1..(n-1)//2 appear twice (as themselves
  and conjugated), bin 0 and (even n) bin n/2 once, and their imaginary parts are ignored.
  Its transpose is therefore w * ifft(g)[:n//2+1] with weights w = 2 except w = 1 on those
  bins, and not irfft's inverse times n.
"""

from __future__ import annotations

from diffkit.core.primitive import Primitive
from diffkit.core.rules import bilinear, linear, nondiff
from diffkit.primitives.creation import ones_like, zeros_like
from diffkit.primitives.elementwise import equal, logical_or, real, where
from diffkit.primitives.reductions import cumsum
from diffkit.primitives.sampling import cases
from diffkit.primitives.shape import flip, reshape_to


def _cplx(r, shape):
    return r.normal(size=shape) + 1j * r.normal(size=shape)


# -- transforms -------------------------------------------------------------------------------
fft_c2c = linear(
    "fft_c2c",  # fftn / ifftn over `axes` (sizes as given: resize first)
    lambda g, _ans, _x, axes, norm=None, inverse=False: fft_c2c.bind(
        g, axes=axes, norm=norm, inverse=inverse),
    saves_args=False, saves_ans=False,
    sample=cases(
        (lambda r: (_cplx(r, (5,)),), {"axes": (0,)}),
        (lambda r: (r.normal(size=(3, 4)),), {"axes": (0, 1), "norm": "ortho"}),
        (lambda r: (_cplx(r, (2, 3, 4)),), {"axes": (2, 0), "inverse": True}),
        (lambda r: (_cplx(r, (4, 3)),), {"axes": (0,), "norm": "forward", "inverse": True}),
    ),
)


def _resize_T(g, _ans, x, axes, sizes):
    return fft_resize.bind(g, axes=axes, sizes=tuple(x.shape[a] for a in axes))


fft_resize = linear(
    "fft_resize",  # truncate or zero-pad at the end of each axis
    _resize_T, saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(3, 4)),), {"axes": (0, 1), "sizes": (5, 2)}),
                 (lambda r: (_cplx(r, (4,)),), {"axes": (0,), "sizes": (4,)})),
)


def _rfftn_T(g, _ans, x, axes, norm=None):
    n = x.shape[axes[-1]]
    full = fft_c2c.bind(fft_resize.bind(g, axes=axes[-1:], sizes=(n,)), axes=axes, norm=norm)
    return real(full)


rfftn = linear(
    "rfftn", _rfftn_T, saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(6,)),), {"axes": (0,)}),
                 (lambda r: (r.normal(size=(5, 3)),), {"axes": (1, 0), "norm": "ortho"}),
                 (lambda r: (r.normal(size=(2, 4, 3)),), {"axes": (1, 2), "norm": "forward"})),
)


def _irfft_weights(n, ndim, axis, like):
    """w over the n//2+1 bins of the last transformed axis, shaped to broadcast."""
    h = n // 2 + 1
    ones = ones_like.bind(like, dtype=None, shape=(h,))
    pos = cumsum.bind(ones, axis=0)  # 1, ..., h
    once = equal(pos, 1) if n % 2 else logical_or(equal(pos, 1), equal(pos, h))
    return reshape_to(where(once, ones, ones + ones), (h,) + (1,) * (ndim - 1 - axis % ndim))


def _irfftn_T(g, _ans, x, axes, n, norm=None):
    last = axes[-1]
    spec = fft_c2c.bind(g, axes=axes, norm=norm, inverse=True)
    spec = fft_resize.bind(spec, axes=(last,), sizes=(n // 2 + 1,))
    spec = spec * _irfft_weights(n, g.ndim, last, g)
    return fft_resize.bind(spec, axes=(last,), sizes=(x.shape[last],))


irfftn = linear(
    "irfftn",  # output length n along axes[-1]; the input there is cropped/padded to n//2+1
    _irfftn_T, saves_ans=False,
    sample=cases((lambda r: (_cplx(r, (4,)),), {"axes": (0,), "n": 6}),
                 (lambda r: (_cplx(r, (4,)),), {"axes": (0,), "n": 7, "norm": "ortho"}),
                 (lambda r: (_cplx(r, (3, 3)),), {"axes": (1, 0), "n": 5}),
                 (lambda r: (_cplx(r, (2, 3, 2)),), {"axes": (1, 2), "n": 2,
                                                      "norm": "forward"})),
)

fftshift = linear(
    "fftshift", lambda g, _ans, _x, axes: ifftshift.bind(g, axes=axes),
    saves_args=False, saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(5, 4)),), {"axes": (0, 1)})),
)
ifftshift = linear(
    "ifftshift", lambda g, _ans, _x, axes: fftshift.bind(g, axes=axes),
    saves_args=False, saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(5, 4)),), {"axes": (1,)})),
)
fftfreq = nondiff("fftfreq", sample=cases(((None,), {"n": 5, "d": 0.1})))


# -- convolution (full mode; the user functions slice 'same' and 'valid') ------------------
def _convolve_T(g, other, n):
    """Transpose of u -> convolve(u, other) for a u of length n: a correlation with other."""
    m = other.shape[0]
    return convolve.bind(g, flip.bind(other, axis=(0,)))[m - 1:m - 1 + n]


convolve = bilinear(
    "convolve",
    lambda g, _ans, a, v: _convolve_T(g, v, a.shape[0]),
    lambda g, _ans, a, v: _convolve_T(g, a, v.shape[0]),
    saves_ans=False,
    sample=cases((lambda r: (r.normal(size=(5,)), r.normal(size=(3,))), {}),
                 (lambda r: (_cplx(r, (2,)), _cplx(r, (4,))), {})),
)


# -- piecewise-linear interpolation ---------------------------------------------------------
# interp(x, xp, fp) is linear in fp; d/dx is `interp_slope` (linear in fp, piecewise
# constant in x); `interp_adjoint` scatters a cotangent onto the knots (the transpose in fp).
_KNOTS = (0, 1, 2, 4, 5)  # integers: the checker perturbs float inputs, and xp has no rule


def _interp_args(r, size=(7,), lo=-0.5, hi=5.5):
    import numpy as np

    x = r.uniform(lo, hi, size)
    xp = np.array(_KNOTS)
    for k in xp:  # keep x away from the kinks, where finite differences mean nothing
        near = np.abs(x - k) < 0.05
        x[near] = k + 0.1
    return x, xp, r.normal(size=len(xp))


def _const_edge(v):
    return None if v is None else 0.0


interp = Primitive(
    "interp",
    jvp=(lambda t, ans, x, xp, fp, left=None, right=None, period=None:
         t * interp_slope.bind(x, xp, fp, period=period),
         None,
         lambda t, ans, x, xp, fp, left=None, right=None, period=None:
         interp.bind(x, xp, t, left=_const_edge(left), right=_const_edge(right), period=period)),
    vjp=(lambda g, _ans, x, xp, fp, left=None, right=None, period=None:
         g * interp_slope.bind(x, xp, fp, period=period),
         None,
         lambda g, _ans, x, xp, fp, left=None, right=None, period=None:
         interp_adjoint.bind(g, x, xp, n=fp.shape[0], left_const=left is not None,
                             right_const=right is not None, period=period)),
    saves_ans=False,
    subgradient="at a knot, the mean of the slopes on either side; outside the knots 0",
    sample=cases((_interp_args, {}), (_interp_args, {"left": -1.0, "right": 2.0}),
                 (lambda r: _interp_args(r, (2, 3), -4.0, 9.0), {"period": 6.5})),
)

interp_slope = linear(
    "interp_slope",  # arguments (x, xp, fp); linear in fp, zero derivative in x
    None, None,
    lambda g, _ans, x, xp, fp, period=None: interp_adjoint.bind(
        g, x, xp, n=fp.shape[0], deriv=True, period=period),
    saves_ans=False,
    sample=cases((_interp_args, {}), (_interp_args, {"period": 6.5})),
)


def _adjoint_T(h, _ans, _g, x, xp, n, deriv=False, left_const=False, right_const=False,
               period=None):
    if deriv:
        return interp_slope.bind(x, xp, h, period=period)
    return interp.bind(x, xp, h, left=0.0 if left_const else None,
                       right=0.0 if right_const else None, period=period)


def _adjoint_dx(t, ans, g, x, xp, n, deriv=False, left_const=False, right_const=False,
                period=None):
    if deriv:  # the slope weights are piecewise constant in x
        return zeros_like(ans)
    return interp_adjoint.bind(g * t, x, xp, n=n, deriv=True, period=period)


def _adjoint_x_T(h, _ans, g, x, xp, n, deriv=False, left_const=False, right_const=False,
                 period=None):
    if deriv:
        return None
    return g * interp_slope.bind(x, xp, h, period=period)


interp_adjoint = linear(
    "interp_adjoint",  # arguments (g, x, xp); linear in g
    _adjoint_T, None, None, saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=7),) + _interp_args(r)[:2], {"n": 5}),
        (lambda r: (r.normal(size=7),) + _interp_args(r)[:2], {"n": 5, "deriv": True}),
        (lambda r: (r.normal(size=7),) + _interp_args(r)[:2],
         {"n": 5, "left_const": True, "right_const": True}),
    ),
)
interp_adjoint.def_jvp(interp_adjoint.jvp_args[0], _adjoint_dx, None)
interp_adjoint.def_vjp(_adjoint_T, _adjoint_x_T, None)

PRIMITIVES = (fft_c2c, fft_resize, rfftn, irfftn, fftshift, ifftshift, fftfreq, convolve,
              interp, interp_slope, interp_adjoint)
