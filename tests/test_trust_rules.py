"""What diffkit refuses or fits, so that no derivative comes out silently wrong: the rules
users write (custom_jvp / custom_vjp), the numbers users pass as (co)tangents, and the
Python numbers that reach built-in rules (x / 0.0)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import RuleError, TransformError
from diffkit.primitives import elementwise as EW
from diffkit.testing import to_numpy


def np_close(a, b, tol=1e-10):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tol, atol=tol)


def backend_type(x):
    """The array type of x's backend (np.ndarray / np.generic, or torch.Tensor)."""
    return (np.ndarray, np.generic) if isinstance(x, np.ndarray) else type(x)


# ---------------------------------------------------------------------------------------
# Item 3: the structure, shapes and dtypes of what custom rules return
# ---------------------------------------------------------------------------------------
def custom_sin(rule):
    """A custom_jvp sin whose JVP rule is `rule(primals, tangents)`."""

    @dk.custom_jvp
    def my_sin(x):
        return dnp.sin(x)

    return my_sin.defjvp(rule)


# Every way a transform reaches a custom rule: forward, reverse, and second order.
TRANSFORMS = {
    "jvp": lambda f, x: dk.jvp(f, (x,), (dnp.ones_like(x),)),
    "grad": lambda f, x: dk.grad(lambda x: dnp.sum(f(x)))(x),
    "vjp": lambda f, x: dk.vjp(f, x)[1](dnp.ones_like(x)),
    "hessian": lambda f, x: dk.hessian(lambda x: dnp.sum(f(x)))(x),
}


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_custom_jvp_rule_returning_a_bare_array_is_refused(transform, to_backend):
    # a tangent of shape (2,) was unpacked along axis 0 into (primal, tangent) before
    f = custom_sin(lambda p, t: dnp.cos(p[0]) * t[0])
    with pytest.raises(RuleError, match=r"JVP rule of 'my_sin' returned an array of shape "
                                        r"\(2,\); it must return a pair \(primal_out, "
                                        r"tangent_out\)"):
        TRANSFORMS[transform](f, to_backend(np.array([0.3, 0.7])))


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_custom_jvp_tangent_of_the_wrong_shape_is_refused(transform, to_backend):
    f = custom_sin(lambda p, t: (dnp.sin(p[0]), dnp.sum(dnp.cos(p[0]) * t[0])))
    with pytest.raises(RuleError, match=r"JVP rule of 'my_sin' returned a tangent of shape "
                                        r"\(\) for its output, whose shape is \(2,\); they "
                                        r"must match"):
        TRANSFORMS[transform](f, to_backend(np.array([0.3, 0.7])))


def sin_cos(rule):
    """A custom_jvp returning a pair (sin x, cos x), with JVP rule `rule`."""

    @dk.custom_jvp
    def sincos(x):
        return dnp.sin(x), dnp.cos(x)

    return sincos.defjvp(rule)


PAIR_TRANSFORMS = {
    "jvp": lambda f, x: dk.jvp(f, (x,), (dnp.ones_like(x),)),
    "grad": lambda f, x: dk.grad(lambda x: dnp.sum(f(x)[0] + f(x)[1]))(x),
    "hessian": lambda f, x: dk.hessian(lambda x: dnp.sum(f(x)[1]))(x),
}


@pytest.mark.parametrize("transform", sorted(PAIR_TRANSFORMS))
def test_custom_jvp_tangent_structure_and_dtype_are_checked(transform, to_backend):
    x = to_backend(np.array([0.3, 0.7]))
    one_tangent = sin_cos(lambda p, t: ((dnp.sin(p[0]), dnp.cos(p[0])), dnp.cos(p[0]) * t[0]))
    with pytest.raises(RuleError, match=r"JVP rule of 'sincos' returned a tangent of "
                                        r"structure \* for its output, whose structure is "
                                        r"tuple\(\*, \*\)"):
        PAIR_TRANSFORMS[transform](one_tangent, x)
    complex_tangent = sin_cos(lambda p, t: ((dnp.sin(p[0]), dnp.cos(p[0])),
                                            (dnp.cos(p[0]) * t[0], -1j * t[0])))
    with pytest.raises(RuleError, match=r"JVP rule of 'sincos' returned a tangent of dtype "
                                        r".*complex.* for its output\[1\], whose dtype is "
                                        r".*float64: it must be a real floating value"):
        PAIR_TRANSFORMS[transform](complex_tangent, x)


def test_custom_jvp_rule_primal_must_be_the_functions_output(to_backend):
    f = custom_sin(lambda p, t: ((dnp.sin(p[0]), 0.0), dnp.cos(p[0]) * t[0]))
    with pytest.raises(RuleError, match=r"JVP rule of 'my_sin' returned a primal output of "
                                        r"structure tuple\(\*, \*\).*the function returns "
                                        r"structure \*"):
        dk.grad(lambda x: dnp.sum(f(x)))(to_backend(np.array([0.3, 0.7])))


def test_custom_jvp_integer_tangent_is_refused(to_backend):
    f = custom_sin(lambda p, t: (dnp.sin(p[0]), dnp.astype(t[0], "int64")))
    x = to_backend(np.array([0.3, 0.7]))
    with pytest.raises(RuleError, match=r"returned a tangent of dtype .*int64 for its output, "
                                        r"whose dtype is .*float64: it must be a real floating"):
        dk.jvp(f, (x,), (dnp.ones_like(x),))


def test_custom_jvp_fits_numbers_and_precision(to_backend):
    """A Python number for a 0-d output, and a float64 tangent for a float32 output, are
    what they say: the tangent becomes an array of the output's dtype and backend."""
    f = custom_sin(lambda p, t: (dnp.sin(p[0]), 2.0))
    x = to_backend(np.array(0.3, dtype=np.float32))
    _, t = dk.jvp(f, (x,), (dnp.ones_like(x),))
    assert isinstance(t, backend_type(x)) and "float32" in str(t.dtype)
    assert float(t) == 2.0
    g = custom_sin(lambda p, t: (dnp.sin(p[0]), dnp.astype(t[0], "float64") * 3.0))
    _, t = dk.jvp(g, (x,), (dnp.ones_like(x),))
    assert "float32" in str(t.dtype) and float(t) == 3.0
    assert float(dk.grad(g)(x)) == 3.0


def test_custom_jvp_none_tangent_is_a_zero(to_backend):
    f = sin_cos(lambda p, t: ((dnp.sin(p[0]), dnp.cos(p[0])), (dnp.cos(p[0]) * t[0], None)))
    x = to_backend(np.array([0.3, 0.7]))
    np_close(dk.grad(lambda x: dnp.sum(f(x)[0] + f(x)[1]))(x), np.cos([0.3, 0.7]))
    t = dk.jvp(f, (x,), (dnp.ones_like(x),))[1]
    np_close(t[0], np.cos([0.3, 0.7]))
    np_close(t[1], np.zeros(2))


def test_custom_jvp_integer_output_carries_no_tangent(to_backend):
    @dk.custom_jvp
    def sin_count(x):
        return dnp.sin(x), dnp.sum(x > 0)

    sin_count.defjvp(lambda p, t: (sin_count(p[0]), (dnp.cos(p[0]) * t[0], "ignored")))
    x = to_backend(np.array([0.3, -0.7]))
    (_, n), (t, tn) = dk.jvp(sin_count, (x,), (dnp.ones_like(x),))
    assert int(n) == 1 and int(tn) == 0
    np_close(t, np.cos([0.3, -0.7]))
    np_close(dk.grad(lambda x: dnp.sum(sin_count(x)[0]) * sin_count(x)[1])(x),
             np.cos([0.3, -0.7]))


def custom_scale(fwd, bwd):
    """A custom_vjp of `params['w'] * x` with the given rules."""

    @dk.custom_vjp
    def scale(params, x):
        return params["w"] * x

    return scale.defvjp(fwd, bwd)


def good_fwd(params, x):
    return params["w"] * x, (params, x)


VJP_TRANSFORMS = {
    "grad": lambda f, p, x: dk.grad(lambda p, x: dnp.sum(f(p, x)), argnums=(0, 1))(p, x),
    "vjp": lambda f, p, x: dk.vjp(f, p, x)[1](dnp.ones_like(x)),
    "hessian": lambda f, p, x: dk.hessian(lambda x: dnp.sum(f(p, x)))(x),
}


@pytest.mark.parametrize("transform", sorted(VJP_TRANSFORMS))
def test_custom_vjp_cotangent_structure_shape_dtype(transform, to_backend):
    p = {"w": to_backend(np.array([2.0, 3.0])), "b": to_backend(np.array(1.0))}
    x = to_backend(np.array([0.5, 0.25]))
    run = functools.partial(VJP_TRANSFORMS[transform], p=p, x=x)
    missing_b = custom_scale(good_fwd, lambda r, g: ({"w": g * r[1]}, g * r[0]["w"]))
    with pytest.raises(RuleError, match=r"VJP rule of 'scale' returned a cotangent of "
                                        r"structure dict\(\*\) for argument 0, whose "
                                        r"structure is dict\(\*, \*\)"):
        run(missing_b)
    wrong_b = custom_scale(good_fwd, lambda r, g: ({"w": g * r[1], "b": g}, g * r[0]["w"]))
    with pytest.raises(RuleError, match=r"VJP rule of 'scale' returned a cotangent of shape "
                                        r"\(2,\) for argument 0\['b'\], whose shape is \(\)"):
        run(wrong_b)
    complex_x = custom_scale(good_fwd, lambda r, g: (None, g * r[0]["w"] * (1 + 1j)))
    with pytest.raises(RuleError, match=r"VJP rule of 'scale' returned a cotangent of dtype "
                                        r".*complex.* for argument 1, whose dtype is .*float64"
                                        r": it must be a real floating value \(take dnp.real"):
        run(complex_x)


def test_custom_vjp_fwd_and_bwd_must_return_tuples(to_backend):
    x = to_backend(np.array([0.5, 0.25]))

    @dk.custom_vjp
    def double(x):
        return 2.0 * x

    double.defvjp(lambda x: 2.0 * dnp.stack([x, x]), lambda r, g: (2.0 * g,))
    with pytest.raises(RuleError, match=r"VJP forward rule \(fwd\) of 'double' returned an "
                                        r"array of shape \(2, 2\); it must return a pair "
                                        r"\(out, residuals\)"):
        dk.grad(lambda x: dnp.sum(double(x)))(x)
    double.defvjp(lambda x: (2.0 * x, None), lambda r, g: 2.0 * g)
    with pytest.raises(RuleError, match=r"VJP rule of 'double' returned an array of shape "
                                        r"\(2,\), but 'double' takes 1 argument"):
        dk.grad(lambda x: dnp.sum(double(x)))(x)


def test_custom_vjp_errors_name_the_argument_position_past_nondiff_argnums(to_backend):
    @functools.partial(dk.custom_vjp, nondiff_argnums=(0,))
    def apply(fn, x):
        return fn(x)

    apply.defvjp(lambda fn, x: (fn(x), x), lambda fn, x, g: (dnp.sum(g),))
    with pytest.raises(RuleError, match=r"cotangent of shape \(\) for argument 1, whose "
                                        r"shape is \(2,\)"):
        dk.grad(lambda x: dnp.sum(apply(dnp.sin, x)))(to_backend(np.array([0.5, 0.25])))


def test_custom_vjp_fits_numbers_nones_precision_and_ignores_integers(to_backend):
    @dk.custom_vjp
    def mixed(x, n, z):
        return x * n + dnp.real(z)

    mixed.defvjp(lambda x, n, z: (x * n + dnp.real(z), n),
                 lambda n, g: (dnp.astype(g * n, "float64"), "ignored", dnp.sum(g)))
    x = to_backend(np.array([0.5, 0.25], dtype=np.float32))
    n = to_backend(np.array([2, 3]))
    z = to_backend(np.array(1.0 + 2.0j, dtype=np.complex64))
    gx, gz = dk.grad(lambda x, z: dnp.sum(mixed(x, n, z)), argnums=(0, 1))(x, z)
    assert "float32" in str(gx.dtype) and "complex64" in str(gz.dtype)
    np_close(gx, [2.0, 3.0])
    np_close(gz, 2.0)

    @dk.custom_vjp
    def cube(x):
        return x ** 3

    cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3.0,))  # a number for a 0-d input
    g = dk.grad(cube)(to_backend(np.array(1.0, dtype=np.float32)))
    assert isinstance(g, backend_type(x)) and "float32" in str(g.dtype) and float(g) == 3.0


# ---------------------------------------------------------------------------------------
# Item 5: numbers given as cotangents and tangents are fitted exactly as arrays are
# ---------------------------------------------------------------------------------------
def scalar(to_backend, v, dtype=np.float64):
    return to_backend(np.array(v, dtype=dtype))


COTANGENT_KINDS = {
    "python": lambda v, x: v,
    "numpy-scalar": lambda v, x: np.complex128(v) if isinstance(v, complex) else np.float64(v),
    "array": lambda v, x: dnp.asarray(v, like=x),
}


@pytest.mark.parametrize("kind", sorted(COTANGENT_KINDS))
def test_real_input_gets_the_real_part_of_scalar_cotangents(kind, to_backend):
    x = scalar(to_backend, 0.4)
    ct = COTANGENT_KINDS[kind]
    (g,) = dk.vjp(dnp.imag, x)[1](ct(0.86, x))  # JAX: 0.0 (imag of a real x is constant)
    assert isinstance(g, backend_type(x)) and not dnp.iscomplexobj(g) and float(g) == 0.0
    (g,) = dk.vjp(lambda x: x * (1 + 2j), x)[1](ct(1 + 1j, x))  # Re((1+1j)(1+2j)) = -1
    assert isinstance(g, backend_type(x)) and not dnp.iscomplexobj(g) and float(g) == -1.0


def test_python_float_input_gets_a_real_cotangent():
    assert float(dk.vjp(dnp.imag, 0.4)[1](0.86)[0]) == 0.0
    (g,) = dk.vjp(lambda x: x * (1 + 2j), 0.4)[1](1 + 1j)
    assert not dnp.iscomplexobj(g) and float(g) == -1.0


def test_complex_cotangent_of_a_real_output_counts_its_real_part(to_backend):
    # real(x * (1+2j)) = x is a real output: only Re(ct) pairs with it (was -2.0)
    (g,) = dk.vjp(lambda x: dnp.real(x * (1 + 2j)), scalar(to_backend, 0.4))[1](1j)
    assert float(g) == 0.0


@pytest.mark.parametrize("kind", ["python", "numpy-scalar"])
def test_scalar_cotangent_takes_the_input_dtype_and_backend(kind, to_backend):
    x = scalar(to_backend, 0.4, np.float32)
    for f in (lambda x: x, lambda x: x * 2.0):
        (g,) = dk.vjp(f, x)[1](COTANGENT_KINDS[kind](1.0, x))
        assert isinstance(g, backend_type(x)) and "float32" in str(g.dtype)
    v = to_backend(np.array([0.4, 0.5], dtype=np.float32))
    (g,) = dk.vjp(lambda v: v * 2.0, v)[1](1.0)  # a number stands for it in every element
    assert "float32" in str(g.dtype)
    np_close(g, [2.0, 2.0])


def test_scalar_tangents_are_fitted_as_arrays_are(to_backend):
    x = scalar(to_backend, 0.4, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: the real part is taken on purpose
        for t in (1.0, np.float64(1.0), 1 + 1j, np.complex128(1 + 1j)):
            _, tout = dk.jvp(lambda x: x, (x,), (t,))
            assert isinstance(tout, backend_type(x)) and "float32" in str(tout.dtype)
            assert float(tout) == 1.0
            _, tout = dk.jvp(lambda x: x * (1 + 2j), (x,), (t,))
            assert complex(tout) == 1 + 2j
        _, f_jvp = dk.linearize(lambda x: x * 3.0, x)
        tout = f_jvp(1 + 5j)
        assert "float32" in str(tout.dtype) and float(tout) == 3.0


def test_numpy_cotangent_for_another_backend_joins_the_inputs_backend(to_backend):
    x = to_backend(np.array([0.4, 0.5], dtype=np.float32))
    (g,) = dk.vjp(lambda x: x * 2.0, x)[1](np.ones(2))
    _, t = dk.jvp(lambda x: x * 2.0, (x,), (np.ones(2),))
    for r in (g, t):
        assert isinstance(r, backend_type(x)) and "float32" in str(r.dtype)
        np_close(r, [2.0, 2.0])


def test_user_cotangent_of_the_wrong_shape_names_the_output(to_backend):
    x = to_backend(np.ones(3))
    with pytest.raises(TransformError, match=r"vjp_fn: the cotangent of output leaf 1 has "
                                             r"shape \(2,\) but its output has shape \(3,\)"):
        dk.vjp(lambda x: (x, 2.0 * x), x)[1]((x, to_backend(np.ones(2))))


# ---------------------------------------------------------------------------------------
# Item 6: a Python zero in a rule follows NumPy/torch semantics (inf/nan), not Python's
# ---------------------------------------------------------------------------------------
DIVISIONS = {  # f, x, expected gradient of sum(f(x))
    "x / 0.0": (lambda x: x / 0.0, [1.0, -2.0], [np.inf, np.inf]),
    "x / 0": (lambda x: x / 0, [1.0, -2.0], [np.inf, np.inf]),
    "-x / 0.0": (lambda x: -x / 0.0, [1.0, 2.0], [-np.inf, -np.inf]),
    "divide(x, 0)": (lambda x: dnp.divide(x, 0), [1.0, 2.0], [np.inf, np.inf]),
    "0.0 / x": (lambda x: 0.0 / x, [0.0, 2.0], [np.nan, -0.0]),
    "x ** -1": (lambda x: x ** -1, [0.0, 2.0], [-np.inf, -0.25]),
    "x % 0.0": (lambda x: dnp.mod(x, 0.0), [1.0, 2.0], [1.0, 1.0]),
}


@pytest.mark.parametrize("case", sorted(DIVISIONS))
def test_division_by_a_python_zero_follows_the_backend(case, to_backend):
    f, x, want = DIVISIONS[case]
    x = to_backend(np.array(x))
    with np.errstate(all="ignore"):
        np_close(dk.grad(lambda x: dnp.sum(f(x)))(x), want)
        np_close(dk.jvp(f, (x,), (dnp.ones_like(x),))[1], want)
        if "/ 0" in case:  # the first derivative is constant: the Hessian is zero
            np_close(dk.hessian(lambda x: dnp.sum(f(x)))(x), np.zeros((2, 2)))


def test_division_by_zero_keeps_numpys_warning_behaviour():
    x = np.array([1.0, 2.0])
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        dk.grad(lambda x: dnp.sum(x / 0.0))(x)
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        dk.grad(lambda x: dnp.sum(x / 0.0))(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(divide="ignore"):
            np_close(dk.grad(lambda x: dnp.sum(x / 0.0))(x), [np.inf, np.inf])


def binary_cases():
    """(primitive, sample args, params, traced position, number position) for each
    elementwise primitive: one operand traced, another made a Python number."""
    rng = np.random.default_rng(0)
    for prim in EW.PRIMITIVES:
        if prim.nondiff or prim.sample is None:
            continue
        args, params = prim.sample(rng)[0]
        inexact = [i for i, a in enumerate(args)
                   if isinstance(a, np.ndarray) and a.dtype.kind in "fc"]
        for j in inexact:
            for i in inexact:
                if i != j:
                    yield pytest.param(prim, args, params, j, i, id=f"{prim.name}-{j}-{i}")


@pytest.mark.parametrize(("prim", "args", "params", "j", "i"), list(binary_cases()))
def test_rules_treat_a_python_number_operand_as_an_array(prim, args, params, j, i, to_backend):
    """Every elementwise rule gives, with one operand a Python number, what it gives with
    that number as a 0-d array (0, 0.0 and -1 included: no Python ZeroDivisionError)."""
    args = list(to_backend(tuple(args)))
    x = args[j]
    for v in (0.0, 0, -1.0, 1.5):
        as_array = dnp.asarray(v, dtype=x.dtype, like=x)
        results = []
        for operand in (v, as_array):
            def f(x, operand=operand):
                full = list(args)
                full[j], full[i] = x, operand
                return prim.bind(*full, **params)

            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out, f_vjp = dk.vjp(f, x)
                results.append((f_vjp(dnp.ones_like(out))[0],
                                dk.jvp(f, (x,), (dnp.ones_like(x),))[1]))
        for got, want in zip(results[0], results[1], strict=True):
            assert isinstance(got, backend_type(x))
            np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=1e-12, atol=0)
