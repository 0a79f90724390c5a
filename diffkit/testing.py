"""Generic derivative checks, for diffkit's own primitives and for users' code.

- `check_grads(f, args, order=2, modes=("fwd", "rev"))`: JVP against central finite
  differences, VJP against JVP by the dot-product test <v, J u> = <J^T v, u>, and the same
  checks on the derivative functions themselves up to `order` (autograd's and JAX's design).
- `check_primitive(name, backend)`: `check_grads` on every sampled case of a registered
  primitive, on the given backend, with the values compared with NumPy's kernel (for a
  non-differentiable one: that no derivative flows); a differentiable primitive with no case
  checked is a failure.
  `diffkit check PLUGIN` runs it over a plugin's primitives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from diffkit.core import pytree
from diffkit.core.dispatch import is_inexact
from diffkit.transforms import jvp, vjp

__all__ = ["check_grads", "check_primitive", "to_numpy"]


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of an array of any registered backend (or a Python scalar)."""
    from diffkit.plugins import registry

    backend = registry().backend_of(type(x))
    return np.asarray(x) if backend is None else np.asarray(backend.to_numpy(x))


def _like(template, values: np.ndarray):
    """`values` (NumPy) as an array of `template`'s backend, dtype and device."""
    from diffkit.numpy import asarray

    if isinstance(template, float | complex):
        return type(template)(values)  # a Python scalar argument stays one
    return asarray(values.astype(to_numpy(template).dtype), like=template)


def _random_like(x, rng):
    a = to_numpy(x)
    r = rng.standard_normal(a.shape)
    if np.iscomplexobj(a):
        r = r + 1j * rng.standard_normal(a.shape)
    return _like(x, r.astype(a.dtype))


def _inner(xs, ys) -> float:
    """Real pairing Re(sum(x * y)) summed over matching leaves (JAX's convention)."""
    return float(sum(np.real(np.sum(to_numpy(x) * to_numpy(y))) for x, y in zip(xs, ys)))


def _tolerances(leaves, eps, rtol, atol):
    single = any(to_numpy(x).dtype in (np.float32, np.complex64) for x in leaves)
    return (eps or (1e-3 if single else 1e-6), rtol or (2e-2 if single else 1e-5),
            atol or (2e-2 if single else 1e-6))


def _assert_close(got, want, rtol, atol, what: str):
    got, want = [to_numpy(g) for g in got], [to_numpy(w) for w in want]
    scale = max([1.0] + [float(np.max(np.abs(w))) for w in want if w.size])
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        err = float(np.max(np.abs(g - w))) if w.size else 0.0
        if not err <= atol * scale + rtol * float(np.max(np.abs(w), initial=0.0)):
            raise AssertionError(
                f"{what}: output leaf {k} differs by {err:.3g} (scale {scale:.3g})\n"
                f"got:\n{g}\nexpected:\n{w}"
            )


def _inexact_positions(flat):
    return [i for i, x in enumerate(flat) if is_inexact(x)]


def check_grads(f: Callable, args: Sequence, order: int = 2,
                modes: Sequence[str] = ("fwd", "rev"), eps: float | None = None,
                rtol: float | None = None, atol: float | None = None, seed: int = 0) -> None:
    """Check the derivatives of `f` at `args` (a tuple of pytrees); raise AssertionError
    naming the check that failed.

    >>> import diffkit.numpy as dnp, numpy as np
    >>> check_grads(lambda x: dnp.sin(x) * x, (np.array([0.3, 1.2]),), order=2)
    """
    args = tuple(args)
    flat, tree = pytree.flatten(args)
    pos = _inexact_positions(flat)
    if not pos:
        raise ValueError("check_grads: no floating or complex input to differentiate")
    eps, rtol, atol = _tolerances([flat[i] for i in pos], eps, rtol, atol)
    rng = np.random.default_rng(seed)

    def g(*dyn):
        full = list(flat)
        for i, d in zip(pos, dyn, strict=True):
            full[i] = d
        return f(*pytree.unflatten(tree, full))

    primals = [flat[i] for i in pos]
    tangents = [_random_like(x, rng) for x in primals]
    out, t_out = jvp(g, primals, tangents)
    out_flat = pytree.leaves(out)
    t_flat = pytree.leaves(t_out)
    if "fwd" in modes:
        _check_fd(g, primals, tangents, t_flat, eps, rtol, atol)
    if "rev" in modes:
        cts = [_random_like(o, rng) if is_inexact(o) else None for o in out_flat]
        ct_tree = pytree.unflatten(pytree.structure(out), [  # integer outputs: zeros
            c if c is not None else _like(o, np.zeros(np.shape(to_numpy(o))))
            for c, o in zip(cts, out_flat, strict=True)])
        _, f_vjp = vjp(g, *primals)
        ct_in = f_vjp(ct_tree)
        lhs = _inner([c for c in cts if c is not None],
                     [t for t, c in zip(t_flat, cts, strict=True) if c is not None])
        rhs = _inner(ct_in, tangents)
        if not abs(lhs - rhs) <= atol + rtol * max(abs(lhs), abs(rhs), 1.0) * 10:
            raise AssertionError(
                f"VJP disagrees with JVP (dot-product test): <v, J u> = {lhs!r} but "
                f"<J^T v, u> = {rhs!r}"
            )
    if order > 1:
        if "fwd" in modes:
            check_grads(lambda *p: jvp(g, p, tangents)[1], primals, order - 1, ("fwd", "rev"),
                        eps, rtol, atol, seed + 1)
        if "rev" in modes:
            check_grads(lambda *p: vjp(g, *p)[1](ct_tree), primals, order - 1, ("fwd", "rev"),
                        eps, rtol, atol, seed + 2)


def _check_fd(g, primals, tangents, t_flat, eps, rtol, atol):
    def shifted(sign):
        return [_like(p, to_numpy(p) + sign * eps * to_numpy(t))
                for p, t in zip(primals, tangents, strict=True)]

    plus = pytree.leaves(g(*shifted(+1)))
    minus = pytree.leaves(g(*shifted(-1)))
    fd = [(to_numpy(a) - to_numpy(b)) / (2 * eps) if is_inexact(a) else None
          for a, b in zip(plus, minus, strict=True)]
    keep = [k for k, d in enumerate(fd) if d is not None]
    _assert_close([t_flat[k] for k in keep], [fd[k] for k in keep], rtol * 10, atol,
                  "JVP disagrees with central finite differences")


def _check_case(prim, args, params, order, seed) -> int:
    """check_grads on one case, differentiating only the arguments the rules cover (a
    per-argument rule of None declares an argument non-differentiable: keep it fixed).
    Returns 1 if it checked something, 0 if no argument could be differentiated."""
    rules = prim.jvp_args
    pos = [i for i, a in enumerate(args)
           if is_inexact(a) and (rules is None or rules[i] is not None)]
    if not pos:
        return 0

    def f(*dyn):
        full = list(args)
        for i, d in zip(pos, dyn, strict=True):
            full[i] = d
        return prim.bind(*full, **params)

    check_grads(f, [args[i] for i in pos], order=order, seed=seed)
    return 1


# Primitives whose outputs are defined up to a sign per vector: backends may choose
# differently, so their values are not compared with NumPy's (their rules still are checked).
UP_TO_SIGN = frozenset({"svd", "eigh"})


def check_primitive(name: str, backend: str = "numpy", order: int = 2, seed: int = 0) -> int:
    """Check every sampled case of primitive `name` on `backend`; return how many cases had
    their derivatives checked (`check_grads` on the arguments the rules cover).

    On a backend other than NumPy, each case's outputs are also compared with NumPy's kernel
    (where the primitive has one). A non-differentiable primitive (`nondiff=True`) returns 0:
    its cases are checked for what applies (no tangent or cotangent flows through it; values
    as above). A differentiable primitive none of whose cases has a floating input the rules
    cover raises: "checked" never means "every case skipped". Failures are AssertionErrors
    naming the primitive, the backend and the case.
    """
    from diffkit.plugins import registry

    reg = registry()
    prim = reg.primitives[name]
    if prim.sample is None:
        raise AssertionError(f"primitive {name!r} has no sampling domain (sample=...)")
    be = reg.backends[backend]
    compare = (backend != "numpy" and name not in UP_TO_SIGN
               and callable(reg.kernels("numpy").get(name)))  # a NumPy kernel to compare with
    checked = 0
    for k, (raw, params) in enumerate(prim.sample(np.random.default_rng(seed))):
        args = tuple(be.asarray(a) if isinstance(a, np.ndarray | np.generic) else a
                     for a in raw)
        try:
            out = prim.bind(*args, **params)
            if compare:
                _assert_same_values(out, prim.bind(*raw, **params), "numpy")
            if prim.nondiff:
                _check_nondiff_case(prim, args, params, seed + k)
            elif any(is_inexact(o) for o in pytree.leaves(out)):
                checked += _check_case(prim, args, params, order, seed + k)
        except AssertionError as e:
            shapes = [tuple(getattr(a, "shape", ())) for a in args]
            raise AssertionError(
                f"primitive {name!r} on backend {backend!r}, case {k} (argument shapes "
                f"{shapes}, params {params}): {e}"
            ) from None
    if not prim.nondiff and not checked:
        raise AssertionError(
            f"primitive {name!r} on backend {backend!r}: no sampled case has a floating "
            f"output and a floating argument its rules cover, so no derivative was checked; "
            f"give sample= such a case (or declare the primitive nondiff=True)"
        )
    return checked


def _check_nondiff_case(prim, args, params, seed):
    """A non-differentiable primitive's case: random tangents give zero output tangents and
    a random cotangent gives zero input cotangents."""
    pos = _inexact_positions(args)
    if not pos:
        return
    rng = np.random.default_rng(seed)

    def f(*dyn):
        full = list(args)
        for i, d in zip(pos, dyn, strict=True):
            full[i] = d
        return prim.bind(*full, **params)

    primals = [args[i] for i in pos]
    out, t_out = jvp(f, primals, [_random_like(p, rng) for p in primals])
    _assert_zero(pytree.leaves(t_out), "a tangent flows through a non-differentiable primitive")
    _, f_vjp = vjp(f, *primals)
    cts = pytree.unflatten(pytree.structure(out), [_random_like(o, rng) if is_inexact(o)
                                                   else o for o in pytree.leaves(out)])
    _assert_zero(f_vjp(cts), "a cotangent flows back through a non-differentiable primitive")


def _assert_zero(leaves, what: str):
    for k, x in enumerate(leaves):
        a = to_numpy(x)
        if np.any(a != 0):
            raise AssertionError(f"{what}: leaf {k} is nonzero\n{a}")


def _assert_same_values(got, want, other: str):
    """Outputs of two backends' kernels on the same case agree (to rounding)."""
    for k, (g, w) in enumerate(zip(pytree.leaves(got), pytree.leaves(want), strict=True)):
        g, w = to_numpy(g), to_numpy(w)
        tol = 1e-5 if w.dtype in (np.float32, np.complex64) else 1e-10
        finite = np.abs(w[np.isfinite(w)]) if w.dtype.kind in "fc" else ()
        scale = float(np.max(finite, initial=1.0))
        if g.shape != w.shape or not np.allclose(g, w, rtol=tol, atol=tol * scale,
                                                 equal_nan=True):
            raise AssertionError(f"kernel disagrees with the {other} backend's on output leaf "
                                 f"{k}:\ngot:\n{g}\nexpected:\n{w}")
