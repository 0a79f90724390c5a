"""The core primitives, declared to the registry through the `diffkit` entry point like
any third-party plugin's."""

from __future__ import annotations

from diffkit.extend import hookimpl
from diffkit.primitives import creation, elementwise, reductions, shape

FAMILIES = (elementwise, creation, reductions, shape)


@hookimpl
def diffkit_primitives():
    return [p for family in FAMILIES for p in family.PRIMITIVES]
