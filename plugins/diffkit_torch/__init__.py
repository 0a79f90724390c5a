"""The PyTorch backend: kernels for every core primitive on `torch.Tensor` (CPU and CUDA),
device and dtype handling, and bridges to `torch.autograd` (`to_torch`, `from_torch`).

Registered through the `diffkit` entry-point group like any third-party plugin. torch is
imported lazily: loading this module does not import it, `recognizes` looks in
`sys.modules` first (a tensor can only exist once torch is imported), and the kernels
are imported the first time a tensor reaches a primitive. Without torch installed the
backend is not registered, and asking for it says to install `diffkit[torch]`.

Kernels live in one module per primitive family, each exporting `KERNELS`, mirroring
`diffkit_numpy` with the same signatures; results stay on the inputs' device and dtype.

Where the torch backend differs from NumPy's rules (each kept because matching NumPy would
cost every call on the hot path, ~10% per small op, or because torch forces it):

- Integer tensors in float-valued functions (sin, exp, sqrt, true division of two integer
  tensors, int tensor + Python float) give torch's default float dtype, float32, where
  NumPy gives float64. Cast first (`dnp.astype(x, dnp.float64)`: a tensor has no
  `.astype`) or `torch.set_default_dtype(torch.float64)`.
  Special functions, std, quantile, vector norms, cbrt and interp do give float64.
- A 0-d tensor takes part in promotion like a Python scalar: float64 0-d times a float32
  vector is float32 in torch, float64 in NumPy 2.
- Unsigned integers wider than 8 bits convert, but torch implements little arithmetic on them.
- Eigen- and singular vectors may differ in sign from NumPy's on GPU (same LAPACK on CPU).

Where torch's own default differs, the kernels follow NumPy: creation with `dtype=None`
gives float64 (not float32); Python scalars stay weak (`float32 tensor * 2.5` is float32);
`x.at[idx].set(v)` with repeated indices keeps the last write on every device; an int next
to index arrays is an advanced index (`z[1, :, [0, 2]]` has the indexed axis first). NumPy
arrays meeting a tensor are weak constants that dispatch moves onto its device
(docs/conventions.md). A plain tensor keeps torch's own methods (`x[::-1]` fails, `x.std()`
has ddof=1): call `dnp.flip`, `dnp.std`, `dnp.at(x)[idx].get()` for NumPy's answers.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from diffkit.errors import DiffkitError
from diffkit.extend import Backend, hookimpl

__all__ = ["BACKEND", "asarray", "to_numpy", "describe", "to_torch", "from_torch",
           "module_params", "explain"]

FAMILIES = ("creation", "elementwise", "special", "reductions", "products", "shape",
            "indexing", "linalg", "fft")

INSTALL_HINT = "the torch backend needs PyTorch: pip install 'diffkit[torch]'"


def torch_installed() -> bool:
    """True when PyTorch can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def _torch():
    try:
        import torch
    except ImportError as e:
        raise DiffkitError(f"{INSTALL_HINT} ({e})") from None
    return torch


def _recognizes(t: type) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and issubclass(t, torch.Tensor)


def asarray(x, dtype=None, device=None):
    """`x` (a tensor, NumPy array, list or scalar) as a tensor on `device` with `dtype`.

    Non-tensors go through `np.asarray` first, so lists and Python floats get NumPy's
    dtypes (float64, not torch's default float32). A tensor keeps its device unless one
    is given; a NumPy array goes to torch's default device (CPU unless changed). CPU
    conversions share memory where NumPy and torch allow it (like `torch.as_tensor`).
    """
    torch = _torch()
    from diffkit_torch.dtypes import torch_dtype

    dt = torch_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x if dt is None and device is None else x.to(device=device, dtype=dt)
    import numpy as np

    a = np.asarray(x)
    if a.dtype == object or a.dtype.kind in "USV":
        raise TypeError(
            f"cannot make a tensor of {type(x).__name__} {x!r}: it is not numeric"
        )
    if not a.flags.writeable:  # torch refuses read-only memory (broadcast views)
        a = a.copy()
    if dt is None:
        dt = torch_dtype(a.dtype)
    return torch.as_tensor(a, dtype=dt, device=device)


def to_numpy(x):
    """A NumPy copy (or CPU view) of tensor `x`, detached from torch's autograd."""
    x = x.detach()
    if x.dtype == sys.modules["torch"].bfloat16:
        x = x.float()
    return x.cpu().resolve_conj().resolve_neg().numpy()


def describe(x) -> str:
    """What error messages call a tensor: dtype and device."""
    return f"torch.Tensor of dtype {x.dtype} on {x.device}"


def _inexact(dtype) -> bool | None:
    """Floating or complex, for a torch dtype; None for any other."""
    if type(dtype).__module__ != "torch":
        return None
    return dtype.is_floating_point or dtype.is_complex


def _stand_in(x):
    """`x`'s shape, dtype and device in no memory: an expanded copy of its first element
    (`Backend.stand_in`, for tracing a step's shapes only)."""
    if x.numel() <= 1:
        return x
    return x.reshape(-1)[:1].clone().reshape(()).expand(x.shape)


def _explain(prim_name: str, args, exc: BaseException) -> BaseException | None:
    from diffkit_torch.devices import explain

    return explain(prim_name, args, exc)


BACKEND = Backend(
    name="torch", recognizes=_recognizes, asarray=asarray, to_numpy=to_numpy,
    describe=describe, explain=_explain, inexact=_inexact, stand_in=_stand_in,
)


@hookimpl
def diffkit_backends():
    return [BACKEND] if torch_installed() else []


@hookimpl
def diffkit_kernels(backend):
    if backend != "torch":
        return None
    _torch()
    table = {}
    for family in FAMILIES:
        table.update(importlib.import_module(f"diffkit_torch.{family}").KERNELS)
    return table


def __getattr__(name: str):
    # These import torch: load them on first use, not with the plugin.
    if name in ("to_torch", "from_torch", "module_params"):
        from diffkit_torch import bridge

        return getattr(bridge, name)
    if name == "explain":
        from diffkit_torch.devices import explain

        return explain
    raise AttributeError(f"module 'diffkit_torch' has no attribute {name!r}")
