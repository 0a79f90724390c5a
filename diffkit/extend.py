"""What plugin authors import: primitives, rule constructors, symbolic zeros, the hook marker.

    from diffkit.extend import Primitive, elementwise, hookimpl, Backend, Unsupported
"""

from __future__ import annotations

from diffkit.core.primitive import Primitive
from diffkit.core.registry import Backend, Unsupported
from diffkit.core.rules import bilinear, elementwise, linear, nondiff
from diffkit.core.zeros import NoTangent, Zero, instantiate, is_zero
from diffkit.plugins import hookimpl
from diffkit.primitives.sampling import away_from, cases, uniform

__all__ = [
    "Primitive", "Backend", "Unsupported", "elementwise", "linear", "bilinear", "nondiff",
    "uniform", "away_from", "cases", "Zero", "NoTangent", "instantiate", "is_zero", "hookimpl",
]
