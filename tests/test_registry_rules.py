"""The registry's rules agree with themselves, and the generic check cannot pass vacuously.

- every primitive's JVP and VJP rules agree in arity (one per argument: as many as the
  sampled cases pass, at least as many for a variadic primitive) and in which arguments
  are non-differentiable (None in the same places), and each rule accepts the arguments
  its sampled cases bind;
- `check_primitive` fails a differentiable primitive whose every case was skipped, and
  checks a non-differentiable one for what applies (values against NumPy's kernel).
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import diffkit.plugins as plugins
from diffkit.cli import main as cli_main
from diffkit.extend import Primitive, elementwise, hookimpl, nondiff, uniform
from diffkit.testing import check_primitive

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
