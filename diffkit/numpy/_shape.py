"""Shape manipulation with NumPy's signatures."""

from __future__ import annotations

from diffkit.primitives import shape as P

__all__ = ["reshape", "broadcast_to", "expand_dims"]


def reshape(a, shape, order="C"):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return P.reshape.bind(a, shape=shape, order=order)


def broadcast_to(array, shape):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return P.broadcast_to.bind(array, shape=shape)


def expand_dims(a, axis):
    return P.expand_dims.bind(a, axis=axis)
