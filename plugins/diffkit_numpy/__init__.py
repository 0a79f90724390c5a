"""The NumPy backend: kernels for every core primitive on `np.ndarray` (and NumPy scalars).

Registered through the `diffkit` entry-point group exactly like a third-party plugin.
Kernels live in one module per primitive family, each exporting `KERNELS`.
"""

from __future__ import annotations

import numpy as np

from diffkit.core.program_passes import OUTPUTS_ONLY
from diffkit.extend import Backend, hookimpl
from diffkit_numpy import (
    creation,
    elementwise,
    fft,
    indexing,
    linalg,
    products,
    reductions,
    shape,
    special,
)
from diffkit_numpy.fusion import FUSED, lower_program
from diffkit_numpy.programs import program_buffers, stand_in

OUTPUTS_ONLY.add(FUSED.name)  # a fused loop writes into the outputs it allocates, nothing else

FAMILIES = (creation, elementwise, special, reductions, products, shape, indexing, linalg, fft)


def _asarray(x, dtype=None, device=None):
    if device not in (None, "cpu"):
        raise ValueError(f"the numpy backend has no device {device!r}; use backend='torch'")
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    dtype = _numpy_dtype(dtype)
    return np.asarray(x, dtype=dtype)


def _numpy_dtype(dtype):
    """NumPy dtype for a NumPy, Python or torch dtype (torch.float32 -> float32)."""
    if dtype is None or isinstance(dtype, np.dtype | type):
        return dtype
    name = str(dtype).removeprefix("torch.")
    return np.dtype(name) if name != "bool" else np.bool_


BACKEND = Backend(
    name="numpy",
    recognizes=lambda t: issubclass(t, np.ndarray | np.generic),
    asarray=_asarray,
    to_numpy=np.asarray,
    describe=lambda x: f"numpy.ndarray of dtype {x.dtype}",
    inexact=lambda dt: dt.kind in "fc" if isinstance(dt, np.dtype) else None,
    default=True,
    program_buffers=program_buffers,
    lower_program=lower_program,
    stand_in=stand_in,
)


@hookimpl
def diffkit_backends():
    return [BACKEND]


@hookimpl
def diffkit_kernels(backend):
    if backend != "numpy":
        return None
    table = {}
    for family in FAMILIES:
        table.update(family.KERNELS)
    return table
