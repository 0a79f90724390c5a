"""The array operations the core needs but cannot define, filled in by the primitives layer.

The core knows no array math. Two things it does need are array math: fitting a rule's
tangent or cotangent to its primal's shape and dtype (undo broadcasting, cast, take the
real part) and making the real zeros of a symbolic `Zero`. `diffkit.primitives.fit`
defines both with primitives and installs them here when the primitives layer is imported
(as every primitive is); before that, calling one is an InternalError.

    fit_to(t, like)  -> t summed/stretched, cast and made real to match `like`
    zeros_like(x)    -> zeros of x's shape, dtype and backend
"""

from __future__ import annotations

from diffkit.errors import InternalError

__all__ = ["fit_to", "zeros_like", "install"]


def _missing(*args, **kwargs):
    raise InternalError(
        "diffkit.core.ops is empty: the primitives layer fills it when imported "
        "(import diffkit.primitives); a core-only import cannot run array math"
    )


fit_to = zeros_like = _missing


def install(*, fit_to, zeros_like) -> None:
    """Fill the table (`diffkit.primitives.fit` does, once)."""
    globals().update(fit_to=fit_to, zeros_like=zeros_like)
