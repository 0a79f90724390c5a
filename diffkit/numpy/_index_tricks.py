"""`r_` and `c_`: NumPy's index-expression concatenation (`dnp.r_[1:4, x, 0]`), following
NumPy's AxisConcatenator rules (slices become arange/linspace, a leading string sets
axis, ndmin and where 1-D items go); the pieces are joined with `concatenate`, so traced
items keep their derivative."""

from __future__ import annotations

import numpy as np  # result_type: static dtype bookkeeping

from diffkit.core.tracer import Tracer
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import asarray

__all__ = ["r_", "c_"]


def _np_dtype(dt):
    return dt if isinstance(dt, np.dtype) else np.dtype(str(dt).removeprefix("torch."))


class AxisConcatenator:
    """Translates slice objects and arrays into a concatenation along an axis."""

    def __init__(self, axis=0, ndmin=1, trans1d=-1):
        self.axis, self.ndmin, self.trans1d = axis, ndmin, trans1d

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        like = next((k for k in key if isinstance(k, Tracer) or hasattr(k, "shape")), None)
        objs, kinds = [], []
        for k, item in enumerate(key):
            if isinstance(item, str):
                if k != 0:
                    raise ValueError("dnp.r_: special directives must be the first entry.")
                axis, ndmin, trans1d = _directive(item, axis, ndmin, trans1d)
                continue
            if isinstance(item, slice):
                obj = _range(item, like)
                if ndmin > 1:
                    obj = _ndmin(obj, ndmin)
                    if trans1d != -1:
                        obj = _sh.swapaxes(obj, -1, trans1d)
                kinds.append(_np_dtype(obj.dtype))
            elif isinstance(item, int | float | complex | bool | np.generic):
                obj = item
                kinds.append(item)
            else:
                obj = asarray(item, like=like)
                nd = len(obj.shape)
                obj = _ndmin(obj, ndmin)
                if trans1d != -1 and nd < ndmin:
                    k2, k1 = ndmin - nd, trans1d
                    k1 = k1 + k2 + 1 if k1 < 0 else k1
                    order = list(range(ndmin))
                    obj = _sh.transpose(obj, order[:k1] + order[k2:] + order[k1:k2])
                kinds.append(_np_dtype(obj.dtype))
            objs.append(obj)
        if not objs:
            return _cr.zeros((0,), like=like)
        dtype = np.result_type(*kinds)
        objs = [_ndmin(_el.astype(asarray(o, like=like), dtype), ndmin) for o in objs]
        return _sh.concatenate(objs, axis=axis)

    def __len__(self):
        return 0


def _directive(item: str, axis, ndmin, trans1d):
    if item in ("r", "c"):
        raise NotImplementedError("dnp.r_: the matrix directives 'r' and 'c' are not "
                                  "supported (diffkit has no matrix class)")
    try:
        if "," in item:
            vec = [int(x) for x in item.split(",")]
            axis, ndmin = vec[:2]
            if len(vec) == 3:
                trans1d = vec[2]
        else:
            axis = int(item)
    except ValueError:
        raise ValueError(f"dnp.r_: unknown special directive {item!r}") from None
    return axis, ndmin, trans1d


def _range(item: slice, like):
    start = 0 if item.start is None else item.start
    step = 1 if item.step is None else item.step
    if isinstance(step, complex):
        return _cr.linspace(start, item.stop, num=int(abs(step)), like=like)
    return _cr.arange(start, item.stop, step, like=like)


def _ndmin(x, ndmin: int):
    return _sh.reshape(x, (1,) * (ndmin - len(x.shape)) + tuple(x.shape)) \
        if len(x.shape) < ndmin else x


class RClass(AxisConcatenator):
    """`dnp.r_[...]`: concatenation along the first axis."""


class CClass(AxisConcatenator):
    """`dnp.c_[...]`: 1-D items become columns, joined along the last axis."""

    def __init__(self):
        super().__init__(-1, ndmin=2, trans1d=0)


r_ = RClass()
c_ = CClass()
