"""Every way a program could lose a derivative silently is either right or a clear error:
tracer-to-Python conversions, plain NumPy functions on traced values, repeated argnums,
gradients taken in threads (GC settings), and pytrees that are deep, mixed-key or foreign."""

from __future__ import annotations

import gc
import math
import operator
import sys
import threading

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.core.tracer import Tracer
from diffkit.errors import ConcretizationError, NonDifferentiableError, PytreeError, TransformError
from diffkit.testing import to_numpy


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tol, atol=tol)


# -- 1. a traced value never becomes a Python number while its derivative is live ---------
INDEX = r"operator\.index\(x\) \(x used as an index or a size\)"
CONVERSIONS = {  # name: (what the user writes, what the error quotes)
    "float": (lambda x: float(x) * x, r"float\(x\)"),
    "int": (lambda x: int(x) * x, r"int\(x\)"),
    "complex": (lambda x: complex(x).real * x, r"complex\(x\)"),
    "index": (lambda x: operator.index(x) * x, INDEX),
    "item": (lambda x: x.item() * x, r"x\.item\(\)"),
    "tolist": (lambda x: x.tolist() * x, r"x\.tolist\(\)"),
    "math.exp": (lambda x: math.exp(x) * x, r"float\(x\)"),
    "range": (lambda x: sum(x for _ in range(x)), INDEX),
}


@pytest.mark.parametrize("name", CONVERSIONS)
def test_conversion_to_python_under_grad_is_refused(name, to_backend):
    f, quoted = CONVERSIONS[name]
    with pytest.raises(ConcretizationError, match=quoted + r" would turn a value traced by "
                       r"`grad` into plain Python data.*dk\.stop_gradient\(x\)"):
        dk.grad(f)(to_backend(np.array(3.0)))


def test_the_issue_example_raises_instead_of_giving_3():
    with pytest.raises(ConcretizationError, match=r"float\(dk\.stop_gradient\(x\)\)"):
        dk.grad(lambda x: float(x) * x)(3.0)


def test_storing_into_a_numpy_array_is_refused(to_backend):
    def f(x):
        y = np.zeros(2)
        y[0] = x  # NumPy calls float(x), and reports our error as the cause of its own
        return x * y[0]

    with pytest.raises(ValueError) as info:
        dk.grad(f)(to_backend(np.array(3.0)))
    assert isinstance(info.value.__cause__, ConcretizationError)
    assert "not storing x into a NumPy array" in str(info.value.__cause__)


@pytest.mark.parametrize("transform, quoted", [
    (lambda f, x: dk.jvp(f, (x,), (dnp.ones_like(x),)), "jvp"),
    (lambda f, x: dk.vjp(f, x), "vjp"),
    (lambda f, x: dk.hessian(f)(x), "jacrev"),  # hessian = jacfwd(jacrev(f)): the inner one
    (lambda f, x: dk.jacfwd(f)(x), "jvp"),
    (lambda f, x: dk.grad(dk.grad(f))(x), "grad"),
])
def test_conversion_is_refused_by_every_transform(transform, quoted, to_backend):
    with pytest.raises(ConcretizationError, match=rf"float\(x\) would turn a value traced by "
                       rf"`{quoted}`"):
        transform(lambda x: float(x) * x, to_backend(np.array(2.0)))


def test_outer_derivative_through_a_finished_inner_trace_is_refused(to_backend):
    """An inner tracer whose transform ended still wraps the outer one's live value."""
    def outer(x):
        kept = []
        dk.grad(lambda y: kept.append(y * x) or y * x)(to_backend(np.array(1.0)))
        return float(kept[0]) * x  # kept[0]'s own trace is over; grad's of x is not

    with pytest.raises(ConcretizationError, match=r"traced by `grad`"):
        dk.grad(outer)(to_backend(np.array(2.0)))


def test_stop_gradient_reads_the_value_on_purpose(to_backend):
    x = to_backend(np.array(3.0))
    close(dk.grad(lambda x: float(dk.stop_gradient(x)) * x)(x), 3.0)
    close(dk.grad(lambda x: dk.stop_gradient(x).item() * x * x)(x), 18.0)
    close(dk.hessian(lambda x: float(dk.stop_gradient(x)) * x ** 2)(x), 6.0)
    close(dk.jvp(lambda x: float(dk.stop_gradient(x)) * x, (x,), (dnp.ones_like(x),))[1], 3.0)


def test_bool_comparisons_and_formatting_stay_allowed(to_backend):
    def f(x):
        while x < 10.0:  # Python control flow on a traced value
            x = x * 2.0
        assert bool(x) and f"{x:.1f}" == "12.0"
        return x * x if x == x else x

    close(dk.grad(f)(to_backend(np.array(3.0))), 2 * 12.0 * 4)  # x -> 4x, then squared


def test_integer_valued_tracers_convert_to_indices(to_backend):
    def f(x):
        k = (x * 1.0).astype(int)  # an integer tracer: it carries no derivative
        assert isinstance(k, Tracer)
        return x * [10.0, 20.0, 30.0][k] + x * int(k) + x * len(range(k))

    close(dk.grad(f)(to_backend(np.array(2.0))), 30.0 + 2 + 2)


def test_a_leaked_tracer_converts_after_its_transform_ended(to_backend):
    kept = []
    dk.grad(lambda x: kept.append(x * 2.0) or x * 2.0)(to_backend(np.array(1.5)))
    assert float(kept[0]) == 3.0  # no transform is running: no derivative to lose


# -- 2. plain NumPy functions on traced values ----------------------------------------------
REDUCTIONS = ["sum", "mean", "prod", "max", "min", "std", "var", "cumsum", "cumprod"]


@pytest.mark.parametrize("name", REDUCTIONS)
def test_numpy_reductions_work_like_diffkit_numpy(name, to_backend):
    x = to_backend(np.array([[0.3, -1.2, 2.0], [0.7, 1.1, -0.4]]))
    for kw in ({}, {"axis": 0}, {"axis": -1}):
        if name in ("cumsum", "cumprod") and not kw:
            kw = {"axis": None}
        want = dk.value_and_grad(lambda x, kw=kw: dnp.sum(getattr(dnp, name)(x * x, **kw)))(x)
        got = dk.value_and_grad(lambda x, kw=kw: dnp.sum(getattr(np, name)(x * x, **kw)))(x)
        close(got[0], want[0])
        close(got[1], want[1])


def test_numpy_reduction_keywords_initial_where_dtype_keepdims(to_backend):
    x = to_backend(np.array([0.3, -1.2, 2.0, 0.7]))
    mask = to_backend(np.array([True, False, True, True]))
    cases = [  # (numpy call on the traced value, the same written with dnp)
        (lambda x: np.sum(x, initial=2.0, keepdims=True), lambda x: dnp.sum(x) + 2.0),
        (lambda x: np.sum(x * x, where=mask), lambda x: dnp.sum(x[mask] * x[mask])),
        (lambda x: np.prod(x, where=mask, initial=3.0), lambda x: dnp.prod(x[mask]) * 3.0),
        (lambda x: np.max(x, where=mask, initial=-5.0), lambda x: dnp.max(x[mask])),
        (lambda x: np.min(x, initial=-5.0), lambda x: -5.0 + 0.0 * dnp.sum(x)),
        (lambda x: np.mean(x * x, where=mask), lambda x: dnp.mean(x[mask] * x[mask])),
        (lambda x: np.sum(x, dtype=x.dtype), lambda x: dnp.sum(x)),
        (lambda x: np.std(x, ddof=1), lambda x: dnp.std(x, ddof=1)),
        (lambda x: x[0] * np.all(x - x[1], where=~mask), lambda x: 0.0 * x[0]),
        (lambda x: x[0] * np.all(x - x[1], where=mask), lambda x: x[0]),
        (lambda x: x[0] * np.any(x - x[1], where=~mask), lambda x: 0.0 * x[0]),
    ]
    for via_numpy, via_dnp in cases:
        got = dk.value_and_grad(lambda x, f=via_numpy: dnp.sum(f(x)))(x)
        want = dk.value_and_grad(lambda x, f=via_dnp: dnp.sum(f(x)))(x)
        close(got[0], want[0])
        close(got[1], want[1])


def test_numpy_reduction_keywords_that_cannot_work_say_why(to_backend):
    x = to_backend(np.array([0.3, -1.2, 2.0]))
    mask = np.array([True, False, True])
    with pytest.raises(TransformError, match=r"numpy\.max\(x, where=mask\).*pass initial="):
        dk.grad(lambda x: np.max(x, where=mask))(x)
    with pytest.raises(TransformError, match=r"numpy\.std\(x, where=mask\).*x\[mask\]"):
        dk.grad(lambda x: np.std(x, where=mask))(x)
    with pytest.raises(TypeError, match=r"dnp\.sum does not support out="):
        dk.grad(lambda x: np.sum(x, out=np.zeros(())))(x)


@pytest.mark.parametrize("call, quoted", [
    (lambda x: np.sin(x), r"numpy\.sin was called on a traced value.*dnp\.sin\(\.\.\.\)"),
    (lambda x: np.exp(x) * x, r"numpy\.exp was called"),
    (lambda x: np.negative(x), r"numpy\.negative was called"),
    (lambda x: np.add.reduce(x), r"numpy\.add\.reduce was called"),
    (lambda x: np.multiply(np.ones(3), x, dtype=np.float32), r"numpy\.multiply was called"),
])
def test_other_numpy_ufuncs_point_to_diffkit_numpy(call, quoted, to_backend):
    with pytest.raises(ConcretizationError, match=quoted):
        dk.grad(lambda x: dnp.sum(call(x)))(to_backend(np.array([0.3, -1.2, 2.0])))


def test_writing_into_a_numpy_array_in_place_says_how_to_rebind(to_backend):
    def f(x):
        y = np.ones(3)
        y += x
        return dnp.sum(y)

    with pytest.raises(ConcretizationError, match=r"`y \+= x`.*write `y = y \+ x`"):
        dk.grad(f)(to_backend(np.array([0.3, -1.2, 2.0])))


def test_numpy_operands_on_the_left_keep_working():
    x = np.array([0.3, 1.2, 2.0])
    c = np.array([1.5, -0.5, 2.5])
    s = np.float64(2.0)
    cases = [  # (expression with NumPy data on the left, its gradient)
        (lambda x: c + x, np.ones(3)),
        (lambda x: c - x, -np.ones(3)),
        (lambda x: c * x, c),
        (lambda x: c / x, -c / x ** 2),
        (lambda x: np.abs(c) ** x, np.abs(c) ** x * np.log(np.abs(c))),
        (lambda x: s * x, np.full(3, 2.0)),
        (lambda x: s ** x, 2.0 ** x * np.log(2.0)),
        (lambda x: np.float32(3.0) - x, -np.ones(3)),
        (lambda x: (c < x) * x, (c < x).astype(float)),
        (lambda x: (c == x) + x, np.ones(3)),
    ]
    for expr, want in cases:
        close(dk.grad(lambda x, f=expr: dnp.sum(f(x)))(x), want)
    m = np.arange(6.0).reshape(2, 3)
    close(dk.grad(lambda x: dnp.sum(m @ x))(x), m.sum(axis=0))


def test_backend_arrays_on_the_left_keep_working(to_backend):
    x = to_backend(np.array([0.3, 1.2, 2.0]))
    c = to_backend(np.array([1.5, -0.5, 2.5]))
    close(dk.grad(lambda x: dnp.sum(c * x + c / x - c))(x),
          to_numpy(c) - to_numpy(c) / to_numpy(x) ** 2)


# -- 4. repeated argnums ----------------------------------------------------------------
@pytest.mark.parametrize("transform", [dk.grad, dk.value_and_grad, dk.jacfwd, dk.jacrev,
                                       dk.hessian])
@pytest.mark.parametrize("argnums", [(0, 0), (1, -1)])
def test_repeated_argnums_are_refused(transform, argnums, to_backend):
    a, b = to_backend(np.array(1.0)), to_backend(np.array(2.0))
    with pytest.raises(TransformError, match=rf"argnums=\({argnums[0]}, {argnums[1]}\) names "
                       rf"argument\(s\) \[{argnums[0] % 2}\] more than once"):
        transform(lambda a, b: a * b, argnums=argnums)(a, b)


def test_bool_argnums_are_refused():
    with pytest.raises(TransformError, match=r"argnums=True but"):
        dk.grad(lambda a, b: a * b, argnums=True)(1.0, 2.0)


# -- 7. gradients in threads ------------------------------------------------------------
def test_gradients_in_threads_leave_the_gc_settings_and_are_right(to_backend):
    before = gc.get_threshold()
    wrong = []

    def work(k):
        x = to_backend(np.full(3, 0.1 * k))
        xn = to_numpy(x)
        for _ in range(60):
            g = dk.grad(lambda x: dnp.sum(dnp.sin(x) * x))(x)
            if not np.allclose(to_numpy(g), np.cos(xn) * xn + np.sin(xn), rtol=1e-12):
                wrong.append(k)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the old save/restore raced here
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert gc.get_threshold() == before
    assert wrong == []


def test_gc_settings_come_back_after_nesting_and_errors():
    before = gc.get_threshold()
    assert dk.grad(dk.grad(lambda x: x ** 3))(2.0) == 12.0
    with pytest.raises(ConcretizationError):
        dk.grad(lambda x: float(x))(2.0)
    assert gc.get_threshold() == before


# -- 8. pytrees: deep, mixed keys, foreign types ----------------------------------------
def _nested(leaf, depth):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def test_a_pytree_nested_thousands_deep_is_a_clear_error(to_backend):
    deep = _nested(to_backend(np.array(1.0)), 5000)
    with pytest.raises(PytreeError, match=r"nested more than 256 levels deep "
                       r"\(list > list > list > list > \.\.\.\)"):
        dk.grad(lambda t: dnp.sum(dk.tree.leaves(t)[0]))(deep)
    with pytest.raises(PytreeError, match="nested more than 256"):
        dk.tree.flatten(deep)


def test_a_pytree_at_the_depth_limit_works(to_backend):
    tree = _nested(to_backend(np.array(3.0)), dk.tree.MAX_DEPTH)
    leaves, td = dk.tree.flatten(tree)
    assert td.num_leaves == 1 and td == dk.tree.structure(tree)
    assert repr(td) == "list(" * dk.tree.MAX_DEPTH + "*" + ")" * dk.tree.MAX_DEPTH
    tree = tree[0]  # grad's tuple of arguments is one more level
    td = dk.tree.structure(tree)
    g = dk.grad(lambda t: dk.tree.leaves(t)[0] ** 2)(tree)
    close(dk.tree.leaves(g)[0], 6.0)
    assert dk.tree.structure(g) == td


def test_dict_keys_of_mixed_types_have_one_order(to_backend):
    x, y, z = (to_backend(np.array(v)) for v in (1.0, 2.0, 3.0))
    tree = {"a": x, 1: y, 0.5: z}
    leaves, td = dk.tree.flatten(tree)
    assert dk.tree.flatten({0.5: z, 1: y, "a": x})[1] == td  # insertion order does not matter
    g = dk.grad(lambda t: t["a"] * t[1] * t[0.5])(tree)
    assert set(g) == {"a", 1, 0.5}
    close(g["a"], 6.0)
    close(g[1], 3.0)
    close(g[0.5], 2.0)


def test_dict_keys_that_cannot_be_ordered_are_named():
    with pytest.raises(PytreeError, match=r"cannot be put in one order \(\(1, 'a'\), "
                       r"\(1, 2\)\).*Use str keys"):
        dk.grad(lambda t: t[(1, "a")] * t[(1, 2)])({(1, "a"): 1.0, (1, 2): 2.0})


def test_a_custom_class_argument_says_how_to_register_it(to_backend):
    class Params:
        def __init__(self, w):
            self.w = w

    p = Params(to_backend(np.array(2.0)))
    for call in (lambda: dk.grad(lambda p: p.w ** 2)(p), lambda: dk.vjp(lambda p: p.w, p)):
        with pytest.raises(NonDifferentiableError, match=r"it is a .*Params, which is neither "
                           r"an array nor a registered pytree node.*register_pytree_node"):
            call()
        try:
            call()
        except NonDifferentiableError as e:
            assert "integer or boolean" not in str(e)
    dk.tree.register_pytree_node(Params, lambda p: ((p.w,), None), lambda _, c: Params(*c))
    close(dk.grad(lambda p: p.w ** 2)(p).w, 4.0)
