"""The generic rule check over every registered primitive × backend.

A plugin's primitives are covered here with no new test code: each primitive carries its
own sampling domain, and `check_primitive` checks JVP against finite differences, VJP
against JVP, and both again at second order. A differentiable primitive must have had at
least one case's derivatives checked (`check_primitive` raises otherwise); a
non-differentiable one is checked for zero tangents and cotangents and, on torch, for
kernels that agree with NumPy's, and checks no derivative (returns 0).
"""

from __future__ import annotations

import pytest

import diffkit.plugins
from diffkit.testing import check_primitive

from .conftest import HAS_TORCH

PRIMITIVES = diffkit.plugins.registry().primitives
NAMES = sorted(PRIMITIVES)


def _expect(name: str, checked: int) -> None:
    """Derivatives checked in some case iff the primitive is differentiable."""
    if PRIMITIVES[name].nondiff:
        assert checked == 0
    else:
        assert checked > 0


@pytest.mark.parametrize("name", NAMES)
def test_rules_numpy(name):
    _expect(name, check_primitive(name, "numpy"))


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
@pytest.mark.parametrize("name", NAMES)
def test_rules_torch(name):
    _expect(name, check_primitive(name, "torch"))


def test_the_sweep_checks_derivatives_of_most_primitives():
    """The sweep is no formality: most primitives are differentiable, and those are the
    ones whose cases must check derivatives."""
    nondiff = [n for n in NAMES if PRIMITIVES[n].nondiff]
    assert 0 < len(nondiff) < len(NAMES) / 3
