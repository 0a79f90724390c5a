"""Kernels of the stencil primitives, written once for any array library with NumPy-style
slicing (NumPy and PyTorch): `make_kernels(xp)` with `xp` the library's module.

Every stencil is built from `_add_shift(out, x, k, ...)`, which adds `scale * x[i + k]`
(k = +1 or -1) along one axis with vectorized slices; the boundary decides what lies
beyond the ends: the wrapped-around value (periodic) or zero (Dirichlet: the array holds
the interior unknowns, the boundary values are 0).
"""

from __future__ import annotations

__all__ = ["make_kernels"]


def _index(ndim: int, axis: int, sl: slice) -> tuple:
    return (slice(None),) * axis + (sl,)


def _add_shift(out, x, k: int, axis: int, bc: str, scale: float = 1.0) -> None:
    """out[i] += scale * x[i + k] along `axis`, for k in (+1, -1)."""
    nd = x.ndim
    if k == 1:
        dst, src = _index(nd, axis, slice(None, -1)), _index(nd, axis, slice(1, None))
        wrap_dst, wrap_src = _index(nd, axis, slice(-1, None)), _index(nd, axis, slice(0, 1))
    else:
        dst, src = _index(nd, axis, slice(1, None)), _index(nd, axis, slice(None, -1))
        wrap_dst, wrap_src = _index(nd, axis, slice(0, 1)), _index(nd, axis, slice(-1, None))
    if scale == 1.0:
        out[dst] += x[src]
        if bc == "periodic":
            out[wrap_dst] += x[wrap_src]
    else:
        out[dst] += scale * x[src]
        if bc == "periodic":
            out[wrap_dst] += scale * x[wrap_src]


def _axes(x, n: int) -> range:
    return range(x.ndim - n, x.ndim)


def _spacings(dx, n: int) -> tuple:
    return tuple(float(d) for d in dx) if isinstance(dx, tuple | list) else (float(dx),) * n


def _positive_part(u):
    return (u + abs(u)) * 0.5  # exact: u where u > 0, 0 elsewhere


def make_kernels(xp) -> dict:
    """The kernel table for the array module `xp` (numpy or torch)."""

    def laplace(n):
        def kernel(x, dx=1.0, bc="periodic"):
            hs = _spacings(dx, n)
            if len(set(hs)) == 1:  # equal spacings: add neighbours in place, scale once
                out = x * (-2.0 * n)
                for ax in _axes(x, n):
                    _add_shift(out, x, 1, ax, bc)
                    _add_shift(out, x, -1, ax, bc)
                out *= 1.0 / hs[0] ** 2
                return out
            out = x * sum(-2.0 / h**2 for h in hs)
            for ax, h in zip(_axes(x, n), hs, strict=True):
                _add_shift(out, x, 1, ax, bc, 1.0 / h**2)
                _add_shift(out, x, -1, ax, bc, 1.0 / h**2)
            return out

        return kernel

    def diff(x, axis=-1, dx=1.0, bc="periodic", side=1):
        ax = axis % x.ndim
        out = x * (-side / dx)
        _add_shift(out, x, side, ax, bc, side / dx)
        return out

    def gradient(x, axis=-1, dx=1.0, bc="periodic"):
        ax = axis % x.ndim
        out = xp.zeros_like(x)
        _add_shift(out, x, 1, ax, bc, 0.5 / dx)
        _add_shift(out, x, -1, ax, bc, -0.5 / dx)
        return out

    def upwind_terms(c, vels, axes, dxs, bc):
        out = None
        for u, ax, h in zip(vels, axes, dxs, strict=True):
            up = _positive_part(u)
            term = up * diff(c, ax, h, bc, -1) + (u - up) * diff(c, ax, h, bc, 1)
            out = term if out is None else out + term
        return out

    def upwind_adjoint_terms(g, vels, axes, dxs, bc):
        out = None
        for u, ax, h in zip(vels, axes, dxs, strict=True):
            up = _positive_part(u)
            term = diff(up * g, ax, h, bc, 1) + diff((u - up) * g, ax, h, bc, -1)
            out = -term if out is None else out - term
        return out

    def upwind(c, u, axis=-1, dx=1.0, bc="periodic"):
        return upwind_terms(c, (u,), (axis % c.ndim,), (dx,), bc)

    def upwind_adjoint(g, u, axis=-1, dx=1.0, bc="periodic"):
        return upwind_adjoint_terms(g, (u,), (axis % g.ndim,), (dx,), bc)

    def advect2d(c, u, v, dx=1.0, bc="periodic"):
        return upwind_terms(c, (u, v), tuple(_axes(c, 2)), _spacings(dx, 2), bc)

    def advect2d_adjoint(g, u, v, dx=1.0, bc="periodic"):
        return upwind_adjoint_terms(g, (u, v), tuple(_axes(g, 2)), _spacings(dx, 2), bc)

    return {
        "stencil_laplace1d": laplace(1),
        "stencil_laplace2d": laplace(2),
        "stencil_laplace3d": laplace(3),
        "stencil_diff": diff,
        "stencil_gradient": gradient,
        "stencil_upwind": upwind,
        "stencil_upwind_adjoint": upwind_adjoint,
        "stencil_advect2d": advect2d,
        "stencil_advect2d_adjoint": advect2d_adjoint,
    }
