"""Devices: explaining a kernel that failed because its tensors live on two devices.

Checking devices before every kernel would tax the hot path; torch already refuses
mixed devices, so the check runs only after a kernel raised (see `explain`).
"""

from __future__ import annotations

import torch

from diffkit.errors import BackendMismatchError

__all__ = ["explain", "devices_of"]


def devices_of(args) -> list:
    """The distinct devices of the tensor arguments, in argument order."""
    seen = []
    for a in args:
        if isinstance(a, torch.Tensor) and a.device not in seen:
            seen.append(a.device)
    return seen


def explain(prim_name: str, args, exc: BaseException) -> BaseException | None:
    """A clear error for a kernel failure caused by tensors on two devices, else None.

    torch accepts a 0-d CPU tensor next to a CUDA tensor (as a scalar) without raising,
    so that mix is not reported.
    """
    devices = devices_of(args)
    if len(devices) < 2:
        return None
    first = next(a for a in args if isinstance(a, torch.Tensor) and a.device == devices[0])
    other = next(a for a in args if isinstance(a, torch.Tensor) and a.device == devices[1])
    return BackendMismatchError(
        f"{prim_name!r} got tensors on two devices: {tuple(first.shape)} {first.dtype} on "
        f"{first.device} and {tuple(other.shape)} {other.dtype} on {other.device}; move "
        f"one with dk.asarray(x, backend='torch', device=...) or x.to(device) ({exc})"
    )
