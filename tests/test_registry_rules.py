"""The registry's rules agree with themselves, and the generic check cannot pass vacuously.

- every primitive's JVP and VJP rules agree in arity (one per argument: as many as the
  sampled cases pass, at least as many for a variadic primitive) and in which arguments
  are non-differentiable (None in the same places), and each rule accepts the arguments
  its sampled cases bind;
- `check_primitive` fails a differentiable primitive whose every case was skipped, checks
  a non-differentiable one for what applies, and compares other backends' values with NumPy's;
- one place per primitive: a backend's elementwise kernel is its function of the primitive's
  name unless listed, and `diffkit.numpy` generates the ufunc of each elementwise primitive,
  so a new primitive is one definition plus at most one kernel line per backend.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from diffkit_numpy import elementwise as numpy_kernels

import diffkit as dk
import diffkit.numpy as dnp
import diffkit.plugins as plugins
from diffkit.cli import main as cli_main
from diffkit.extend import Primitive, away_from, elementwise, hookimpl, nondiff, uniform
from diffkit.numpy import _elementwise as dnp_elementwise
from diffkit.primitives import elementwise as P
from diffkit.testing import check_primitive, to_numpy

from .conftest import HAS_TORCH

PRIMITIVES = plugins.registry().primitives
TORCH = ["torch"] if HAS_TORCH else []


def rule_problems(prim: Primitive) -> list[str]:
    """What is wrong with `prim`'s rules as declared: arity or non-differentiable positions
    that differ between JVP and VJP, or a rule that cannot take a sampled case's arguments."""
    if prim.nondiff:
        return []
    problems = []
    jvps, vjps = prim.jvp_args, prim.vjp_args
    if (jvps is None) != (vjps is None):
        problems.append("one mode has per-argument rules, the other one rule for all")
    elif jvps is not None:
        if len(jvps) != len(vjps):
            problems.append(f"{len(jvps)} JVP rules but {len(vjps)} VJP rules")
        elif [r is None for r in jvps] != [r is None for r in vjps]:
            problems.append(f"non-differentiable arguments differ: JVP "
                            f"{[i for i, r in enumerate(jvps) if r is None]}, VJP "
                            f"{[i for i, r in enumerate(vjps) if r is None]}")
    cases = prim.sample(np.random.default_rng(0)) if prim.sample else []
    fixed = len({len(args) for args, _ in cases}) == 1  # else variadic (einsum's operands)
    for k, (args, params) in enumerate(cases):
        for mode, per_arg, whole in (("JVP", jvps, prim.jvp_all), ("VJP", vjps, prim.vjp_all)):
            rules = list(enumerate(per_arg)) if per_arg is not None else [("all", whole)]
            if per_arg is not None and (len(per_arg) < len(args) or
                                        fixed and len(per_arg) != len(args)):
                problems.append(f"case {k} passes {len(args)} arguments, {mode} has "
                                f"{len(per_arg)} rules")
            for i, rule in rules[:len(args)]:
                if rule is None:
                    continue
                try:
                    inspect.signature(rule).bind(None, None, *args, **params)
                except TypeError as e:
                    problems.append(f"{mode} rule {i} cannot take case {k}'s arguments: {e}")
    return problems


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_jvp_and_vjp_rules_agree(name):
    assert rule_problems(PRIMITIVES[name]) == []


@pytest.mark.parametrize("prim, problem", [
    (Primitive("two_one", jvp=(lambda t, a, x, y: t, lambda t, a, x, y: t),
               vjp=(lambda g, a, x, y: g,), sample=uniform(nargs=2)),
     "2 JVP rules but 1 VJP rules"),
    (Primitive("masked", jvp=(None, lambda t, a, m, x: t), vjp=(lambda g, a, m, x: g, None),
               sample=uniform(nargs=2)),
     r"non-differentiable arguments differ: JVP \[0\], VJP \[1\]"),
    (Primitive("short", jvp=(lambda t, a, x: t,), vjp=(lambda g, a, x: g,),
               sample=uniform(nargs=2)),
     "case 0 passes 2 arguments, JVP has 1 rules"),
    (Primitive("no_params", jvp=(lambda t, a, x: t,), vjp=(lambda g, a, x: g,),
               sample=uniform(scale=2.0)),
     "JVP rule 0 cannot take case 0's arguments"),
])
def test_rule_check_catches_disagreeing_rules(prim, problem):
    found = rule_problems(prim)
    assert any(re.search(problem, p) for p in found), found


class KernelPlugin:
    """A runtime plugin declaring `prims`, with kernels per backend name."""

    def __init__(self, prims, **kernels):
        self.prims, self.by_backend = prims, kernels

    @hookimpl
    def diffkit_primitives(self):
        return self.prims

    @hookimpl
    def diffkit_kernels(self, backend):
        return self.by_backend.get(backend)


def registered(plugin, name):
    """A context registering `plugin` as `name` for the test's duration."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        plugins.register(plugin, name=name)
        try:
            yield
        finally:
            plugins.unregister(plugin)

    return ctx()


def _int_cases(rng):
    return [((rng.integers(-3, 4, (3,)),), {})]


def test_check_primitive_fails_a_differentiable_primitive_whose_every_case_was_skipped():
    prim = elementwise("twice_ints", lambda ans, x: 2, sample=_int_cases)
    with registered(KernelPlugin([prim], numpy={"twice_ints": lambda x: 2 * x}), "ints"), \
            pytest.raises(AssertionError, match=r"'twice_ints' on backend 'numpy': no sampled "
                                                r"case has a floating output.*no derivative "
                                                r"was checked"):
        check_primitive("twice_ints")


@pytest.mark.parametrize("backend", ["numpy"] + TORCH)
def test_check_primitive_counts_a_non_differentiable_primitive_as_no_derivative(backend):
    assert check_primitive("floor", backend) == 0
    assert check_primitive("sin", backend) > 0


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_check_primitive_compares_a_non_differentiable_kernel_with_numpys():
    import torch

    prim = nondiff("step_up", sample=uniform())
    plugin = KernelPlugin([prim], numpy={"step_up": np.ceil}, torch={"step_up": torch.floor})
    with registered(plugin, "steps"):
        assert check_primitive("step_up", "numpy") == 0
        with pytest.raises(AssertionError, match=r"'step_up' on backend 'torch', case 0.*"
                                                 r"kernel disagrees with the numpy backend's"):
            check_primitive("step_up", "torch")


def test_cli_check_counts_non_differentiable_primitives_apart(capsys):
    prims = [nondiff("step_cli", sample=uniform()),
             elementwise("cube_cli", lambda ans, x: 3 * x * x, sample=uniform())]
    plugin = KernelPlugin(prims, numpy={"step_cli": np.floor, "cube_cli": lambda x: x ** 3})
    with registered(plugin, "cli-plugin"):
        assert cli_main(["check", "cli-plugin"]) == 0
    out = capsys.readouterr().out
    assert "ok    numpy  step_cli (non-differentiable: values and zero derivatives" in out
    assert "ok    numpy  cube_cli (derivatives checked in 3 cases)" in out
    assert "2 passed, 0 failed (of the passed, 1 non-differentiable" in out


def test_a_torch_kernel_that_disagrees_with_numpys_fails_the_check():
    pytest.importorskip("torch")
    import torch

    cube = elementwise("cube_torch_wrong", lambda ans, x: 3 * x * x, sample=uniform())
    plugin = KernelPlugin([cube], numpy={"cube_torch_wrong": lambda x: x ** 3},
                          torch={"cube_torch_wrong": lambda x: torch.abs(x) ** 3})
    with registered(plugin, "cube-torch-wrong"), pytest.raises(
            AssertionError, match=r"'cube_torch_wrong' on backend 'torch', case \d+.*kernel "
                                  r"disagrees with the numpy backend's on output leaf 0"):
        check_primitive("cube_torch_wrong", "torch")


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_a_torch_only_primitive_is_checked_without_a_numpy_reference():
    import torch

    cube = elementwise("cube_torch_only", lambda ans, x: 3 * x * x, sample=uniform())
    with registered(KernelPlugin([cube], torch={"cube_torch_only": lambda x: x ** 3}),
                    "torch-only"):
        assert check_primitive("cube_torch_only", "torch") == 3
        assert torch.is_tensor(cube(torch.ones(2)))


# -- one place per primitive -------------------------------------------------------------------
def test_numpy_kernels_are_numpys_functions_of_the_primitives_names_unless_listed():
    for p in P.PRIMITIVES:
        want = numpy_kernels.OWN.get(p.name) or getattr(np, p.name)
        assert numpy_kernels.KERNELS[p.name] is want, p.name


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
def test_torch_kernels_are_torchs_functions_of_the_primitives_names_unless_listed():
    import torch
    from diffkit_torch import elementwise as torch_kernels

    listed = set(torch_kernels.OWN) | set(torch_kernels.RENAMED) | \
        torch_kernels.SCALARS_AS_TENSORS
    assert listed <= {p.name for p in P.PRIMITIVES}  # no stale entries
    for p in P.PRIMITIVES:
        if p.name not in listed:
            assert torch_kernels.KERNELS[p.name] is getattr(torch, p.name), p.name


def test_dnp_has_the_ufunc_of_every_elementwise_primitive_named_like_numpys():
    for p in P.PRIMITIVES:
        if hasattr(np, p.name):
            assert p.name in dnp_elementwise.__all__ and callable(getattr(dnp, p.name)), p.name
    for name, f in dnp_elementwise.UFUNCS.items():
        assert getattr(dnp, name) is f and f.__name__ == name
        nin = getattr(np, name).nin if isinstance(getattr(np, name), np.ufunc) else 1
        with pytest.raises(TypeError, match=f"dnp.{name} does not support out="):
            f(*[np.ones(2)] * nin, out=np.ones(2))


def _copysign():
    """A new core-style elementwise primitive, declared once: NumPy and torch both have a
    function named `copysign`, so neither backend needs a kernel line."""
    return elementwise(
        "copysign", lambda _ans, x, y: dnp.sign(x) * dnp.where(dnp.signbit(y), -1.0, 1.0),
        None, saves_ans=False, subgradient="0 in y (a sign)", sample=away_from([0.0], nargs=2),
    )


def test_a_new_elementwise_primitive_is_one_definition(backend, to_backend):
    """The recipe of docs/architecture.md end to end: the primitive, the backends' tables
    and the dnp ufunc all come from one definition."""
    copysign = _copysign()
    tables = {"numpy": numpy_kernels.kernels([copysign])}
    if HAS_TORCH:
        from diffkit_torch import elementwise as torch_kernels

        tables["torch"] = torch_kernels.kernels([copysign])
    ufunc = dnp_elementwise._ufuncs([copysign], {})["copysign"]
    x, y = np.array([-1.5, 0.5, 2.0]), np.array([2.0, -1.0, -3.0])
    with registered(KernelPlugin([copysign], **tables), "copysign-plugin"):
        assert check_primitive("copysign", backend.removesuffix("-cuda")) > 0
        np.testing.assert_array_equal(to_numpy(ufunc(to_backend(x), to_backend(y))),
                                      np.copysign(x, y))
        g = dk.grad(lambda a: dnp.sum(ufunc(a, to_backend(y)) ** 2))(to_backend(x))
        np.testing.assert_allclose(to_numpy(g), 2 * np.copysign(x, y) * np.sign(x) * np.sign(y))


def test_a_plugins_elementwise_primitive_is_one_definition_and_a_kernel_line_per_backend():
    """A runtime plugin adds `soft_relu` (log(1 + e^x)) with its rule and one kernel line
    for each backend; both backends pass the generic check, agree and differentiate."""
    soft_relu = elementwise("soft_relu", lambda _ans, x: 1 / (1 + dnp.exp(-x)), saves_ans=False,
                           sample=uniform())
    tables = {"numpy": {"soft_relu": lambda x: np.logaddexp(0.0, x)}}
    if HAS_TORCH:
        import torch

        tables["torch"] = {"soft_relu": torch.nn.functional.softplus}
    x = np.array([-2.0, 0.0, 3.0])
    with registered(KernelPlugin([soft_relu], **tables), "soft-relu-plugin"):
        for backend in tables:
            assert check_primitive("soft_relu", backend) > 0  # torch: values vs NumPy's too
            xb = dk.asarray(x, backend=backend)
            g = dk.grad(lambda a: dnp.sum(soft_relu(a)))(xb)
            np.testing.assert_allclose(to_numpy(g), 1 / (1 + np.exp(-x)), rtol=1e-12)
