"""Array creation with NumPy's signatures, `like=` included: `dnp.zeros(3, like=x)` creates
on x's backend (and device). Constants carry no derivative, except where the values depend
on traced floats: `full`/`full_like` in the fill value, `linspace` in start/stop and
`arange` in start/step (lists holding traced values included). Sizes carry none.

With no `like=` (and no array argument), arrays go to the default backend, device and float
dtype (`dk.default_backend`); unset, NumPy arrays with NumPy's dtypes."""

from __future__ import annotations

import math
import operator

from diffkit.core.dispatch import default_backend, registry
from diffkit.core.tracer import Tracer
from diffkit.numpy import _core as _co
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _base, _has_tracer, _value, is_traced
from diffkit.primitives import creation as P

__all__ = ["zeros", "ones", "full", "empty", "eye", "identity", "tri", "arange", "linspace",
           "zeros_like", "ones_like", "full_like", "empty_like"]


def _shape(shape) -> tuple:
    if isinstance(shape, int) or hasattr(shape, "__index__"):
        return (operator.index(shape),)
    return tuple(operator.index(s) for s in shape)


_PROTOTYPES: dict = {}  # (backend, device) -> an empty array there: the `like` of creation


def _like(like):
    """The array creation imitates: `like`'s base, else an empty array of the default backend
    on its device (None for plain NumPy, the registry's default: the primitives' own path)."""
    if like is not None:
        return _base(like)
    backend, d = default_backend()
    if backend.default and d.device is None:
        return None
    key = (backend.name, str(d.device))
    proto = _PROTOTYPES.get(key)
    if proto is None:
        proto = _PROTOTYPES[key] = backend.asarray([], device=d.device)
    return proto


def _float(dtype, like=None):
    """`dtype`, or the default float dtype for a call with no `like` (None: NumPy's)."""
    return dtype if dtype is not None or like is not None else default_backend()[1].dtype


def _strong(*values):
    """The first of `values` that decides the backend: a traced value, an array of a
    backend other than NumPy, or a NumPy array of one or more dimensions (a NumPy scalar or
    0-d array is a weak number: it leaves the choice to the default backend)."""
    for v in values:
        if isinstance(v, Tracer) or getattr(v, "ndim", 0) > 0:
            return v
        b = registry().backend_of(type(v)) if hasattr(v, "shape") else None
        if b is not None and not b.default:
            return v
    return None


def _float_array(out):
    """`out`, a float array made with no `like`, in the default float dtype if one is set
    (for creation functions whose primitive takes no dtype, such as fftfreq)."""
    dt = default_backend()[1].dtype
    return out if dt is None else _el.astype(out, dt)


def _composed(*values) -> bool:
    """Values that are traced, or lists (array-likes the kernels do not take): these are
    handled by composing primitives (a broadcast, a ramp), which carries the derivative."""
    return _has_tracer(values) or any(isinstance(v, list | tuple) for v in values)


def _scalar(v):
    """A concrete Python number for a bound, size or step given as a 0-d array (callers
    take the traced-float path first: this drops a derivative)."""
    v = _value(v)
    return v.item() if hasattr(v, "item") else v


def zeros(shape, dtype=None, order="C", *, like=None):
    return P.zeros.bind(_like(like), shape=_shape(shape), dtype=_float(dtype, like))


def ones(shape, dtype=None, order="C", *, like=None):
    return P.ones.bind(_like(like), shape=_shape(shape), dtype=_float(dtype, like))


def empty(shape, dtype=None, order="C", *, like=None):
    """Zeros: diffkit arrays are immutable, so uninitialised memory buys nothing."""
    return zeros(shape, dtype, order, like=like)


def full(shape, fill_value, dtype=None, order="C", *, like=None):
    """Like `np.full`; differentiable in a traced `fill_value` (or a list holding traced
    values): the result is its broadcast."""
    if _composed(fill_value):
        return _broadcast_fill(_co.asarray(fill_value, like=like), _shape(shape), dtype)
    if like is None:
        like = _strong(fill_value)
    if isinstance(fill_value, float):
        dtype = _float(dtype, like)
    return P.full.bind(_like(like), shape=_shape(shape), fill_value=_scalar_or_array(fill_value),
                       dtype=dtype)


def _broadcast_fill(fill_value, shape, dtype):
    out = _sh.broadcast_to(fill_value, shape)
    return out if dtype is None or dtype == out.dtype else _el.astype(out, dtype)


def eye(N, M=None, k=0, dtype=None, order="C", *, like=None):
    N = operator.index(N)
    M = N if M is None else operator.index(M)
    return P.eye.bind(_like(like), N=N, M=M, k=operator.index(k), dtype=_float(dtype, like))


def identity(n, dtype=None, *, like=None):
    return eye(n, dtype=dtype, like=like)


def tri(N, M=None, k=0, dtype=None, *, like=None):
    N = operator.index(N)
    M = N if M is None else operator.index(M)
    return P.tri.bind(_like(like), N=N, M=M, k=operator.index(k), dtype=_float(dtype, like))


def arange(start, stop=None, step=None, dtype=None, *, like=None):
    """Like `np.arange([start,] stop[, step])`. Differentiable in a traced float `start` or
    `step`: the samples are start + i * step. The length, a step function of the bounds,
    carries no derivative (so neither does `stop`)."""
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    if like is None:
        like = _strong(start, stop, step)
    lo, hi, d = _scalar(start), _scalar(stop), _scalar(step)
    if d == 0:
        raise ValueError("dnp.arange: step must not be zero")
    if is_traced([start, step]):
        ref = start if is_traced([start]) else step
        ramp = P.arange.bind(_base(ref), start=0, stop=max(0, math.ceil((hi - lo) / d)),
                             step=1, dtype=ref.dtype)
        out = start + step * ramp
        return out if dtype is None else out.astype(dtype)
    if any(isinstance(v, float) for v in (lo, hi, d)):
        dtype = _float(dtype, like)
    return P.arange.bind(_like(like), start=lo, stop=hi, step=d, dtype=dtype)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             like=None):
    """Like `np.linspace`. Differentiable in traced `start`/`stop` (as in JAX): the samples
    are start + (stop - start) * t for fixed fractions t."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"dnp.linspace: num must be non-negative, got {num}")
    div = (num - 1) if endpoint else num
    if _composed(start, stop):
        out, step = _linspace_composed(start, stop, num, endpoint, div, axis)
        if dtype is not None:
            out = _el.astype(out, dtype)
    else:
        if like is None:
            like = _strong(start, stop)
        out = P.linspace.bind(_like(like), start=_scalar_or_array(start),
                              stop=_scalar_or_array(stop), num=num, endpoint=endpoint,
                              dtype=_float(dtype, like), axis=axis)
        step = (stop - start) / div if div > 0 else float("nan")
    return (out, step) if retstep else out


def _scalar_or_array(v):
    return _scalar(v) if not getattr(v, "shape", ()) else v


def _linspace_composed(start, stop, num, endpoint, div, axis):
    if _has_tracer([start]):  # the traced endpoint picks the backend
        start = _co.asarray(start)
        stop = _co.asarray(stop, like=start)
    else:
        stop = _co.asarray(stop)
        start = _co.asarray(start, like=stop)
    shape = _sh.broadcast_shapes(_co.shape(start), _co.shape(stop))
    nd = len(shape) + 1
    axis = axis % nd
    frac = P.linspace.bind(_base(start), start=0.0, stop=1.0, num=num, endpoint=endpoint,
                           dtype=None, axis=0)
    frac = _sh.reshape(frac, (1,) * axis + (num,) + (1,) * (nd - axis - 1))
    lo = _sh.expand_dims(_sh.broadcast_to(start, shape), axis)
    span = _sh.broadcast_to(stop, shape) - _sh.broadcast_to(start, shape)
    step = span / div if div > 0 else span * float("nan")
    return lo + _sh.expand_dims(span, axis) * frac, step


def zeros_like(a, dtype=None, shape=None):
    return P.zeros_like.bind(a, dtype=dtype, shape=None if shape is None else _shape(shape))


def ones_like(a, dtype=None, shape=None):
    return P.ones_like.bind(a, dtype=dtype, shape=None if shape is None else _shape(shape))


def full_like(a, fill_value, dtype=None, shape=None):
    """Like `np.full_like`; differentiable in a traced `fill_value` (a broadcast)."""
    if _composed(fill_value):
        a = _co.asarray(a)
        fill_value = _co.asarray(fill_value, like=a)
        return _broadcast_fill(fill_value, a.shape if shape is None else _shape(shape),
                               a.dtype if dtype is None else dtype)
    return P.full_like.bind(a, fill_value=_scalar_or_array(fill_value), dtype=dtype,
                            shape=None if shape is None else _shape(shape))


def empty_like(a, dtype=None, shape=None):
    """Zeros: diffkit arrays are immutable, so uninitialised memory buys nothing."""
    return zeros_like(a, dtype, shape)
