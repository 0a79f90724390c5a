"""diffkit.scipy.special beyond the erf/gamma basics (issue 13): values against SciPy on every
backend, derivatives of the functions defined through other primitives, derivatives in the
order against SciPy's own (jvp, ivp, ...), the refusals (traced orders and shapes), and the
"needs SciPy" error. The primitives themselves are swept by tests/test_primitives.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
import diffkit.scipy.special as dsp
from diffkit.errors import ConcretizationError, MissingKernelError
from diffkit.testing import check_grads, to_numpy

sp = pytest.importorskip("scipy.special")
RNG = np.random.default_rng(3)
X = RNG.uniform(0.3, 5.0, (2, 3))
P = RNG.uniform(0.05, 0.95, (2, 3))
XS = RNG.uniform(-4.0, 4.0, (2, 3))

# name -> (arguments, SciPy's function when not of the same name)
VALUES = {
    "gamma": ((XS,), None), "rgamma": ((XS,), None), "gammasgn": ((XS,), None),
    "gammainc": ((2.5, X), None), "gammaincc": ((0.7, X), None),
    "beta": ((X, X[::-1].copy()), None), "betaln": ((X, X[::-1].copy()), None),
    "betainc": ((2.0, 3.5, P), None), "stdtr": ((4.0, XS), None),
    "multigammaln": ((X + 2, 3), None), "erfcinv": ((2 * P,), None), "ndtr": ((XS,), None),
    "ndtri": ((P,), None), "log_ndtr": ((XS * 5,), None),
    "j0": ((XS,), None), "j1": ((XS,), None), "jn": ((3, XS), None), "jv": ((2.5, X), None),
    "y0": ((X,), None), "y1": ((X,), None), "yn": ((2, X), None), "yv": ((1.5, X), None),
    "i0": ((XS,), None), "i0e": ((XS,), None), "i1": ((XS,), None), "i1e": ((XS,), None),
    "iv": ((1.5, X), None), "ive": ((0.5, X), None), "k0": ((X,), None), "k1": ((X,), None),
    "kv": ((2.5, X), None), "entr": ((XS,), None), "softmax": ((XS,), None),
    "log_softmax": ((XS,), None),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_match_scipy(name, backend, to_backend):
    args, _ = VALUES[name]
    got = getattr(dsp, name)(*to_backend(args))
    with np.errstate(all="ignore"):
        want = getattr(sp, name)(*args)
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["gamma", "jv", "i1e", "betainc", "ndtr", "stdtr"])
def test_single_precision_is_kept(name, backend, to_backend):
    args = tuple(to_backend(a.astype(np.float32)) if isinstance(a, np.ndarray) else a
                 for a in VALUES[name][0])  # orders and shapes stay Python numbers (weak)
    assert "float32" in str(getattr(dsp, name)(*args).dtype)


@pytest.mark.parametrize("name,args", [("beta", (2.5, X)), ("betaln", (X, 1.5)),
                                       ("gammainc", (2.5, X)), ("gammaincc", (X, 3.0)),
                                       ("betainc", (2.0, 3.0, P)), ("xlogy", (2.0, X))])
def test_python_numbers_next_to_arrays(name, args, backend, to_backend):
    got = getattr(dsp, name)(*(to_backend(a) if isinstance(a, np.ndarray) else a for a in args))
    np.testing.assert_allclose(to_numpy(got), getattr(sp, name)(*args), rtol=1e-13)


# Functions written with other primitives: not in the primitive sweep, so checked here.
DEFINED = {
    "ndtr": (XS,), "erfcinv": (2 * P,), "entr": (X,),
    "multigammaln": (X + 2,), "softmax": (XS,), "log_softmax": (XS,),
}


@pytest.mark.parametrize("name", sorted(DEFINED))
def test_derivatives_of_defined_functions(name, backend, to_backend):
    f = getattr(dsp, name)
    if name == "multigammaln":
        f = lambda a: dsp.multigammaln(a, 3)  # noqa: E731
    elif name in ("softmax", "log_softmax"):
        f = lambda a, g=f: g(a, axis=1)  # noqa: E731
    check_grads(f, to_backend(DEFINED[name]), order=2)


def _grad(f, x):
    return to_numpy(dk.grad(lambda v: dnp.sum(f(v)))(x))


@pytest.mark.parametrize("name,v,ref", [("jv", 2.5, "jvp"), ("yv", 1.5, "yvp"),
                                        ("iv", 0.5, "ivp"), ("kv", 2.5, "kvp"),
                                        ("jn", 3, "jvp"), ("yn", 2, "yvp")])
def test_bessel_derivatives_match_scipy(name, v, ref, backend, to_backend):
    f = getattr(dsp, name)
    np.testing.assert_allclose(_grad(lambda x: f(v, x), to_backend(X)),
                               getattr(sp, ref)(v, X), rtol=1e-12)
    d2 = to_numpy(dk.grad(dk.grad(lambda x: f(v, x)))(to_backend(np.array(1.7))))
    np.testing.assert_allclose(d2, getattr(sp, ref)(v, 1.7, n=2), rtol=1e-12)


def test_derivatives_at_special_points(backend, to_backend):
    zero = to_backend(np.array([0.0]))
    for f in (dsp.j1, dsp.i1, dsp.i1e):  # -f(x)/x's limit at 0: the derivative is 1/2
        np.testing.assert_allclose(_grad(f, zero), [0.5])
    with np.errstate(divide="ignore"):  # -(log 0 + 1)
        assert to_numpy(dk.grad(lambda x: dsp.entr(x)[0])(zero)) == [np.inf]
    # below 0 entr is -inf: its derivative is 0, not nan from log of a negative number
    np.testing.assert_array_equal(_grad(dsp.entr, to_backend(np.array([-1.0]))), [0.0])
    # log_ndtr's derivative stays finite far in the left tail (~ -x)
    np.testing.assert_allclose(_grad(dsp.log_ndtr, to_backend(np.array([-40.0]))),
                               [40.02498], rtol=1e-6)


# dP(a, x)/da by mpmath (40 digits: mp.diff of the regularized gammainc): both sides of
# x = a, both tails (P ~ 1e-57, Q ~ 1e-27), large a.
GAMMAINC_DA = [
    (0.1, 0.01, -2.7761608124254225), (2.5, 1.0, -0.1800996069540415),
    (2.5, 5.0, -0.08394278420759414), (1.0, 30.0, -3.7530644505126664e-13),
    (30.0, 31.0, -0.07068643603337486), (100.0, 150.0, -2.538946697261135e-06),
    (0.5, 60.0, -3.842531712630058e-27), (200.0, 50.0, -2.8152855212121047e-57),
    (1000.0, 1010.0, -0.011945731337225441),
]


def test_gammainc_derivative_in_a_against_mpmath(backend, to_backend):
    a, x, want = (np.array(c) for c in zip(*GAMMAINC_DA, strict=True))
    a, x = to_backend((a, x))
    d_lower = to_numpy(dk.jvp(lambda v: dsp.gammainc(v, x), (a,), (dnp.ones_like(a),))[1])
    np.testing.assert_allclose(d_lower, want, rtol=1e-12)
    d_upper = dk.grad(lambda v: dnp.sum(dsp.gammaincc(v, x)))(a)  # accurate where Q is tiny
    np.testing.assert_allclose(to_numpy(d_upper), -want, rtol=1e-12)
    g32 = dk.grad(lambda v: dnp.sum(dsp.gammainc(v, x[:3].astype(np.float32) if backend ==
                                                 "numpy" else x[:3].float())))
    np.testing.assert_allclose(to_numpy(g32(a[:3].astype(np.float32) if backend == "numpy"
                                            else a[:3].float())), want[:3], rtol=1e-5)


def test_shape_derivatives_of_many_elements_at_once(backend, to_backend):
    """Each element keeps the step where its own iteration settled: with hundreds of
    elements the last digits of some always jitter, which must not stop the others."""
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.5, 5, 400), rng.uniform(0.5, 5, 400)
    x, u = rng.uniform(0.1, 10, 400), rng.uniform(0.02, 0.98, 400)
    h = 1e-5
    cases = [(lambda v: dsp.gammainc(v, to_backend(x)), lambda v: sp.gammainc(v, x)),
             (lambda v: dsp.betainc(v, to_backend(b), to_backend(u)),
              lambda v: sp.betainc(v, b, u))]
    for f, ref in cases:
        got = to_numpy(dk.grad(lambda v, f=f: dnp.sum(f(v)))(to_backend(a)))
        np.testing.assert_allclose(got, (ref(a + h) - ref(a - h)) / (2 * h), rtol=1e-6,
                                   atol=1e-10)


def test_shape_derivatives_at_the_edges():
    """0 where the function is constant in the shape (x at an end of its range); nan where
    the value itself is nan (a shape <= 0), never a finite number from a meaningless sum."""
    def d(f):
        return float(dk.grad(f)(np.array(2.0)))

    assert d(lambda v: dsp.gammainc(v, 0.0)) == 0.0
    assert d(lambda v: dsp.betainc(v, 2.0, 1.0)) == 0.0
    assert d(lambda v: dsp.betainc(1.5, v, 0.0)) == 0.0
    assert np.isnan(d(lambda v: dsp.gammainc(v - 3.0, 1.5)))
    assert np.isnan(d(lambda v: dsp.betainc(v - 3.0, 2.0, 0.3)))
    assert np.isnan(d(lambda v: dsp.betainc(2.0, -v, 0.3)))


# dI_x(a, b)/da and /db by mpmath (40 digits): both sides of x = (a+1)/(a+b+2), both tails,
# shapes from 0.1 to 300.
BETAINC_DAB = [
    (2.5, 1.5, 0.3, -0.0948427191535116, 0.08702731862242216),
    (2.5, 1.5, 0.9, -0.048143684533933195, 0.1737644189492125),
    (0.5, 0.5, 0.01, -0.33265796074017645, 0.08818850772358067),
    (0.5, 3.0, 0.999, -9.584583614583254e-10, 2.207291995350913e-09),
    (30.0, 40.0, 0.45, -0.050677746754230965, 0.039640633360788505),
    (200.0, 300.0, 0.41, -0.019477054685530487, 0.013253355464568035),
    (0.1, 5.0, 0.2, -0.25091239221983436, 0.008305513523356975),
    (5.0, 0.1, 0.99, -0.016147841083269478, 2.0660123558503187),
]
# d stdtr(df, t)/d(df) by mpmath (through the incomplete beta function, 30 digits)
STDTR_DDF = [(3.0, 0.5, 0.00529909273003018), (3.0, -2.0, -0.015255481525655007),
             (0.7, 1e-3, 0.00010124133922965195), (30.0, 4.0, 8.670900935245981e-06),
             (3.0, 0.0, 0.0)]


def test_betainc_and_stdtr_derivatives_in_shapes_against_mpmath(backend, to_backend):
    a, b, x, want_a, want_b = (np.array(c) for c in zip(*BETAINC_DAB, strict=True))
    a, b, x = to_backend((a, b, x))
    ga, gb = dk.grad(lambda p, q: dnp.sum(dsp.betainc(p, q, x)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(to_numpy(ga), want_a, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(gb), want_b, rtol=1e-12)
    df, t, want = (np.array(c) for c in zip(*STDTR_DDF, strict=True))
    df, t = to_backend((df, t))
    g = dk.grad(lambda d: dnp.sum(dsp.stdtr(d, t)))(df)
    np.testing.assert_allclose(to_numpy(g), want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("call,match", [
    (lambda v: dsp.jv(v, 1.5), r"jv: `v` is a float traced by `grad`, .* order of the Bessel"),
    (lambda n: dsp.yn(n, 1.5), r"yn: `n` is a float traced"),
    (lambda v: dsp.kv(v, 1.5), r"kv: `v` is a float traced"),
])
def test_traced_orders_and_shapes_are_refused(call, match, backend, to_backend):
    with pytest.raises(ConcretizationError, match=match):
        dk.grad(call)(to_backend(np.array(1.5)))


def test_the_refused_arguments_pass_with_stop_gradient(backend, to_backend):
    x = to_backend(np.array(1.5))
    g = dk.grad(lambda v: dsp.jv(dk.stop_gradient(v), v))(x)
    np.testing.assert_allclose(to_numpy(g), sp.jvp(1.5, 1.5), rtol=1e-13)


def test_multigammaln_domain():
    with pytest.raises(ValueError, match=r"multigammaln: the dimension d must be a positive "
                                         r"integer, not 2.5"):
        dsp.multigammaln(3.0, 2.5)
    assert np.isnan(dsp.multigammaln(np.array(0.9), 3))  # a <= (d - 1) / 2


@pytest.mark.parametrize("name,args", [("gamma", (X,)), ("jv", (1.5, X)),
                                       ("betainc", (2.0, 3.0, P)), ("stdtr", (3.0, XS))])
def test_without_scipy_the_kernel_says_to_install_it(name, args, backend, to_backend,
                                                     monkeypatch):
    """On NumPy every function beyond the erf/gamma basics needs SciPy; on torch only those
    torch.special lacks (computed by SciPy on a host copy): gamma there is torch's own."""
    module = "diffkit_numpy.special" if backend == "numpy" else "diffkit_torch.special"
    kernels = pytest.importorskip(module)
    monkeypatch.setattr(kernels, "_scipy_special", False)
    on = "numpy" if backend == "numpy" else "torch"
    if on == "torch" and name == "gamma":
        np.testing.assert_allclose(to_numpy(dsp.gamma(to_backend(X))), sp.gamma(X), rtol=1e-13)
        return
    with pytest.raises(MissingKernelError, match=rf"scipy.special.{name} on the {on} backend "
                                                 rf"needs SciPy.*pip install 'diffkit\[scipy\]'"):
        getattr(dsp, name)(*to_backend(args))


def test_import_diffkit_works_without_scipy():
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "import numpy as np, diffkit, diffkit as dk, diffkit.scipy.special as s\n"
        "import diffkit.scipy.stats\n"
        "from diffkit.errors import MissingKernelError\n"
        "print(round(float(dk.grad(s.gammaln)(2.5)), 6))\n"
        "print(round(float(diffkit.scipy.stats.norm.cdf(0.3)), 12))\n"
        "try:\n    s.gamma(np.array(2.5))\n"
        "except MissingKernelError as e:\n    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[0] == str(round(sp.digamma(2.5), 6))
    assert out.splitlines()[1] == str(round(sp.ndtr(0.3), 12))  # erfc's NumPy fallback
    assert "refused: scipy.special.gamma on the numpy backend needs SciPy" in out
