"""Transforms: JAX's names and semantics, nesting to any order, pytrees, custom rules."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import LeakedTracerError, NonDifferentiableError, RuleError, TransformError
from diffkit.testing import check_grads, to_numpy


def f_scalar(x):
    return dnp.sum(dnp.sin(x) * dnp.exp(x) / (1.0 + x * x))


def np_close(a, b, tol=1e-10):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tol, atol=tol)


def test_grad_matches_hand_derivative(to_backend):
    x = to_backend(np.array([0.3, -1.2, 2.0]))
    g = dk.grad(lambda x: dnp.sum(dnp.sin(x) * x))(x)
    xn = to_numpy(x)
    np_close(g, np.cos(xn) * xn + np.sin(xn))


def test_grad_of_grad_of_grad():
    f = lambda x: dnp.sin(x) * x
    x = 1.3
    third = dk.grad(dk.grad(dk.grad(f)))(x)
    assert float(third) == pytest.approx(-3 * np.sin(x) - x * np.cos(x), rel=1e-12)


def test_check_grads_third_order(to_backend):
    check_grads(f_scalar, (to_backend(np.array([0.2, 0.7, -0.4])),), order=3)


def test_value_and_grad_argnums_tuple_and_has_aux(to_backend):
    def loss(w, b, scale):
        r = dnp.tanh(w * scale + b)
        return dnp.sum(r * r), {"r": r}

    w, b = to_backend(np.array([0.5, -0.3])), to_backend(np.array([0.1, 0.2]))
    (value, aux), (gw, gb) = dk.value_and_grad(loss, argnums=(0, 1), has_aux=True)(w, b, 2.0)
    assert type(gw) is type(w)
    w, b = to_numpy(w), to_numpy(b)
    r = np.tanh(w * 2 + b)
    assert float(value) == pytest.approx(np.sum(r * r))
    np_close(aux["r"], r)
    np_close(gw, 2 * r * (1 - r * r) * 2)
    np_close(gb, 2 * r * (1 - r * r))
    g_only, aux2 = dk.grad(loss, has_aux=True)(to_backend(w), to_backend(b), 2.0)
    np_close(g_only, gw)


def test_jvp_vjp_agree_and_linearize(to_backend):
    f = lambda x, y: dnp.exp(x) * y - dnp.cos(x * y)
    x, y = to_backend(np.array([0.1, 0.4])), to_backend(np.array([1.5, -0.5]))
    u, v = to_backend(np.array([1.0, 2.0])), to_backend(np.array([-0.5, 0.3]))
    out, t = dk.jvp(f, (x, y), (u, v))
    out2, f_vjp = dk.vjp(f, x, y)
    w = to_backend(np.array([0.7, -1.1]))
    cx, cy = f_vjp(w)
    dot = lambda a, b: float(np.dot(to_numpy(a), to_numpy(b)))
    assert dot(w, t) == pytest.approx(dot(cx, u) + dot(cy, v), rel=1e-12)
    out3, f_lin = dk.linearize(f, x, y)
    np_close(f_lin(u, v), t)
    np_close(out3, out)


def test_hvp_and_hessian(to_backend):
    def f(x):
        return dnp.sum(dnp.exp(x) * dnp.sin(x)) + dnp.sum(x) ** 2

    x = np.array([0.3, -0.2, 0.9])
    h = dk.hessian(f)(to_backend(x))
    expected = np.diag(2 * np.exp(x) * np.cos(x)) + 2 * np.ones((3, 3))
    np_close(h, expected)
    v = np.array([1.0, -2.0, 0.5])
    np_close(dk.hvp(f, (to_backend(x),), (to_backend(v),)), expected @ v)


def test_jacfwd_equals_jacrev_with_pytrees(to_backend):
    def f(p):
        return {"a": dnp.sin(p["x"]) * p["y"], "b": dnp.sum(p["x"] * p["x"])}

    p = to_backend({"x": np.array([0.1, 0.2, 0.3]), "y": np.array(2.0)})
    jf, jr = dk.jacfwd(f)(p), dk.jacrev(f)(p)
    assert jf["a"]["x"].shape == (3, 3) and jf["a"]["y"].shape == (3,)
    for k in "ab":
        for leaf in "xy":
            np_close(jf[k][leaf], jr[k][leaf])
    np_close(jf["a"]["x"], np.diag(np.cos(to_numpy(p["x"])) * 2.0))


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Params:
    w: object
    b: object


class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b


dk.tree.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, c: Pair(*c))


def test_gradients_come_back_in_the_input_structure():
    def loss(tree):
        pt, params, pair, none, lst = tree
        return dnp.sum(pt.x * pt.y + params.w * params.b + pair.a * pair.b + lst[0])

    tree = (Point(1.0, 2.0), Params(np.array([3.0]), np.array([4.0])),
            Pair(np.array(5.0), np.array(6.0)), None, [np.array([7.0, 8.0])])
    g = dk.grad(loss)(tree)
    assert isinstance(g[0], Point) and isinstance(g[1], Params) and isinstance(g[2], Pair)
    assert g[3] is None
    # every term is broadcast over lst[0]'s two elements, so each gradient counts twice
    assert float(g[0].x) == 4.0 and float(g[1].w[0]) == 8.0 and float(g[2].b) == 10.0
    np_close(g[4][0], np.ones(2))


def test_closure_over_outer_tracer_nests_correctly():
    # d/dx [ d/dy (x*y)^2 at y=1 ] = d/dx 2x^2 = 4x  (no perturbation confusion)
    outer = dk.grad(lambda x: dk.grad(lambda y: (x * y) ** 2)(1.0))
    assert float(outer(3.0)) == pytest.approx(12.0)


def test_stop_gradient():
    f = lambda x: x * dk.stop_gradient(x)
    assert float(dk.grad(f)(3.0)) == 3.0
    assert float(dk.grad(dk.grad(f))(3.0)) == 0.0


def test_custom_vjp_is_used_and_checked():
    @dk.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (dnp.tanh(g),))
    assert float(dk.grad(lambda x: 5.0 * clip_gradient(x))(2.0)) == pytest.approx(np.tanh(5))

    @dk.custom_vjp
    def two_args(x, y):
        return x * y

    two_args.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(RuleError, match=r"VJP rule of 'two_args' returned 1 cotangent\(s\), "
                                        r"but 'two_args' takes 2"):
        dk.grad(two_args)(1.0, 2.0)

    @dk.custom_vjp
    def bad_shape(x):
        return dnp.sum(x)

    bad_shape.defvjp(lambda x: (dnp.sum(x), None), lambda res, g: (dnp.ones_like(g),))
    with pytest.raises(RuleError, match=r"cotangent of shape \(\) for argument 0, whose "
                                        r"shape is \(3,\)"):
        dk.grad(bad_shape)(np.ones(3))


def test_custom_vjp_residuals_and_second_order():
    @dk.custom_vjp
    def my_exp(x):
        return dnp.exp(x)

    my_exp.defvjp(lambda x: (dnp.exp(x), dnp.exp(x)), lambda ans, g: (g * ans,))
    x = np.array([0.2, 0.5])
    np_close(dk.grad(lambda x: dnp.sum(my_exp(x)))(x), np.exp(x))
    assert float(dk.grad(dk.grad(my_exp))(0.3)) == pytest.approx(np.exp(0.3))


def test_custom_jvp_serves_forward_and_reverse():
    @dk.custom_jvp
    def softlog(x):
        return dnp.log(x)

    softlog.defjvp(lambda p, t: (softlog(p[0]), t[0] / p[0]))
    assert float(dk.grad(softlog)(2.0)) == pytest.approx(0.5)
    assert float(dk.jvp(softlog, (2.0,), (3.0,))[1]) == pytest.approx(1.5)
    assert float(dk.grad(dk.grad(softlog))(2.0)) == pytest.approx(-0.25)


def test_grad_of_non_scalar_output_is_a_clear_error():
    with pytest.raises(TransformError, match=r"grad requires .* real scalar.*shape \(2,\).*"
                                             r"use vjp or jacrev"):
        dk.grad(lambda x: x * 2.0)(np.array([1.0, 2.0]))


def test_grad_of_integer_input_names_the_argument():
    def count(x, n):
        return x * n

    with pytest.raises(NonDifferentiableError, match=r"argument 1 \(`n`\).*dtype int"):
        dk.grad(count, argnums=1)(2.0, np.array(3))
    with pytest.raises(NonDifferentiableError, match="integer or boolean"):
        dk.grad(count, argnums=1)(2.0, 3)


def test_bad_argnums_is_a_clear_error():
    with pytest.raises(TransformError, match=r"argnums=2 but the function was called with 1"):
        dk.grad(lambda x: x, argnums=2)(1.0)


def test_leaked_tracer_is_a_clear_error():
    stash = []

    def f(x):
        stash.append(x)
        return x * 2.0

    dk.grad(f)(1.0)
    with pytest.raises(LeakedTracerError, match=r"traced by `grad` was used in `multiply` "
                                                r"after that transform returned"):
        stash[0] * 3.0


def test_traced_value_refuses_silent_numpy_conversion():
    with pytest.raises(TypeError, match="use diffkit.numpy"):
        dk.grad(lambda x: np.asarray(x).sum())(np.ones(2))


def test_jvp_structure_mismatch_is_a_clear_error():
    with pytest.raises(TransformError, match="tangent leaf 0 has shape"):
        dk.jvp(dnp.sin, (np.ones(3),), (np.ones(2),))


@pytest.mark.slow
def test_million_primitive_chain_has_no_recursion_limit():
    def chain(x):
        for _ in range(1_000_000):
            x = x + 1e-7
        return x

    assert float(dk.grad(chain)(np.array(0.5))) == 1.0


def test_python_control_flow_on_concrete_values():
    def f(x):
        return dnp.sin(x) if x > 0 else dnp.cos(x)  # bool() of a comparison: allowed

    assert float(dk.grad(f)(0.5)) == pytest.approx(np.cos(0.5))
    assert float(dk.grad(f)(-0.5)) == pytest.approx(np.sin(0.5))


def test_constant_output_gets_zero_gradient():
    np_close(dk.grad(lambda x: dnp.sum(dk.stop_gradient(x)))(np.ones(2)), np.zeros(2))


def test_tangent_of_a_broadcast_input_is_stretched_to_the_output():
    X = np.ones((4, 3))
    y = np.arange(4.0).reshape(4, 1)
    out, t = dk.jvp(lambda y: X - y, (y,), (np.ones((4, 1)),))
    assert t.shape == (4, 3) and np.all(t == -1.0)
    # the same inside a second-order computation (the tangents are traced there)
    h = dk.hessian(lambda y: dnp.sum(dnp.exp(X - y)))(y)
    assert h.shape == (4, 1, 4, 1)


def test_stop_gradient_on_a_pytree():
    def f(p):
        frozen = dk.stop_gradient(p)
        return dnp.sum(p["a"] * frozen["a"]) + p["b"] * frozen["b"]

    g = dk.grad(f)({"a": np.array([1.0, 2.0]), "b": 3.0})
    np.testing.assert_allclose(g["a"], [1.0, 2.0])
    assert float(g["b"]) == 3.0


def test_custom_vjp_and_custom_jvp_with_nondiff_argnums():
    import functools

    @functools.partial(dk.custom_vjp, nondiff_argnums=(0,))
    def apply(fn, x):
        return fn(x)

    apply.defvjp(lambda fn, x: (fn(x), x), lambda fn, x, g: (g * 2.0 * x,))
    assert float(dk.grad(lambda x: apply(lambda v: v * v, x))(3.0)) == 6.0

    @functools.partial(dk.custom_jvp, nondiff_argnums=(1,))
    def power(x, n):
        return x ** n

    power.defjvp(lambda n, p, t: (p[0] ** n, n * p[0] ** (n - 1) * t[0]))
    assert float(dk.grad(power)(2.0, 3)) == 12.0
    assert float(dk.jvp(lambda x: power(x, 3), (2.0,), (1.0,))[1]) == 12.0
    with pytest.raises(TransformError, match=r"nondiff_argnums=\(1,\) is a traced value"):
        dk.grad(lambda x: power(x, x), argnums=0)(2.0)


def test_custom_rule_not_set_is_a_clear_error():
    def identity(x):
        return x

    with pytest.raises(TransformError, match=r"custom_vjp function 'identity' was "
                                             r"differentiated before its rule was set.*defvjp"):
        dk.grad(dk.custom_vjp(identity))(1.0)
    with pytest.raises(TransformError, match=r"custom_jvp function 'identity'.*defjvp"):
        dk.grad(dk.custom_jvp(identity))(1.0)
