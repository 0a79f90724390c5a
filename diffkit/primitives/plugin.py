"""The core primitives, declared to the registry through the `diffkit` entry point like
any third-party plugin's."""

from __future__ import annotations

from diffkit.plugins import hookimpl
from diffkit.primitives import (
    creation,
    elementwise,
    fft,
    indexing,
    linalg,
    linalg_extra,
    products,
    reductions,
    shape,
    special,
)

FAMILIES = (elementwise, special, creation, reductions, products, shape, indexing, linalg,
            linalg_extra, fft)


@hookimpl
def diffkit_primitives():
    return [p for family in FAMILIES for p in family.PRIMITIVES]
