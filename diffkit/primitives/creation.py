"""Array creation: constants carry no derivative (zeros_like, ones_like, full_like, eye)."""

from __future__ import annotations

from diffkit.core.rules import nondiff
from diffkit.core.sampling import uniform

zeros_like = nondiff("zeros_like", sample=uniform())
ones_like = nondiff("ones_like", sample=uniform())
full_like = nondiff("full_like", sample=uniform(fill_value=1.5))

PRIMITIVES = (zeros_like, ones_like, full_like)
