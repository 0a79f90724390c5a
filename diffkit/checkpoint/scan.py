"""`scan`: a checkpointed loop with per-step inputs x_i and stacked per-step outputs y_i.

It runs on the loop executor (`executor.Executor`) with a `ScanIO`: the carry is the loop's
state (snapshotted, fingerprinted, protected from in-place writes), each y_i is written to
the stacked output outside the snapshots, and in the reverse sweep step i's VJP receives
the cotangents of both the next carry and y_i. Under forward mode it scans (carry, tangent)
pairs: a checkpointed scan with a gradient below, else the pair step's compiled program
replayed (`compiled_forward`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np

from diffkit.checkpoint.budget import Budget
from diffkit.checkpoint.compiled_forward import run_pairs
from diffkit.checkpoint.executor import Checks, Executor, LoopIO
from diffkit.checkpoint.loop import _may_vary, _refuse_closure, _step_count, _tangent
from diffkit.checkpoint.stepcheck import call_step, owned_tensors
from diffkit.checkpoint.storage import tree_nbytes
from diffkit.core import pytree
from diffkit.core.forward import JVPTrace, JVPTracer
from diffkit.core.program import refuse_inside
from diffkit.custom import carries_tangent, record_node, top_trace, unbox
from diffkit.errors import TransformError
from diffkit.transforms import jvp

__all__ = ["scan"]


def scan(step: Callable, carry0, xs, args: tuple = (),
         budget: Budget | str | dict | None = None, *, save_every: int = 1,
         progress: bool | str = False, check_recompute: bool = True,
         preserve_rng_state: bool = False,
         resume: bool | str = False, compile: bool | str | None = None):
    """Run `carry, y_i = step(carry, x_i, i, *args)` for i in range(n); return
    `(final carry, ys)`, like `jax.lax.scan` with the step index and `args` added.

    `xs` is either the step count n (then x_i is None) or a pytree of arrays with a leading
    axis of length n, sliced per step. `ys` stacks the y_i along a new leading axis: all n
    of them, or with `save_every=k` those of steps k-1, 2k-1, ... (the y made by every k-th
    step, n // k of them; ys[j] comes from step (j+1)*k - 1). Gradients flow to `carry0`,
    `xs`, `args` and from `ys` through a checkpoint schedule planned from `budget` with the
    stored ys counted. The step follows the rules of `dk.checkpoint.loop` for its carry;
    `resume=` keeps a killed run's disk snapshots (and the ys so far) as in `loop`.

    >>> import diffkit as dk
    >>> f = lambda c0: dk.checkpoint.scan(lambda c, x, i: (c * x, c), c0, dk.numpy.ones(3))[1]
    >>> [float(v) for v in f(2.0)]
    [2.0, 2.0, 2.0]
    """
    n, x_flat, x_tree = _inputs(xs)
    every = _every(save_every)
    checks = Checks(check_recompute, preserve_rng_state, compile)
    args = tuple(args)
    flat_in, in_tree = pytree.flatten((carry0, args))
    top = top_trace(flat_in + x_flat)
    if top is None:
        return _plain(step, carry0, x_flat, x_tree, n, args, every)
    if not top.active:
        raise top.leaked("checkpoint.scan")
    refuse_inside(top, "checkpoint.scan")
    if isinstance(top, JVPTrace):
        return _forward_mode(top, step, carry0, (x_flat, x_tree, n), args, budget, every,
                             progress, checks)
    io = ScanIO(unbox(x_flat, top), x_tree, n, every)
    ex = Executor(top, step, flat_in + x_flat, in_tree, budget, progress, checks, io,
                  resume=resume)
    carry = ex.forward_offline(n)
    return record_node(top, "checkpoint.scan", flat_in + x_flat, (carry, io.stack()),
                       ex._vjp_all, lean=True)


def _inputs(xs):
    """(n, xs' leaves, xs' structure or None) from `xs`, a step count or a pytree."""
    if xs is None or isinstance(xs, (int, np.integer)) or (
            hasattr(xs, "ndim") and xs.ndim == 0 and "int" in str(xs.dtype)):
        n = _step_count(xs)
        x_flat, x_tree = [], None
    else:
        x_flat, x_tree = pytree.flatten(xs)
        lengths = [x.shape[0] if getattr(x, "ndim", 0) else None for x in x_flat]
        if not x_flat or None in lengths or len(set(lengths)) != 1:
            paths = ", ".join(f"leaf {k}: {'no leading axis' if m is None else f'length {m}'}"
                              for k, m in enumerate(lengths))
            raise TransformError(
                f"checkpoint.scan: xs must be a step count or a pytree of arrays that all "
                f"have the same leading axis length n (x_i = xs[i]); got {paths or 'no leaves'}")
        n = lengths[0]
    if n == 0:
        raise TransformError("checkpoint.scan: needs at least one step (n = 0): the "
                             "outputs' shapes are those the step returns")
    return n, x_flat, x_tree


def _every(k) -> int:
    try:
        k = None if isinstance(k, bool) else operator.index(k)
    except TypeError:
        k = None
    if k is None or k < 1:
        raise TransformError(f"checkpoint.scan: save_every must be an integer >= 1, got {k!r}")
    return k


class ScanIO(LoopIO):
    """The executor's per-step inputs and outputs for a scan: slices x_i of xs, collects
    the y_i it keeps, and hands each step the cotangent of its y_i in the reverse sweep."""

    name = "checkpoint.scan"

    def __init__(self, x_flat, x_tree, n, every):
        self.x_flat, self.x_tree, self.n, self.every = x_flat, x_tree, n, every
        self.y_tree = self.y_meta = None
        self.ys, self.g_ys, self.ct_xs, self.open = {}, None, {}, True

    def x_at(self, i):
        """x_i's leaves, the caller's arrays copied: a step that writes into its x_i in
        place changes neither xs nor what a recomputation of step i sees."""
        return [_copy(x[i]) for x in self.x_flat]

    def step_at(self, step, i, x):
        x_i = None if self.x_tree is None else pytree.unflatten(self.x_tree, x)
        return lambda carry, j, *args: step(carry, x_i, j, *args)

    def split(self, out, i):
        return split_output(self, out, i)

    def put_y(self, i, y):
        self.y_bytes, self.y_last = tree_nbytes(y), y
        if self.open and i % self.every == self.every - 1:
            self.ys[i // self.every] = y

    def stack(self):
        """The kept y_i stacked along a new leading axis; the forward sweep is over."""
        from diffkit import numpy as dnp

        self.open, m = False, self.n // self.every
        ys = [dnp.stack([self.ys[j][k] for j in range(m)]) if m else
              dnp.stack([v])[:0] for k, v in enumerate(self.y_last)]  # none kept: length 0
        self.ys = self.y_last = {}
        return pytree.unflatten(self.y_tree, ys)

    def nbytes(self, n):
        """The ys and their cotangent, held through the gradient, and the xs' cotangent."""
        return 2 * self.y_bytes * (n // self.every) + tree_nbytes(self.x_flat)

    def take_ct(self, ct):
        ny = len(self.y_meta)
        self.g_ys = ct[len(ct) - ny:]
        return ct[:len(ct) - ny]

    def ct_y(self, i):
        if i % self.every != self.every - 1:
            return [None] * len(self.y_meta)
        j = i // self.every
        return [None if g is None else g[j] for g in self.g_ys]

    def put_ct_x(self, i, ct):
        self.ct_xs[i] = ct

    def ct_x(self):
        """Each xs leaf's cotangent: the steps' x_i cotangents stacked (None if none)."""
        from diffkit import numpy as dnp

        cts, self.ct_xs, self.g_ys = self.ct_xs, {}, None
        out = []
        for k, x in enumerate(self.x_flat):
            if all(cts[i][k] is None for i in cts):
                out.append(None)
                continue
            out.append(dnp.stack([dnp.zeros_like(x[i]) if cts[i][k] is None else cts[i][k]
                                  for i in range(self.n)]))
        return out


def split_output(io, out, i):
    """(carry, y_i's leaves) from a step's output; y_i must keep its structure and shapes."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TransformError(
            f"the step function of checkpoint.scan must return a pair (carry, y) but "
            f"returned {type(out).__name__} at step {i}: return (new_carry, y_i), with y_i "
            f"None when there is no output")
    carry, y = out
    flat_y, y_tree = pytree.flatten(y)
    meta = [(tuple(v.shape), v.dtype) if hasattr(v, "dtype") else
            (np.shape(v), np.asarray(v).dtype) for v in flat_y]
    if io.y_tree is None:
        io.y_tree, io.y_meta = y_tree, meta
    elif y_tree != io.y_tree or [s for s, _ in meta] != [s for s, _ in io.y_meta]:
        raise TransformError(
            f"the step function of checkpoint.scan returned a y of structure {y_tree!r} with "
            f"shapes {[s for s, _ in meta]} at step {i}, where earlier steps returned "
            f"{io.y_tree!r} with shapes {[s for s, _ in io.y_meta]}: the ys are stacked, so "
            f"every step must return a y of the same structure and shapes")
    return carry, flat_y


def _plain(step, carry, x_flat, x_tree, n, args, every):
    """No traced input: run the steps and stack the kept outputs."""
    io = ScanIO(x_flat, x_tree, n, every)
    owned = owned_tensors(carry)
    for i in range(n):
        carry, y = io.split(call_step(io.step_at(step, i, io.x_at(i)), carry, i, args, owned),
                            i)
        if i == 0:
            _refuse_closure((carry, y))
        io.put_y(i, y)
    return carry, io.stack()


def _forward_mode(trace, step, carry0, xs, args, budget, every, progress, checks):
    """JVP of a scan: a scan over (carry, tangent) pairs, with (x_i, tangent) inputs and
    (y_i, tangent) outputs; with nothing traced below, one replaying the pair step's program
    (`compiled_forward`)."""
    x_flat, x_tree, n = xs
    flat_c, c_tree = pytree.flatten(carry0)
    flat_a, a_tree = pytree.flatten(args)
    c0, a0, x0 = unbox(flat_c, trace), unbox(flat_a, trace), unbox(x_flat, trace)
    c_pos = [k for k, x in enumerate(c0) if _may_vary(x)]
    a_pos = [k for k, x in enumerate(flat_a) if _traced(x, trace)]
    x_pos = [k for k, x in enumerate(x_flat) if _traced(x, trace)]
    tc0 = [_tangent(flat_c[k], trace, c0[k]) for k in c_pos]
    ta = [flat_a[k].tangent for k in a_pos]
    tx = [x_flat[k].tangent for k in x_pos]
    y_pos = []

    def pair_step(pair, x_pair, i, a, ta):
        c = pytree.leaves(pair[0])
        x = [] if x_pair is None else list(x_pair[0])

        def f(*dyn):
            fc, fa, fx = list(c), list(a), list(x)
            for pos, vals, d in ((c_pos, fc, dyn[:len(c_pos)]),
                                 (a_pos, fa, dyn[len(c_pos):len(c_pos) + len(a_pos)]),
                                 (x_pos, fx, dyn[len(c_pos) + len(a_pos):])):
                for k, v in zip(pos, d, strict=True):
                    vals[k] = v
            x_i = None if x_tree is None else pytree.unflatten(x_tree, fx)
            out = step(pytree.unflatten(c_tree, fc), x_i, i, *pytree.unflatten(a_tree, fa))
            return split_output(seen, out, i)

        prim = [c[k] for k in c_pos] + [a[k] for k in a_pos] + [x[k] for k in x_pos]
        tan = list(pair[1]) + list(ta) + ([] if x_pair is None else list(x_pair[1]))
        (out, y), (t_out, t_y) = jvp(f, prim, tan)
        y_pos[:] = [k for k, v in enumerate(y) if carries_tangent(v)]
        t_c = pytree.leaves(t_out)
        return (out, [t_c[k] for k in c_pos]), (y, [t_y[k] for k in y_pos])

    seen = ScanIO([], None, n, every)  # the y structure, checked as in `split_output`
    inner_xs = n if x_tree is None else (x0, tx)
    pair0 = (pytree.unflatten(c_tree, c0), tc0)
    if top_trace(c0 + tc0 + a0 + ta + x0 + tx) is None:  # nothing below: a program
        io = ScanIO(*_inputs(inner_xs)[1:], n, every)
        carry = run_pairs(io, pair_step, pair0, (a0, ta), checks, _refuse_closure, n_steps=n)
        (out, t_out), (ys, t_ys) = carry, io.stack()
    else:
        (out, t_out), (ys, t_ys) = scan(pair_step, pair0, inner_xs, (a0, ta), budget,
                                        save_every=every, progress=progress,
                                        **checks._asdict())
    flat_o = pytree.leaves(out)
    for k, t in zip(c_pos, t_out, strict=True):
        flat_o[k] = JVPTracer(trace, flat_o[k], t)
    for k, t in zip(y_pos, t_ys, strict=True):
        ys[k] = JVPTracer(trace, ys[k], t)
    return pytree.unflatten(c_tree, flat_o), pytree.unflatten(seen.y_tree, ys)


def _copy(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    return x.clone() if hasattr(x, "_version") else x  # a torch tensor; tracers are immutable


def _traced(x, trace) -> bool:
    return isinstance(x, JVPTracer) and x._trace is trace
