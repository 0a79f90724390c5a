"""Symbolic tangents: `Zero` (nothing flows here) and `NoTangent` (nothing can flow here).

Rules receive a `Zero` for an argument whose tangent is known to vanish, so they can skip
work; `instantiate` turns it into a real array when a rule needs one. `NoTangent` marks
integer and boolean values, which carry no derivative at all (ChainRules' distinction).
"""

from __future__ import annotations

from diffkit.core import ops

__all__ = ["Zero", "NoTangent", "instantiate", "is_zero"]


class Zero:
    """A tangent or cotangent that is identically zero, shaped like `like`."""

    __slots__ = ("like",)

    def __init__(self, like):
        self.like = like

    shape = property(lambda self: tuple(getattr(self.like, "shape", ())))

    def __repr__(self):
        return f"Zero(shape={self.shape})"


class NoTangent:
    """The tangent space of an integer or boolean value: there is nothing to differentiate."""

    __slots__ = ()

    def __repr__(self):
        return "NoTangent()"


def is_zero(t) -> bool:
    """True for the symbolic zeros (None, Zero, NoTangent)."""
    return t is None or isinstance(t, (Zero, NoTangent))


def instantiate(t, like=None):
    """A real array for a possibly symbolic tangent `t` (zeros shaped like its primal)."""
    if isinstance(t, Zero):
        return ops.zeros_like(t.like)
    if t is None or isinstance(t, NoTangent):
        return ops.zeros_like(like)
    return t

