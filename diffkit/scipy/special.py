"""`diffkit.scipy.special`: erf, erfc, expit, logit, gammaln, digamma, xlogy, softplus,
logsumexp (being written)."""

from __future__ import annotations

__all__ = []
