"""A diffkit plugin with one primitive: the Huber loss, elementwise.

    huber(x, delta) = x**2 / 2                    where |x| <= delta
                      delta * (|x| - delta / 2)   elsewhere

One primitive instead of the half-dozen (abs, where, multiply, ...) it would take in
diffkit.numpy: one tape node, one kernel call, and a derivative written once.
"""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.extend import away_from, elementwise, hookimpl

# The derivative clip(x, -delta, delta) serves both modes: JVP t * d, VJP g * d.
# It is written with diffkit.numpy, so it can be differentiated again.
huber_p = elementwise(
    "huber_loss",
    lambda _ans, x, delta: dnp.clip(x, -delta, delta),  # `_ans`: not read, not kept
    sample=away_from([-1.0, 1.0], lo=-3.0, hi=3.0, delta=1.0),  # away from the kinks of d
    doc="Huber loss, elementwise; `delta` is where it turns from quadratic to linear.",
)


def huber(x, delta=1.0):
    """The Huber loss of each element of `x` (any backend)."""
    if not delta > 0:
        raise ValueError(f"huber: delta must be positive, got {delta!r}")
    return huber_p.bind(x, delta=float(delta))


@hookimpl
def diffkit_primitives():
    return [huber_p]


@hookimpl
def diffkit_kernels(backend):
    if backend == "numpy":
        import numpy as np

        def kernel(x, delta):
            a = np.abs(x)
            return np.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))

    elif backend == "torch":
        import torch  # imported only when a tensor first reaches the primitive

        def kernel(x, delta):
            a = torch.abs(x)
            return torch.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))

    else:
        return None
    return {"huber_loss": kernel}
