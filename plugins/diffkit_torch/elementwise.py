"""Torch kernels of the elementwise primitives.

Most kernels are the torch function itself. Binary functions whose torch version needs a
tensor first (`torch.maximum(2.0, t)` is a TypeError) get `_scalar_first`.
"""

from __future__ import annotations

import torch

KERNELS = {
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.true_divide,
    "negative": torch.neg,
    "sin": torch.sin,
    "cos": torch.cos,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sqrt": torch.sqrt,
    "stop_gradient": torch.Tensor.detach,
}
