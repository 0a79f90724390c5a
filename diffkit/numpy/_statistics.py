"""Covariance, correlation and histograms with NumPy's signatures.

cov and corrcoef follow NumPy's formulas step by step (weights included), so they are
differentiable in the data and in `aweights`/`fweights`. histogram's counts are integers
(no derivative); with `weights` they are sums of the weights (differentiable in them),
and its edges (and `density`) move with the data's min and max, as NumPy's do.
"""

from __future__ import annotations

import operator

from diffkit.core.dispatch import is_inexact
from diffkit.numpy import _creation as _cr
from diffkit.numpy import _elementwise as _el
from diffkit.numpy import _indexing as _ix
from diffkit.numpy import _products as _pr
from diffkit.numpy import _reductions as _rd
from diffkit.numpy import _sets as _st
from diffkit.numpy import _shape as _sh
from diffkit.numpy._core import _arr, _value, asarray, iscomplexobj, ndim

__all__ = ["cov", "corrcoef", "histogram"]


def _rows(x, rowvar: bool, dtype):
    x = _sh.atleast_2d(_arr(x))
    if not rowvar and x.shape[0] != 1:
        x = _sh.transpose(x)
    return _el.astype(x, dtype)


def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    """Covariance matrix of the rows (variables) of `m` (and `y`), as `np.cov`."""
    m = _arr(m)
    if ndim(m) > 2:
        raise ValueError(f"dnp.cov: m has more than 2 dimensions (shape {tuple(m.shape)})")
    if dtype is None:
        cplx = iscomplexobj(m) or (y is not None and iscomplexobj(y))
        dtype = "complex128" if cplx else "float64"
    x = _rows(m, rowvar, dtype)
    if y is not None:
        x = _sh.concatenate([x, _rows(asarray(y, like=m), rowvar, dtype)], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    w = None
    if fweights is not None:
        w = _weights(fweights, x.shape[1], "fweights", m)
    if aweights is not None:
        aw = _weights(aweights, x.shape[1], "aweights", m)
        w = aw if w is None else w * aw
    avg, w_sum = _rd.average(x, axis=1, weights=w, returned=True)
    w_sum = w_sum[0]
    if w is None:
        fact = x.shape[1] - ddof
    elif ddof == 0:
        fact = w_sum
    elif aweights is None:
        fact = w_sum - ddof
    else:
        fact = w_sum - ddof * _rd.sum(w * aw) / w_sum
    if float(_value(fact)) <= 0:
        fact = 0.0  # NumPy warns "Degrees of freedom <= 0" and divides by 0 too
    x = x - avg[:, None]
    xt = _sh.transpose(x if w is None else x * w)
    c = _pr.dot(x, _el.conj(xt) if iscomplexobj(xt) else xt) / fact
    return _sh.squeeze(c)


def _weights(w, n: int, name: str, like):
    w = asarray(w, like=like)
    if ndim(w) > 1:
        raise RuntimeError(f"dnp.cov: cannot handle multidimensional {name}")
    if w.shape[0] != n:
        raise RuntimeError(f"dnp.cov: incompatible numbers of samples and {name} "
                           f"({w.shape[0]} != {n})")
    if bool(_value(_rd.any(_el.stop_gradient(w) < 0))):
        raise ValueError(f"dnp.cov: {name} cannot be negative")
    return w if is_inexact(w) else _el.astype(w, "float64")


def corrcoef(x, y=None, rowvar=True, bias=None, ddof=None, *, dtype=None):
    """Pearson correlation coefficients, as `np.corrcoef` (real parts clipped to [-1, 1])."""
    c = cov(x, y, rowvar, dtype=dtype)
    if ndim(c) == 0:
        return c / c
    d = _ix.diagonal(c)
    s = _el.sqrt(_el.real(d) if iscomplexobj(d) else d)
    c = c / s[:, None] / s[None, :]
    if iscomplexobj(c):
        return _el.clip(_el.real(c), -1, 1) + 1j * _el.imag(c)
    return _el.clip(c, -1, 1)


def histogram(a, bins=10, range=None, density=None, weights=None):  # noqa: A002
    """(counts, bin_edges) as `np.histogram`: each bin half-open but the last closed.
    Counts carry no derivative; weighted sums are differentiable in `weights`, and the
    edges (and densities) in `a` through its min and max when `range` is not given."""
    a = _sh.ravel(_arr(a))
    edges = _edges(a, bins, range)
    n = edges.shape[0] - 1
    a0, e0 = _el.stop_gradient(a), _el.stop_gradient(edges)
    idx = _st.searchsorted(e0, a0, side="right") - 1
    idx = _el.where(a0 == e0[-1], n - 1, idx)  # the last bin is closed
    keep = (a0 >= e0[0]) & (a0 <= e0[-1])
    if weights is None:
        vals = _el.astype(keep, "int64")
    else:
        w = _sh.ravel(asarray(weights, like=a))
        if w.shape != a.shape:
            raise ValueError(f"dnp.histogram: weights should have the same shape as a, "
                             f"got {tuple(w.shape)} and {tuple(a.shape)}")
        vals = _el.where(keep, w, 0)
    counts = _ix.at(_cr.zeros((n,), dtype=vals.dtype, like=vals))[
        _el.clip(idx, 0, n - 1)].add(vals)
    if density:
        db = _el.astype(_sh.diff(edges), "float64")
        return counts / db / _rd.sum(counts), edges
    return counts, edges


def _edges(a, bins, range):  # noqa: A002
    if isinstance(bins, str):
        raise NotImplementedError(f"dnp.histogram: bin estimator {bins!r} is not supported; "
                                  f"pass a number of bins or the edges")
    if getattr(bins, "ndim", 0) == 0 and not isinstance(bins, list | tuple):
        nbins = operator.index(_value(bins))
        if nbins < 1:
            raise ValueError("dnp.histogram: `bins` must be positive, when an integer")
        if range is not None:
            lo, hi = range
            if float(_value(lo)) > float(_value(hi)):
                raise ValueError("dnp.histogram: max must be larger than min in range "
                                 "parameter.")
        elif a.shape[0] == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = _rd.min(a), _rd.max(a)
        if float(_value(lo)) == float(_value(hi)):
            lo, hi = lo - 0.5, hi + 0.5
        dt = a.dtype if "float" in str(a.dtype) else "float64"
        return _cr.linspace(lo, hi, nbins + 1, dtype=dt, like=a)
    edges = asarray(bins, like=a)
    e = _el.stop_gradient(edges)
    if ndim(edges) != 1 or bool(_value(_rd.any(e[1:] < e[:-1]))):
        raise ValueError("dnp.histogram: `bins` must increase monotonically, when an array")
    return edges
