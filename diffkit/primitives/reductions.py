"""Reductions: sums, products, extrema, cumulative ops, standard deviation, quantiles.

Each VJP broadcasts the cotangent back over the reduced axes (`_expand_reduced`).
Non-differentiable points follow the minimum-norm subgradient: extrema and quantiles split
the cotangent equally among tied elements. Products never divide by the input, so their
derivatives are exact where some inputs are zero.
"""

from __future__ import annotations

import math

import numpy as np  # sample data

from diffkit.core.primitive import Primitive
from diffkit.core.rules import linear, nondiff
from diffkit.primitives.creation import ones_like, zeros_like
from diffkit.primitives.elementwise import (
    conj,
    equal,
    greater,
    greater_equal,
    is_complex,
    less,
    less_equal,
    stop_gradient,
    where,
)
from diffkit.primitives.sampling import cases, uniform
from diffkit.primitives.shape import broadcast, expand, reshape_to


def _axes(axis, ndim: int) -> tuple:
    """The reduced axes as a tuple of non-negative ints (None: all)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes) if ndim else ()


def sum_over(x, axis=None, keepdims=False):
    """The sum of `x` over `axis` (None: all), positionally: what the rules call."""
    return sum.bind(x, axis=axis, keepdims=keepdims)


def _count(x, axis) -> int:
    """How many elements each output of a reduction of `x` over `axis` combines."""
    shape = tuple(x.shape)
    return math.prod(shape[a] for a in _axes(axis, len(shape)))


def _expand_reduced(g, x, axis, keepdims):
    """Broadcast a reduction's cotangent (or output) back to the input's shape."""
    if axis is not None and not keepdims:
        g = expand(g, _axes(axis, x.ndim))
    elif axis is None and not keepdims:
        g = reshape_to(g, (1,) * x.ndim)
    return broadcast(g, x.shape)


def _sample(*extra, default: bool = True):
    """The default domain (all axes reduced) plus (shape, params) cases drawn from a normal."""
    fixed = cases(*(((lambda r, s=s: (r.normal(size=s),)), p) for s, p in extra))
    return lambda rng: (uniform()(rng) if default else []) + fixed(rng)


_AXIS_CASES = (((2, 3, 4), {"axis": 1}), ((2, 3, 4), {"axis": (0, 2), "keepdims": True}),
               ((2, 3), {"axis": -1, "keepdims": True}))

# -- sum --------------------------------------------------------------------------------------
sum = linear(  # noqa: A001 (NumPy's name)
    "sum",
    lambda g, _ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims),
    saves_ans=False,
    sample=_sample(*_AXIS_CASES),
)


# -- cumulative sum and product ----------------------------------------------------------------
cumsum = linear(
    "cumsum",
    # the transpose of a running sum is the running sum taken from the other end
    lambda g, _ans, _x, axis, reverse=False: cumsum.bind(g, axis=axis, reverse=not reverse),
    saves_args=False, saves_ans=False,
    sample=_sample(((4,), {"axis": 0}), ((2, 3), {"axis": 1, "reverse": True}),
                   ((2, 3), {"axis": -2}), default=False),
)


def _cumprod_jacobian(x, axis, reverse, exclusive):
    """M[.., k, i, ..] = d out_i / d x_k along `axis` (k inserted before it): the running
    product of x with x_k replaced by 1, kept where i follows k. No division, so exact at
    zeros; it costs n^2 memory along the axis."""
    a = axis % x.ndim
    pos = cumsum.bind(ones_like(x), axis=a)
    k = expand(pos, a + 1)
    i = expand(pos, a)
    xs = where(equal(k, i), 1, expand(x, a))
    run = cumprod.bind(xs, axis=a + 1, reverse=reverse, exclusive=exclusive)
    after = {(False, False): greater_equal, (False, True): greater,
             (True, False): less_equal, (True, True): less}[reverse, exclusive](i, k)
    return where(after, run, 0)


cumprod = Primitive(
    "cumprod",
    jvp=(lambda t, ans, x, axis, reverse=False, exclusive=False: sum_over(
        _cumprod_jacobian(x, axis, reverse, exclusive) * expand(t, axis % x.ndim + 1),
        axis % x.ndim),),
    vjp=(lambda g, _ans, x, axis, reverse=False, exclusive=False: sum_over(
        _cumprod_jacobian(x, axis, reverse, exclusive) * expand(g, axis % x.ndim),
        axis % x.ndim + 1),),
    saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=(4,)),), {"axis": 0}),
        (lambda r: (_with_zeros(r, (2, 4), 1),), {"axis": 1}),
        (lambda r: (_with_zeros(r, (3, 2), 2),), {"axis": 0, "reverse": True}),
        (lambda r: (_with_zeros(r, (2, 4), 1),), {"axis": -1, "exclusive": True}),
        (lambda r: (r.normal(size=(2, 3)),), {"axis": 1, "reverse": True, "exclusive": True}),
    ),
)


def _with_zeros(rng, shape, nzeros):
    """Normal samples with `nzeros` exact zeros (products must stay exact there)."""
    x = rng.normal(size=shape)
    x.reshape(-1)[rng.choice(x.size, nzeros, replace=False)] = 0.0
    return x


# -- product ----------------------------------------------------------------------------------
def _others(x, axis):
    """prod_{j != i} x_j along `axis`: the exclusive running products from both ends."""
    return (cumprod.bind(x, axis=axis, exclusive=True)
            * cumprod.bind(x, axis=axis, reverse=True, exclusive=True))


prod = Primitive(
    "prod",
    jvp=(lambda t, ans, x, axis, keepdims=False: sum_over(
        t * _others(x, axis), axis, keepdims=keepdims),),
    vjp=(lambda g, _ans, x, axis, keepdims=False: _expand_reduced(g, x, axis, keepdims)
         * _others(x, axis),),
    saves_ans=False,
    sample=cases(
        (lambda r: (r.normal(size=(4,)),), {"axis": 0}),
        (lambda r: (_with_zeros(r, (2, 4), 1),), {"axis": 1}),
        (lambda r: (_with_zeros(r, (3, 2), 2),), {"axis": 0, "keepdims": True}),
    ),
)


# -- extrema ----------------------------------------------------------------------------------
def _tie_weights(x, ans, axis, keepdims):
    """1/count on the elements equal to the chosen value, 0 elsewhere: tied elements share
    the derivative equally (the minimum-norm subgradient)."""
    hit = where(equal(x, _expand_reduced(ans, x, axis, keepdims)), ones_like(x), zeros_like(x))
    count = _expand_reduced(sum.bind(hit, axis=axis, keepdims=keepdims), x, axis, keepdims)
    return hit / count


def _chooser(name: str) -> Primitive:
    return Primitive(
        name,
        jvp=(lambda t, ans, x, axis=None, keepdims=False: sum_over(
            t * _tie_weights(x, ans, axis, keepdims), axis, keepdims=keepdims),),
        vjp=(lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(
            g, x, axis, keepdims) * _tie_weights(x, ans, axis, keepdims),),
        subgradient="ties share the derivative equally (1/k each for k tied extrema)",
        sample=_sample(*_AXIS_CASES),
    )


max = _chooser("max")  # noqa: A001 (NumPy's name)
min = _chooser("min")  # noqa: A001 (NumPy's name)


# -- standard deviation -----------------------------------------------------------------------
def _std_slope(ans, x, axis, ddof, keepdims):
    """d std / d x = conj(x - mean) / ((n - ddof) std); 0 where std = 0 (all elements equal
    their mean: the minimum-norm subgradient, where the formula would give 0/0)."""
    s = _expand_reduced(ans, x, axis, keepdims)
    positive = greater(s, 0)
    d = x - sum_over(x, axis, keepdims=True) / _count(x, axis)
    if is_complex(d):
        d = conj(d)
    return where(positive, d / (where(positive, s, 1) * (_count(x, axis) - ddof)), 0)


std = Primitive(
    "std",
    jvp=(lambda t, ans, x, axis=None, ddof=0, keepdims=False: sum_over(
        t * _std_slope(ans, x, axis, ddof, keepdims), axis, keepdims=keepdims),),
    vjp=(lambda g, ans, x, axis=None, ddof=0, keepdims=False: _expand_reduced(
        g, x, axis, keepdims) * _std_slope(ans, x, axis, ddof, keepdims),),
    subgradient="0 where the standard deviation is 0",
    sample=_sample(((2, 3, 4), {"axis": 1, "ddof": 1}),
                   ((2, 3, 4), {"axis": (0, 2), "keepdims": True})),
)


# -- quantiles --------------------------------------------------------------------------------
def _neighbour_weights(q, n, method):
    """Weights of the two order statistics around position q (n - 1) for `method`."""
    pos = q * (n - 1)
    frac = pos - math.floor(pos)
    if method == "linear":
        return 1.0 - frac, frac
    if method == "midpoint":
        return 0.5, 0.5
    if method == "nearest":
        return (1.0, 0.0) if round(pos) == math.floor(pos) else (0.0, 1.0)
    return {"lower": (1.0, 0.0), "higher": (0.0, 1.0)}[method]


def _quantile_weights(x, q, axis, keepdims, method):
    """d quantile / d x: the interpolation weights of the lower and higher order statistics,
    each split equally among the elements equal to it (ties: minimum-norm subgradient)."""
    const = stop_gradient(x)
    total = 0
    for w, side in zip(_neighbour_weights(q, _count(x, axis), method), ("lower", "higher")):
        if w:
            v = quantile.bind(const, q=q, axis=axis, keepdims=keepdims, method=side)
            total = total + w * _tie_weights(const, v, axis, keepdims)
    return total


quantile = Primitive(
    "quantile",
    jvp=(lambda t, ans, x, q, axis=None, keepdims=False, method="linear": sum_over(
        t * _quantile_weights(x, q, axis, keepdims, method), axis, keepdims=keepdims),),
    vjp=(lambda g, _ans, x, q, axis=None, keepdims=False, method="linear": _expand_reduced(
        g, x, axis, keepdims) * _quantile_weights(x, q, axis, keepdims, method),),
    saves_ans=False,
    subgradient="ties share each order statistic's weight equally",
    sample=cases(
        (lambda r: (r.normal(size=(5,)),), {"q": 0.3}),
        (lambda r: (r.normal(size=(4, 3)),), {"q": 0.5, "axis": 0}),
        (lambda r: (r.normal(size=(2, 3, 4)),), {"q": 0.7, "axis": (0, 2), "keepdims": True}),
        (lambda r: (r.normal(size=(2, 5)),), {"q": 0.4, "axis": 1, "method": "midpoint"}),
    ),
)

# -- no derivative ----------------------------------------------------------------------------
argmax = nondiff("argmax", sample=_sample(((2, 3), {"axis": 1})))
argmin = nondiff("argmin", sample=_sample(((2, 3), {"axis": 0, "keepdims": True})))
all = nondiff("all", sample=_sample(((2, 3), {"axis": 1})))  # noqa: A001 (NumPy's name)
any = nondiff("any", sample=_sample(((2, 3), {"axis": 0})))  # noqa: A001 (NumPy's name)

# searching and counting: integer results (the namespace gathers values with them)
searchsorted = nondiff(  # a sorted 1-D `a`; `v` of any shape
    "searchsorted",
    sample=cases((lambda r: (np.sort(r.normal(size=6)), r.normal(size=(2, 3))), {}),
                 (lambda r: (np.array([0.0, 1, 1, 2]), np.array([1.0, 2, -1])),
                  {"side": "right"})))
argpartition = nondiff(  # samples partition at every position: NumPy's order is then unique
    "argpartition",
    sample=cases((lambda r: (r.normal(size=(3, 5)),), {"kth": (0, 1, 2, 3), "axis": -1}),
                 (lambda r: (r.normal(size=(4,)),), {"kth": (0, 1, 2), "axis": 0})))
unique = nondiff(  # (index of first occurrence, inverse, counts), sorted as NumPy's unique
    "unique", multiple_results=True, value_shaped=True,
    sample=cases((lambda r: (r.integers(0, 4, size=(3, 4)).astype(float),), {}),
                 (lambda r: (r.integers(0, 2, size=(3, 4)).astype(float),), {"axis": 1})))

PRIMITIVES = (sum, cumsum, cumprod, prod, max, min, std, quantile, argmax, argmin, all, any,
              searchsorted, argpartition, unique)
