"""The stencil primitives and their rules.

Every stencil here is linear in the field it acts on, and its transpose is again a stencil,
so each VJP is one primitive call — not a tape of the slices and adds the kernel is made of:

- Laplacian (periodic, or Dirichlet with zero boundary values): symmetric, its own transpose.
- One-sided difference: the transpose of the forward difference is minus the backward one
  (and vice versa), under both boundary conditions.
- Centred difference: antisymmetric, its transpose is minus itself.
- Upwind advection `u * dc/dx` (first order: backward difference where u > 0, forward where
  u < 0): linear in c with transpose `upwind_adjoint`, a stencil of its own whose transpose
  is `upwind` again. With respect to the velocity the derivative is the difference the
  scheme picked; at u == 0 the two one-sided differences are averaged (the 0.5/0.5 tie
  split of `maximum`), i.e. the centred difference.

Rules call primitives only (the stencil's own and diffkit's), so they are differentiable
again (their own derivatives are stencil calls too).
"""

from __future__ import annotations

from diffkit.extend import Primitive, cases, linear
from diffkit.primitives.elementwise import sign

__all__ = ["PRIMITIVES"]

BCS = ("periodic", "dirichlet")


# -- Laplacians, differences, centred gradient: linear, transposes are stencils ----------
def _laplace(n: int) -> Primitive:
    prim = linear(
        f"stencil_laplace{n}d", lambda g, _ans, _x, **p: prim.bind(g, **p),
        saves_args=False, saves_ans=False, sample=cases(*_laplace_cases(n)),
        doc=f"{n}D Laplacian over the last {n} axes (5-point style, second order).",
    )
    return prim


def _laplace_cases(n: int) -> list:
    shapes = {1: ((7,), (2, 5)), 2: ((4, 5), (2, 3, 4)), 3: ((3, 4, 5),)}[n]
    dxs = {1: 0.5, 2: (0.5, 0.25), 3: (1.0, 0.5, 2.0)}[n]
    out = []
    for shape in shapes:
        for bc in BCS:
            out.append((_normal(shape), {"dx": 1.0, "bc": bc}))
    out.append((_normal(shapes[0]), {"dx": dxs, "bc": "dirichlet"}))
    return out


def _normal(*shapes):
    return lambda rng: tuple(rng.standard_normal(s) for s in shapes)


def _away_from_zero(shape_c, shape_u, *more_u):
    def build(rng):
        c = rng.standard_normal(shape_c)
        vels = [rng.uniform(0.3, 2.0, s) * rng.choice([-1.0, 1.0], s)
                for s in (shape_u, *more_u)]
        return (c, *vels)

    return build


diff = linear(
    "stencil_diff",
    lambda g, _ans, _x, **p: -diff.bind(g, **{**p, "side": -p["side"]}),
    saves_args=False, saves_ans=False,
    sample=cases(*[(_normal((3, 6)), {"axis": ax, "dx": 0.5, "bc": bc, "side": side})
                   for ax in (0, -1) for bc in BCS for side in (1, -1)]),
    doc="One-sided first difference along `axis`: side=1 forward, side=-1 backward.",
)

gradient = linear(
    "stencil_gradient", lambda g, _ans, _x, **p: -gradient.bind(g, **p),
    saves_args=False, saves_ans=False,
    sample=cases(*[(_normal((4, 5)), {"axis": ax, "dx": 0.5, "bc": bc})
                   for ax in (0, 1) for bc in BCS]),
    doc="Second-order centred first derivative along `axis`.",
)


# -- upwind advection ----------------------------------------------------------------------
def _heaviside(u):
    """1 where u > 0, 0 where u < 0, 0.5 at u == 0 (no derivative: sign is piecewise constant)."""
    return (sign(u) + 1) * 0.5


def _picked(c, u, axis, dx, bc):
    """The one-sided difference of c the upwind scheme uses at each point (its d/du)."""
    h = _heaviside(u)
    back = diff.bind(c, axis=axis, dx=dx, bc=bc, side=-1)
    fwd = diff.bind(c, axis=axis, dx=dx, bc=bc, side=1)
    return h * back + (1 - h) * fwd


def _picked_adjoint(gt, u, axis, dx, bc):
    """d/du of upwind_adjoint(g, u) along t, given gt = g * t."""
    h = _heaviside(u)
    return -(diff.bind(h * gt, axis=axis, dx=dx, bc=bc, side=1)
             + diff.bind((1 - h) * gt, axis=axis, dx=dx, bc=bc, side=-1))


upwind = Primitive(
    "stencil_upwind",
    jvp=(lambda t, ans, c, u, **p: upwind.bind(t, u, **p),
         lambda t, ans, c, u, **p: t * _picked(c, u, **p)),
    vjp=(lambda g, _ans, _c, u, **p: upwind_adjoint.bind(g, u, **p),
         lambda g, _ans, c, u, **p: g * _picked(c, u, **p)),
    saves_ans=False,
    sample=cases(*[(_away_from_zero(s, su), {"axis": ax, "dx": 0.5, "bc": bc})
                   for s, su, ax in (((7,), (7,), -1), ((3, 5), (3, 5), 0), ((6,), (), 0))
                   for bc in BCS]),
    subgradient="d/du at u == 0: the centred difference (one-sided ones split 0.5/0.5)",
    doc="u * dc/dx along `axis`, first-order upwind.",
)

upwind_adjoint = Primitive(
    "stencil_upwind_adjoint",
    jvp=(lambda t, ans, g, u, **p: upwind_adjoint.bind(t, u, **p),
         lambda t, ans, g, u, **p: _picked_adjoint(g * t, u, **p)),
    vjp=(lambda w, _ans, _g, u, **p: upwind.bind(w, u, **p),
         lambda w, _ans, g, u, **p: g * _picked(w, u, **p)),
    saves_ans=False, sample=upwind.sample, subgradient=upwind.subgradient,
    doc="Transpose of stencil_upwind with respect to the field.",
)


def _axis_params(p):
    dx = p["dx"] if isinstance(p["dx"], tuple | list) else (p["dx"],) * 2
    return ({"axis": -2, "dx": dx[0], "bc": p["bc"]}, {"axis": -1, "dx": dx[1], "bc": p["bc"]})


def _each_axis(fn):
    """A per-velocity rule of advect2d from the matching 1D rule along that velocity's axis."""
    return lambda k: lambda t, _ans, c, u, v, **p: fn(t, c, (u, v)[k], **_axis_params(p)[k])


_adv_jvp_u = _each_axis(lambda t, c, u, **q: t * _picked(c, u, **q))
_adv_adj_jvp_u = _each_axis(lambda t, g, u, **q: _picked_adjoint(g * t, u, **q))

advect2d = Primitive(
    "stencil_advect2d",
    jvp=(lambda t, ans, c, u, v, **p: advect2d.bind(t, u, v, **p), _adv_jvp_u(0), _adv_jvp_u(1)),
    vjp=(lambda g, _ans, _c, u, v, **p: advect2d_adjoint.bind(g, u, v, **p),
         _adv_jvp_u(0), _adv_jvp_u(1)),
    saves_ans=False,
    sample=cases(*[(_away_from_zero((4, 5), (4, 5), (4, 5)), {"dx": dx, "bc": bc})
                   for dx in (1.0, (0.5, 0.25)) for bc in BCS]),
    subgradient=upwind.subgradient,
    doc="u * dc/dx0 + v * dc/dx1 over the last two axes, first-order upwind.",
)

advect2d_adjoint = Primitive(
    "stencil_advect2d_adjoint",
    jvp=(lambda t, ans, g, u, v, **p: advect2d_adjoint.bind(t, u, v, **p),
         _adv_adj_jvp_u(0), _adv_adj_jvp_u(1)),
    vjp=(lambda w, _ans, _g, u, v, **p: advect2d.bind(w, u, v, **p),
         _each_axis(lambda w, g, u, **q: g * _picked(w, u, **q))(0),
         _each_axis(lambda w, g, u, **q: g * _picked(w, u, **q))(1)),
    saves_ans=False, sample=advect2d.sample, subgradient=upwind.subgradient,
    doc="Transpose of stencil_advect2d with respect to the field.",
)

laplace1d, laplace2d, laplace3d = _laplace(1), _laplace(2), _laplace(3)

PRIMITIVES = (laplace1d, laplace2d, laplace3d, diff, gradient, upwind, upwind_adjoint,
              advect2d, advect2d_adjoint)
