"""The registry: plugin loading, validation errors naming the plugin, the lint, dispatch."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
import diffkit.plugins as plugins
from diffkit.core.registry import Registry
from diffkit.errors import MissingKernelError, RegistryError
from diffkit.extend import Primitive, Unsupported, elementwise, hookimpl, nondiff, uniform
from diffkit.testing import check_primitive

from .conftest import HAS_TORCH


class PrimitivePlugin:
    """A throwaway plugin declaring `prims` with NumPy kernels `kernels`."""

    def __init__(self, prims, kernels):
        self.prims, self.kernels_ = prims, kernels

    @hookimpl
    def diffkit_primitives(self):
        return self.prims

    @hookimpl
    def diffkit_kernels(self, backend):
        return self.kernels_ if backend == "numpy" else None


def fresh_registry(*extra, names=None):
    """A registry from a fresh PluginManager: the installed plugins plus `extra`."""
    pm = plugins.make_plugin_manager()
    for i, p in enumerate(extra):
        pm.register(p, name=(names or [f"extra{i}" for i in range(len(extra))])[i])
    return Registry(pm)


def test_lint_every_primitive_has_rules_and_a_sampling_domain():
    reg = plugins.registry()
    no_sample = [n for n, p in reg.primitives.items() if p.sample is None]
    assert not no_sample, f"primitives without sample=: {no_sample}"
    for name, p in reg.primitives.items():
        assert p.nondiff or (p.has_jvp and p.has_vjp), name


@pytest.mark.parametrize("backend", ["numpy"] + (["torch"] if HAS_TORCH else []))
def test_lint_every_backend_covers_every_primitive(backend):
    kernels = plugins.registry().kernels(backend)
    missing = sorted(set(plugins.registry().primitives) - set(kernels))
    assert not missing, f"{backend} lacks kernels for: {missing}"
    unsupported = {n: k.reason for n, k in kernels.items() if isinstance(k, Unsupported)}
    assert not unsupported, f"{backend} declares unsupported: {unsupported}"


def test_duplicate_primitive_names_the_two_plugins():
    dup = PrimitivePlugin([nondiff("sin")], {})
    with pytest.raises(RegistryError, match=r"'sin' is declared by both plugin 'core' and "
                                            r"plugin 'dupe'"):
        fresh_registry(dup, names=["dupe"])


def test_kernel_for_unknown_primitive_names_the_plugin():
    reg = fresh_registry(PrimitivePlugin([], {"no_such_op": np.sin}), names=["stray"])
    with pytest.raises(RegistryError, match=r"plugin 'stray' gives a numpy kernel for "
                                            r"'no_such_op', but no plugin declares"):
        reg.kernels("numpy")


def test_primitive_without_rule_names_the_plugin():
    with pytest.raises(RegistryError, match=r"'half_done' from plugin 'wip' has no VJP rule"):
        fresh_registry(PrimitivePlugin([Primitive("half_done", jvp=(lambda t, a, x: t,))], {}),
                       names=["wip"])


def test_two_kernels_for_one_primitive_is_an_error():
    reg = fresh_registry(PrimitivePlugin([], {"sin": np.sin}), names=["other"])
    with pytest.raises(RegistryError, match=r"numpy kernel of 'sin' is given by both"):
        reg.kernels("numpy")


def test_missing_kernel_names_primitive_backend_and_who_has_it():
    cube = elementwise("cube_no_kernel", lambda ans, x: 3 * x * x, sample=uniform())
    plugin = PrimitivePlugin([cube], {})
    with plugins.use_registry(fresh_registry(plugin)), pytest.raises(
        MissingKernelError, match=r"'cube_no_kernel' has no kernel on backend 'numpy'.*"
                                  r"backends that have it: none"
    ):
        cube.bind(np.ones(3))


def test_runtime_plugin_is_used_under_grad_and_checked():
    cube = elementwise("cube", lambda ans, x: 3 * x * x, sample=uniform())
    plugin = PrimitivePlugin([cube], {"cube": lambda x: x ** 3})
    plugins.register(plugin, name="cube-plugin")
    try:
        assert plugins.registry().origin["cube"] == "cube-plugin"
        assert float(dk.grad(lambda x: cube(x) * 2.0)(2.0)) == pytest.approx(24.0)
        assert check_primitive("cube") == 3
    finally:
        plugins.unregister(plugin)
    assert "cube" not in plugins.registry().primitives


def test_generic_check_catches_a_wrong_rule():
    wrong = elementwise("cube_wrong", lambda ans, x: 2 * x * x, sample=uniform())
    plugin = PrimitivePlugin([wrong], {"cube_wrong": lambda x: x ** 3})
    with plugins.use_registry(fresh_registry(plugin)), pytest.raises(
        AssertionError, match=r"'cube_wrong' on backend 'numpy', case 0.*JVP disagrees"
    ):
        check_primitive("cube_wrong")


def test_generic_check_catches_a_vjp_that_disagrees_with_the_jvp():
    bad = Primitive("cube_badvjp", jvp=(lambda t, a, x: 3 * x * x * t,),
                    vjp=(lambda g, a, x: 3 * x * g,), sample=uniform())
    plugin = PrimitivePlugin([bad], {"cube_badvjp": lambda x: x ** 3})
    with plugins.use_registry(fresh_registry(plugin)), pytest.raises(
        AssertionError, match="VJP disagrees with JVP"
    ):
        check_primitive("cube_badvjp")


def test_lists_are_converted_and_dispatch_is_cached():
    out = dnp.sin([0.0, 1.0])
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    from diffkit.primitives.elementwise import sin

    assert sin.kernels[np.ndarray] is np.sin
