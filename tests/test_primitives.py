"""The generic rule check over every registered primitive × backend.

A plugin's primitives are covered here with no new test code: each primitive carries its
own sampling domain, and `check_primitive` checks JVP against finite differences, VJP
against JVP, and both again at second order.
"""

from __future__ import annotations

import pytest

import diffkit.plugins
from diffkit.testing import check_primitive

from .conftest import HAS_TORCH

NAMES = sorted(diffkit.plugins.registry().primitives)


@pytest.mark.parametrize("name", NAMES)
def test_rules_numpy(name):
    assert check_primitive(name, "numpy") > 0


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install diffkit[torch])")
@pytest.mark.parametrize("name", NAMES)
def test_rules_torch(name):
    assert check_primitive(name, "torch") > 0
