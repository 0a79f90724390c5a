"""Finite-difference stencil primitives, packaged as a third-party plugin would be.

It imports only diffkit's public extension API (`diffkit.extend`, `diffkit.numpy`) and is
found through its entry point in the `diffkit` group (`stencil = "diffkit_stencil"`).
Each operator is one primitive with its own JVP/VJP rules (the adjoint of a stencil is a
stencil) and kernels for NumPy and PyTorch; `diffkit check stencil --backend all` runs
the generic rule checks on them.

Boundaries (`bc`): "periodic" wraps around; "dirichlet" means the array holds the interior
unknowns and the boundary values just outside it are zero.

    >>> import numpy as np, diffkit as dk, diffkit_stencil as st
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> st.laplace1d(x, dx=0.25, bc="dirichlet")
    array([  4.,   0.,   0.,   0., -20.])
    >>> float(dk.grad(lambda x: (st.gradient(x, dx=0.25) ** 2).sum())(x)[0])
    -10.0
"""

from __future__ import annotations

from diffkit import numpy as dnp
from diffkit.extend import hookimpl
from diffkit_stencil import primitives as _p

__all__ = ["laplace", "laplace1d", "laplace2d", "laplace3d", "diff", "gradient", "upwind",
           "advect2d"]


# -- hooks ---------------------------------------------------------------------------------
@hookimpl
def diffkit_primitives():
    return list(_p.PRIMITIVES)


@hookimpl
def diffkit_kernels(backend):
    from diffkit_stencil.kernels import make_kernels

    if backend == "numpy":
        import numpy

        return make_kernels(numpy)
    if backend == "torch":
        import torch  # lazily: only when a tensor first reaches a primitive

        return make_kernels(torch)
    return None


# -- user functions ------------------------------------------------------------------------
def _bc(bc: str) -> str:
    if bc not in ("periodic", "dirichlet"):
        raise ValueError(f"bc must be 'periodic' or 'dirichlet', got {bc!r}")
    return bc


def _array(x, what: str, min_ndim: int):
    if not hasattr(x, "ndim"):
        x = dnp.asarray(x)
    if x.ndim < min_ndim:
        raise ValueError(f"{what} needs an array with at least {min_ndim} dimension(s), got "
                         f"shape {tuple(x.shape)}")
    return x


def _spacing(dx, n: int):
    if isinstance(dx, tuple | list):
        if len(dx) != n:
            raise ValueError(f"dx has {len(dx)} spacings for {n} axes: {dx!r}")
        return tuple(float(d) for d in dx)
    return float(dx)


def _axis(x, axis: int) -> int:
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of bounds for an array of shape {tuple(x.shape)}")
    return axis


def _velocity(c, u, name: str):
    if not hasattr(u, "shape"):
        u = dnp.asarray(u, like=c) if hasattr(c, "dtype") else dnp.asarray(u)
    try:
        fits = dnp.broadcast_shapes(tuple(u.shape), tuple(c.shape)) == tuple(c.shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"velocity {name} of shape {tuple(u.shape)} does not broadcast to "
                         f"the field's shape {tuple(c.shape)}") from None
    return u


def laplace1d(x, dx=1.0, bc: str = "periodic"):
    """Second-order Laplacian d2x/dx2 along the last axis (leading axes are a batch)."""
    return _p.laplace1d.bind(_array(x, "laplace1d", 1), dx=_spacing(dx, 1), bc=_bc(bc))


def laplace2d(x, dx=1.0, bc: str = "periodic"):
    """Five-point Laplacian over the last two axes; `dx` a float or one per axis."""
    return _p.laplace2d.bind(_array(x, "laplace2d", 2), dx=_spacing(dx, 2), bc=_bc(bc))


def laplace3d(x, dx=1.0, bc: str = "periodic"):
    """Seven-point Laplacian over the last three axes; `dx` a float or one per axis."""
    return _p.laplace3d.bind(_array(x, "laplace3d", 3), dx=_spacing(dx, 3), bc=_bc(bc))


def laplace(x, dx=1.0, bc: str = "periodic"):
    """The Laplacian over every axis of a 1D, 2D or 3D array."""
    x = _array(x, "laplace", 1)
    if x.ndim > 3:
        raise ValueError(f"laplace takes 1D to 3D arrays, got shape {tuple(x.shape)}; use "
                         f"laplace1d/2d/3d to treat leading axes as a batch")
    return (laplace1d, laplace2d, laplace3d)[x.ndim - 1](x, dx, bc)


def diff(x, axis: int = -1, dx: float = 1.0, bc: str = "periodic", side: str = "forward"):
    """First-order one-sided difference along `axis`: (x[i+1] - x[i]) / dx ("forward") or
    (x[i] - x[i-1]) / dx ("backward")."""
    if side not in ("forward", "backward"):
        raise ValueError(f"side must be 'forward' or 'backward', got {side!r}")
    x = _array(x, "diff", 1)
    return _p.diff.bind(x, axis=_axis(x, axis), dx=float(dx), bc=_bc(bc),
                      side=1 if side == "forward" else -1)


def gradient(x, axis: int = -1, dx: float = 1.0, bc: str = "periodic"):
    """Second-order centred first derivative (x[i+1] - x[i-1]) / (2 dx) along `axis`."""
    x = _array(x, "gradient", 1)
    return _p.gradient.bind(x, axis=_axis(x, axis), dx=float(dx), bc=_bc(bc))


def upwind(c, u, axis: int = -1, dx: float = 1.0, bc: str = "periodic"):
    """First-order upwind `u * dc/dx` along `axis`; the velocity `u` (broadcasting to c's
    shape) is an argument, so its sign picks the side and it gets a gradient too."""
    c = _array(c, "upwind", 1)
    return _p.upwind.bind(c, _velocity(c, u, "u"), axis=_axis(c, axis), dx=float(dx), bc=_bc(bc))


def advect2d(c, u, v, dx=1.0, bc: str = "periodic"):
    """First-order upwind advection `u * dc/dx0 + v * dc/dx1` over the last two axes
    (u along axis -2, v along axis -1); velocities broadcast to c's shape."""
    c = _array(c, "advect2d", 2)
    return _p.advect2d.bind(c, _velocity(c, u, "u"), _velocity(c, v, "v"),
                          dx=_spacing(dx, 2), bc=_bc(bc))
