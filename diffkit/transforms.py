"""The transforms, with JAX's names and semantics: vjp, jvp, grad, value_and_grad,
linearize, jacfwd, jacrev, hessian, hvp.

Each call opens a new trace (a new level), runs the user function on traced inputs and
closes the trace when the function returns; nesting transforms nests levels.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from numbers import Number
from typing import Any

from diffkit import numpy as dnp
from diffkit.core import pytree
from diffkit.core.dispatch import is_inexact
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.reverse import VJPTrace, VJPTracer, young_gc_only
from diffkit.core.tracer import Tracer
from diffkit.errors import NonDifferentiableError, TransformError
from diffkit.primitives.fit import fit_to

__all__ = [
    "vjp", "jvp", "grad", "value_and_grad", "linearize", "jacfwd", "jacrev", "hessian", "hvp",
    "stop_gradient",
]


# -- helpers -----------------------------------------------------------------------------
def _array_like(leaves):
    """The first input that is an array, whose backend Python scalars will join."""
    return next((x for x in leaves if hasattr(x, "dtype")), None)


def _as_input(x, what: str, transform: str, like=None):
    """Check a differentiated input is a float/complex array; Python floats become arrays
    of the backend of the other inputs (NumPy when there are none)."""
    if isinstance(x, float | complex):
        return dnp.asarray(x, like=like)
    if isinstance(x, bool | int) or not is_inexact(x):
        raise NonDifferentiableError(
            f"{transform} was asked to differentiate {what}, but {_why_not_inexact(x)}"
        )
    return x


def _why_not_inexact(x) -> str:
    """Why leaf `x` carries no derivative: an integer or boolean dtype, or it is no array
    at all (an object of a type diffkit does not know as an array or a pytree node)."""
    if isinstance(x, bool | int) or hasattr(x, "dtype"):
        return (f"it has dtype {getattr(x, 'dtype', type(x).__name__)}, and integer or "
                f"boolean values carry no derivative. Pass a float array (x.astype(float)) "
                f"or leave it out of argnums.")
    name = type(x).__qualname__
    return (f"it is a {name}, which is neither an array nor a registered pytree node. "
            f"Differentiable arguments are float/complex arrays and Python floats, alone "
            f"or in tuples, lists, dicts, namedtuples and dataclasses; register {name} "
            f"with dk.tree.register_pytree_node({name}, flatten, unflatten), or leave it "
            f"out of argnums (or close over it).")


def _refuse_non_arrays(leaves, transform: str) -> None:
    """Forward mode treats integer leaves as constants; a leaf that is no array and no
    number (an unregistered class) would silently be one too: refuse it, as grad does."""
    for i, x in enumerate(leaves):
        if not (isinstance(x, Number) or hasattr(x, "dtype")):
            raise NonDifferentiableError(
                f"{transform}: primal leaf {i}: {_why_not_inexact(x)}")


def _refuse_integer_direction(t, p, i: int) -> None:
    """A nonzero tangent for an integer primal asks for a derivative it does not carry
    (it would silently count as zero); a zero tangent (JAX's float0) is fine."""
    if t is not None and bool(dnp.any(dnp.not_equal(t, 0))):
        raise NonDifferentiableError(
            f"jvp: tangent leaf {i} is nonzero, but its primal has dtype "
            f"{getattr(p, 'dtype', type(p).__name__)}, and integer or boolean values carry "
            f"no derivative. Pass a float primal (x.astype(float)) or a zero tangent for it.")


def _arg_name(f, n: int) -> str:
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return f"argument {n}"
    if n < len(params) and params[n].kind in (params[n].POSITIONAL_ONLY,
                                              params[n].POSITIONAL_OR_KEYWORD):
        return f"argument {n} (`{params[n].name}`)"
    return f"argument {n}"


def _check_user_shape(t, p, what: str, whose: str) -> None:
    if not isinstance(t, Number) and _shape(t) != _shape(p):
        raise TransformError(
            f"{what} has shape {_shape(t)} but its {whose} has shape {_shape(p)}; they must "
            f"match (a number, which stands for that value in every element, fits any shape)"
        )


def _fit_user(t, p, what: str, whose: str):
    """A tangent or cotangent passed by the user for the value `p`, made an array of p's
    shape, dtype (the real part, for a real p) and backend: Python and NumPy numbers fill
    every element, arrays must have p's shape. Rules then never see a bare number."""
    _check_user_shape(t, p, what, whose)
    if isinstance(t, Number):
        return dnp.full_like(p, t if dnp.iscomplexobj(p) else t.real)
    return fit_to(dnp.asarray(t, like=p), p)


def _split_aux(out, has_aux: bool, transform: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TransformError(
            f"{transform}(..., has_aux=True) needs the function to return a pair "
            f"(output, aux); it returned {type(out).__name__}"
        )
    return out[0], out[1]


def _strip(x, trace):
    """The value under `trace`'s tracer (aux outputs and constants pass through)."""
    if isinstance(x, Tracer) and x._trace is trace:
        return x.primal
    return x


def _shape(x):
    return tuple(getattr(x, "shape", ()))


# -- reverse mode ------------------------------------------------------------------------
def vjp(f: Callable, *primals: Any, has_aux: bool = False, _transform: str = "vjp"):
    """Evaluate `f(*primals)` and return `(out, vjp_fn)` (and `aux` with has_aux).

    `vjp_fn(cotangent)` maps a cotangent shaped like `out` to a tuple of cotangents, one
    per primal, each shaped like it. It may be called many times.

    >>> out, f_vjp = vjp(lambda x: x * x, 3.0)
    >>> float(f_vjp(1.0)[0])
    6.0
    """
    flat_in, in_tree = pytree.flatten(primals)
    trace = VJPTrace(_transform)
    like = _array_like(flat_in)
    boxed = [trace.leaf(_as_input(p, f"input leaf {i}", _transform, like))
             for i, p in enumerate(flat_in)]
    try:
        with young_gc_only():
            out = f(*pytree.unflatten(in_tree, boxed))
    finally:
        trace.active = False
    out, aux = _split_aux(out, has_aux, _transform)
    aux = pytree.map(lambda a: _strip(a, trace), aux)
    flat_out, out_tree = pytree.flatten(out)
    primal_out = pytree.unflatten(out_tree, [_strip(o, trace) for o in flat_out])

    def vjp_fn(cotangent, _consume: bool = False):
        flat_ct, ct_tree = pytree.flatten(cotangent)
        if ct_tree != out_tree:
            raise TransformError(
                f"the cotangent given to vjp_fn has structure {ct_tree!r}, but the "
                f"function's output has structure {out_tree!r}"
            )
        roots = []
        for k, (o, c) in enumerate(zip(flat_out, flat_ct, strict=True)):
            what = f"vjp_fn: the cotangent of output leaf {k}"
            if isinstance(o, VJPTracer) and o._trace is trace:
                roots.append((o.idx, o.out, _fit_user(c, o.primal, what, "output")))
            else:
                _check_user_shape(c, o, what, "output")
        with young_gc_only():
            acc = trace.backward(roots, consume=_consume)
        cts = [  # a rule's stray Python number gets the input's dtype and backend here
            dnp.zeros_like(b.primal) if acc[i] is None else fit_to(acc[i], b.primal)
            for i, b in enumerate(boxed)
        ]
        return pytree.unflatten(in_tree, cts)

    vjp_fn.tape = trace  # lets checkpointed loops measure what one step's tape holds
    return (primal_out, vjp_fn, aux) if has_aux else (primal_out, vjp_fn)


def _argnums_tuple(argnums, nargs: int, transform: str) -> tuple[int, ...]:
    """`argnums` as a tuple of distinct non-negative positions (a repeat is refused, as in
    JAX: it would split one argument's gradient between two outputs)."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or isinstance(n, bool) or not -nargs <= n < nargs:
            raise TransformError(
                f"{transform}: argnums={argnums!r} but the function was called with "
                f"{nargs} positional argument(s); argnums are int positions among them"
            )
    nums = tuple(n % nargs for n in nums)
    repeated = sorted({n for n in nums if nums.count(n) > 1})
    if repeated:
        raise TransformError(
            f"{transform}: argnums={argnums!r} names argument(s) {repeated} more than once; "
            f"list each argument once"
        )
    return nums


def _partial(f, args, kwargs, nums):
    def fixed(*dyn):
        full = list(args)
        for n, d in zip(nums, dyn, strict=True):
            full[n] = d
        return f(*full, **kwargs)

    return fixed


def _check_dyn(f, args, nums, transform):
    for n in nums:
        for leaf in pytree.leaves(args[n]):
            if isinstance(leaf, bool | int) or not (
                isinstance(leaf, float | complex) or is_inexact(leaf)
            ):
                raise NonDifferentiableError(
                    f"{transform} of {getattr(f, '__name__', 'f')} with respect to "
                    f"{_arg_name(f, n)}: {_why_not_inexact(leaf)}"
                )


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """Like `grad`, but the wrapped function returns `(value, gradient)`
    (`((value, aux), gradient)` with has_aux)."""

    @functools.wraps(f)
    def value_and_grad_f(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), "grad")
        _check_dyn(f, args, nums, "grad")
        res = vjp(_partial(f, args, kwargs, nums), *(args[n] for n in nums),
                  has_aux=has_aux, _transform="grad")
        out, f_vjp = res[0], res[1]
        if _shape(out) != () or not is_inexact(out) or dnp.iscomplexobj(out):
            raise TransformError(
                f"grad requires {getattr(f, '__name__', 'the function')} to return a real "
                f"scalar, but it returned shape {_shape(out)} with dtype "
                f"{getattr(out, 'dtype', type(out).__name__)}. For a vector output use "
                f"vjp or jacrev; for a sum of outputs, return dnp.sum(...)."
            )
        g = f_vjp(dnp.ones_like(out), _consume=True)
        g = g[0] if isinstance(argnums, int) else g
        return ((out, res[2]), g) if has_aux else (out, g)

    return value_and_grad_f


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The gradient of a real scalar function with respect to argument(s) `argnums`.

    >>> import diffkit.numpy as dnp
    >>> float(grad(lambda x: dnp.sin(x) * x)(0.0))
    0.0
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f


# -- forward mode ------------------------------------------------------------------------
def jvp(f: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False):
    """Evaluate `f(*primals)` and its directional derivative along `tangents`.

    Returns `(out, tangent_out)` (and `aux` with has_aux). `primals` and `tangents` are
    sequences of pytrees of the same structure, shapes and dtypes.

    >>> out, t = jvp(lambda x: x ** 3, (2.0,), (1.0,))
    >>> float(t)
    12.0
    """
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TransformError(
            "jvp(f, primals, tangents) takes primals and tangents as tuples or lists, "
            f"got {type(primals).__name__} and {type(tangents).__name__}"
        )
    flat_p, tree_p = pytree.flatten(tuple(primals))
    flat_t, tree_t = pytree.flatten(tuple(tangents))
    if tree_p != tree_t:
        raise TransformError(
            f"jvp: primals have structure {tree_p!r} but tangents have {tree_t!r}"
        )
    _refuse_non_arrays(flat_p, "jvp")
    trace = JVPTrace()
    boxed = []
    like = _array_like(flat_p)
    for i, (p, t) in enumerate(zip(flat_p, flat_t, strict=True)):
        if isinstance(p, float | complex):
            p = dnp.asarray(p, like=like)
        if not is_inexact(p):
            _refuse_integer_direction(t, p, i)
            boxed.append(p)  # integers carry no tangent: constant
            continue
        boxed.append(trace.box(p, _fit_user(t, p, f"jvp: tangent leaf {i}", "primal")))
    try:
        out = f(*pytree.unflatten(tree_p, boxed))
    finally:
        trace.active = False
    out, aux = _split_aux(out, has_aux, "jvp")
    aux = pytree.map(lambda a: _strip(a, trace), aux)
    flat_o, tree_o = pytree.flatten(out)
    outs, touts = [], []
    for o in flat_o:
        if isinstance(o, JVPTracer) and o._trace is trace:
            outs.append(o.primal)
            touts.append(o.tangent)
        else:
            outs.append(o)
            touts.append(dnp.zeros_like(o))
    res = (pytree.unflatten(tree_o, outs), pytree.unflatten(tree_o, touts))
    return (*res, aux) if has_aux else res


def linearize(f: Callable, *primals):
    """Return `(f(*primals), f_jvp)` with `f_jvp(*tangents)` the JVP at `primals`.

    Unlike JAX, diffkit does not stage out a linear program: `f_jvp` re-runs the forward
    pass under `jvp` each call (same results, the cost of one JVP per call).
    """
    _refuse_non_arrays(pytree.leaves(primals), "linearize")
    out = f(*primals)

    def f_jvp(*tangents):
        return jvp(f, primals, tangents)[1]

    return out, f_jvp


def hvp(f: Callable, primals: Sequence, tangents: Sequence):
    """Hessian-vector product of scalar `f` at `primals` along `tangents`
    (forward-over-reverse: `jvp(grad(f), primals, tangents)[1]`)."""
    return jvp(grad(f), primals, tangents)[1]


def stop_gradient(x):
    """`x` (an array or a pytree of them) with no derivative flowing through it, at any
    order (JAX's `stop_gradient`)."""
    return pytree.map(lambda a: a if type(a) in (int, float, complex, bool)
                      else dnp.stop_gradient(a), x)


# -- Jacobians ---------------------------------------------------------------------------
def _unit_vectors(leaves):
    """For each input leaf, (leaf index, identity matrix of its size) as basis source."""
    return [dnp.eye(max(1, _size(x)), dtype=x.dtype, like=x) for x in leaves]


def _size(x):
    n = 1
    for d in _shape(x):
        n *= d
    return n


def jacfwd(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The Jacobian of `f` by forward mode: one JVP per input element.

    The result for output leaf `o` and input leaf `x` has shape `o.shape + x.shape`,
    nested as the output tree of (input tree of arrays), as in JAX.
    """

    def jacfun(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), "jacfwd")
        _check_dyn(f, args, nums, "jacfwd")
        dyn = tuple(args[n] for n in nums)
        flat_in, in_tree = pytree.flatten(dyn)
        flat_in = [dnp.asarray(x) if isinstance(x, float | complex) else x for x in flat_in]
        g = _partial(f, args, kwargs, nums)
        eyes = _unit_vectors(flat_in)
        columns = []  # per input leaf: list over its elements of flat output tangents
        out = aux = None
        for j, x in enumerate(flat_in):
            cols = []
            for e in range(_size(x)):
                tangents = [dnp.zeros_like(y) for y in flat_in]
                tangents[j] = dnp.reshape(eyes[j][e], _shape(x))
                res = jvp(g, pytree.unflatten(in_tree, flat_in),
                          pytree.unflatten(in_tree, tangents), has_aux=has_aux)
                out, t_out = res[0], res[1]
                aux = res[2] if has_aux else None
                cols.append(pytree.leaves(t_out))
            columns.append(cols)
        if out is None:
            res = g(*pytree.unflatten(in_tree, flat_in))
            out, aux = _split_aux(res, has_aux, "jacfwd")
        flat_out, out_tree = pytree.flatten(out)
        jac = []
        for k, o in enumerate(flat_out):
            per_in = []
            for j, x in enumerate(flat_in):
                cols = [c[k] for c in columns[j]]
                stacked = dnp.stack(cols, axis=-1) if cols else dnp.zeros_like(x)
                per_in.append(dnp.reshape(stacked, _shape(o) + _shape(x)))
            jac.append(_nest(per_in, in_tree, argnums))
        result = pytree.unflatten(out_tree, jac)
        return (result, aux) if has_aux else result

    return jacfun


def jacrev(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The Jacobian of `f` by reverse mode: one forward pass, one VJP per output element.

    Same layout as `jacfwd`: output leaf shape + input leaf shape.
    """

    def jacfun(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), "jacrev")
        _check_dyn(f, args, nums, "jacrev")
        dyn = tuple(args[n] for n in nums)
        res = vjp(_partial(f, args, kwargs, nums), *dyn, has_aux=has_aux, _transform="jacrev")
        out, f_vjp = res[0], res[1]
        flat_out, out_tree = pytree.flatten(out)
        flat_in, in_tree = pytree.flatten(dyn)
        eyes = _unit_vectors(flat_out)
        jac = []
        for k, o in enumerate(flat_out):
            rows = []  # per output element: flat input cotangents
            for e in range(_size(o)):
                cts = [dnp.zeros_like(y) for y in flat_out]
                cts[k] = dnp.reshape(eyes[k][e], _shape(o))
                rows.append(pytree.leaves(f_vjp(pytree.unflatten(out_tree, cts))))
            per_in = []
            for j, x in enumerate(flat_in):
                stacked = dnp.stack([r[j] for r in rows], axis=0)
                per_in.append(dnp.reshape(stacked, _shape(o) + _shape(x)))
            jac.append(_nest(per_in, in_tree, argnums))
        result = pytree.unflatten(out_tree, jac)
        return (result, res[2]) if has_aux else result

    return jacfun


def _nest(per_in, in_tree, argnums):
    tree = pytree.unflatten(in_tree, per_in)
    return tree[0] if isinstance(argnums, int) else tree


def hessian(f: Callable, argnums: int | Sequence[int] = 0):
    """The Hessian of scalar `f`: `jacfwd(jacrev(f))` (forward-over-reverse)."""
    return jacfwd(jacrev(f, argnums), argnums)

