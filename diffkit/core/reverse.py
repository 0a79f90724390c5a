"""Reverse mode: a tape of nodes recorded in execution order, walked backwards once.

Each node keeps what its VJP rule needs (inputs and/or output, per the primitive's
`saves_args`/`saves_ans`) and, for each traced input, where that input came from. The
tape is a list, so the backward walk is a plain loop in reverse order: no recursion, no
topological sort, no reference cycles for the garbage collector to chase.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import weakref

from diffkit.core import ops
from diffkit.core.primitive import Primitive
from diffkit.core.residuals import keep_plan, passes_through
from diffkit.core.tracer import Trace, Tracer
from diffkit.core.zeros import Zero
from diffkit.errors import InternalError

__all__ = ["LiveBytesTrace", "VJPTrace", "VJPTracer"]

_NONES = [(None,) * n for n in range(64)]
_NO_PARAMS: dict = {}  # shared by every node of a primitive called without parameters
_NODE_BYTES = 512  # Python objects per recorded node (tracemalloc: ~520 B with 0-d arrays)
_TAPE_BYTES = 1536  # per tape: the trace, its lists, a kept step's VJP closure (~1 KB measured)
_ARRAY_BYTES = 112  # the Python object of one array (NumPy's header)


# A tape node is a plain tuple (built at C speed; one per recorded primitive call):
#   (prim, args, params, ans, parents)
# `parents` holds (argpos, node index, output index, shape, dtype) per traced input. A leaf
# (an input of the transform) has prim None. `args`/`ans` are None-filled when the
# primitive declares its VJP does not need them (saves_args / saves_ans).
_LEAF_NODE = (None, None, None, None, ())


_gc_lock = threading.Lock()
_gc_pause = [0, None]  # [transforms inside young_gc_only, in all threads; saved thresholds]


@contextlib.contextmanager
def young_gc_only():
    """Pause full (generation-2) garbage collections while a tape grows or is walked.

    Each full collection traverses every live node, tracer and saved tuple, so on a long
    tape they dominate (a 4,000-step Burgers store-all gradient: 275 -> 94 us per taped
    step). Young collections still run, so short-lived reference cycles are still freed.
    The GC settings belong to the process: across threads and nesting, the first entrant
    saves them and the last one out restores them.
    """
    with _gc_lock:
        if _gc_pause[0] == 0:
            t0, t1, t2 = _gc_pause[1] = gc.get_threshold()
            gc.set_threshold(t0, t1, max(t2, 1 << 30))
        _gc_pause[0] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pause[0] -= 1
            if _gc_pause[0] == 0:
                gc.set_threshold(*_gc_pause[1])


class VJPTracer(Tracer):
    """A value of a VJP trace: its primal, the tape node that made it, and which output."""

    __slots__ = ("_trace", "primal", "idx", "out")

    def __init__(self, trace, primal, idx, out):
        self._trace = trace
        self.primal = primal
        self.idx = idx
        self.out = out

    def __repr__(self):
        return f"VJPTracer(primal={self.primal!r})"


class VJPTrace(Trace):
    """Runs primitives on primals and records a node per call whose output needs a VJP."""

    __slots__ = ("nodes",)

    def __init__(self, transform: str = "vjp"):
        super().__init__(transform)
        self.nodes: list[tuple] = []

    def leaf(self, primal) -> VJPTracer:
        self.nodes.append(_LEAF_NODE)
        return VJPTracer(self, primal, len(self.nodes) - 1, -1)

    def process(self, prim, args, params):
        primals = list(args)
        parents = []
        lower = False  # tracers of outer transforms remain among the primals
        mask = 0  # which arguments are traced here: decides what the node keeps
        for i, a in enumerate(args):
            if type(a) is VJPTracer and a._trace is self:
                p = primals[i] = a.primal
                parents.append((i, a.idx, a.out, p.shape, p.dtype))
                lower = lower or isinstance(p, Tracer)
                mask |= 1 << i
            elif isinstance(a, Tracer):
                lower = True
        ans = prim.bind(*primals, **params) if lower else prim.impl(primals, params)
        if prim.nondiff:
            return ans
        keep_args, keep_ans = prim.keep.get(mask) or keep_plan(prim, mask, len(primals))
        if keep_args is False:
            kept = _NONES[len(primals)]
        elif keep_args is not True:
            if len(primals) == 2:  # the common binary case, spelled out (hot path)
                kept = (primals[0] if keep_args[0] else None,
                        primals[1] if keep_args[1] else None)
            else:
                kept = [p if k else None for p, k in zip(primals, keep_args)]
        nodes = self.nodes
        idx = len(nodes)
        nodes.append((
            prim,
            primals if keep_args is True else kept,
            params or _NO_PARAMS,
            ans if keep_ans else None,
            parents,
        ))
        if prim.multiple_results:
            return tuple(VJPTracer(self, a, idx, k) for k, a in enumerate(ans))
        return VJPTracer(self, ans, idx, -1)

    def nbytes(self) -> int:
        """Bytes the tape keeps: its arrays' data (each counted once) plus the Python
        objects of each node (node, tracer, parents, array headers: ~0.5 KB measured) and
        of the tape itself (trace, node list, a kept VJP closure: ~1.5 KB)."""
        kept, n = {}, 0
        for node in self.nodes:
            if node is None or node[0] is None:
                continue
            n += 1
            args, ans = node[1], node[3]
            if args is not None and args is not _NONES[len(args)]:
                for v in args:
                    if v is not None:
                        kept[id(v)] = v
            if ans is not None:
                for v in ans if type(ans) is tuple else (ans,):
                    kept[id(v)] = v
        return _TAPE_BYTES + n * _NODE_BYTES + sum(_data_nbytes(v) for v in kept.values())

    def cotangent_nbytes(self) -> int:
        """Peak bytes of the cotangents `backward(consume=True)` holds at once over this
        tape, beyond the incoming ones: replays its order (a value's cotangent lives from its
        last consumer's rule until its own node runs) and charges each rule call an output
        and a temporary the size of the larger of g and the input (none for a rule that
        returns g), plus the sum that accumulates it. Leaf cotangents stay to the end."""
        nodes = self.nodes
        size: dict = {}  # (node, output) -> bytes of its cotangent
        for node in nodes:
            for _, pidx, pout, shape, dtype in node[4] if node is not None else ():
                size[pidx, pout] = _array_nbytes(shape, dtype)
        live: dict = {}  # (node, output) -> its cotangent, an object id (None: the caller's)
        refs: dict = {}  # object id -> [bytes, references]
        held = peak = 0
        for i in range(len(nodes) - 1, -1, -1):
            node = nodes[i]
            if node is None or node[0] is None:
                continue
            mine = [k for k in ((i, -1), *((i, j) for j in range(_n_out(node)))) if k in live]
            g = max((size[k] for k in mine), default=0)
            g_obj = live[mine[0]] if len(mine) == 1 else None
            rules = node[0].vjp_args if isinstance(node[0], Primitive) else None
            for pos, pidx, pout, _, _ in node[4]:
                if rules is not None and rules[pos] is None:
                    continue  # no cotangent flows to this input
                key, sp = (pidx, pout), size[pidx, pout]
                same = rules is not None and passes_through(rules[pos])
                new = 0 if same else 2 * max(g, sp)
                peak = max(peak, held + new + (sp if key in live else 0))
                obj = g_obj  # a rule that returns g passes its object on
                if key in live or not same:  # a new array: the rule's output or the sum
                    obj = len(refs) + 1
                    refs[obj] = [sp, 0]
                    held += sp
                    held -= _drop(refs, live.get(key))
                live[key] = obj
                if obj is not None:
                    refs[obj][1] += 1
            for k in mine:
                held -= _drop(refs, live.pop(k))
        return max(peak, held) + 8 * len(nodes)

    def add_node(self, rule, args, ans, parents, n_out: int):
        """Record a node for a custom rule (custom_vjp/custom_jvp); returns its index."""
        self.nodes.append((rule, args, _NO_PARAMS, ans, parents))
        return len(self.nodes) - 1

    def backward(self, roots, consume: bool = False) -> list:
        """Propagate cotangents from `roots` [(node index, output index, ct)] to every node.

        Returns the accumulator list; entries of leaf nodes hold the input cotangents
        (None where nothing flowed). `consume=True` frees each node once used (one call).
        """
        nodes = self.nodes
        acc: list = [None] * len(nodes)
        for idx, out, ct in roots:
            _accumulate(acc, nodes, idx, out, ct)
        start = max((r[0] for r in roots), default=-1)
        for i in range(start, -1, -1):
            g = acc[i]
            if g is None:
                continue
            prim, args, params, ans, parents = nodes[i]
            if prim is None:
                continue
            acc[i] = None
            if consume:
                nodes[i] = None
            if prim.multiple_results:
                g = tuple(Zero(a) if c is None else c for a, c in zip(ans, g))
            rules = prim.vjp_args
            if rules is not None:
                for pos, pidx, pout, shape, dtype in parents:
                    rule = rules[pos]
                    if rule is None:
                        continue
                    ct = rule(g, ans, *args, **params)
                    if ct is None:
                        continue
                    try:  # the fit is needed only where broadcasting or promotion happened
                        fits = ct.shape == shape and ct.dtype == dtype
                    except AttributeError:
                        fits = False
                    if not fits:
                        ct = _fit(ct, shape, dtype)
                    if pout < 0:  # inlined _accumulate: the common single-output case
                        prev = acc[pidx]
                        acc[pidx] = ct if prev is None else prev + ct
                    else:
                        _accumulate(acc, nodes, pidx, pout, ct)
            else:
                if getattr(prim, "hands_over", False):  # the rule frees them as it goes
                    g = [g]  # (a checkpointed loop: `custom.record_node(lean=True)`)
                cts = prim.vjp_all(g, ans, *args, **params)
                for pos, pidx, pout, shape, dtype in parents:
                    ct = cts[pos]
                    if ct is not None and not isinstance(ct, Zero):
                        _accumulate(acc, nodes, pidx, pout, _fit(ct, shape, dtype))
        return acc


def _accumulate(acc, nodes, idx, out, ct):
    if out < 0:
        prev = acc[idx]
        acc[idx] = ct if prev is None else prev + ct
        return
    slots = acc[idx]
    if slots is None:
        node = nodes[idx]
        if node is None:
            raise InternalError("cotangent reached a consumed tape node: a diffkit bug")
        slots = acc[idx] = [None] * len(node[3])
    slots[out] = ct if slots[out] is None else slots[out] + ct


class LiveBytesTrace(VJPTrace):
    """A VJP trace that also measures the peak bytes of the values it records that are alive
    at once (a weak reference on each), for planning a checkpointed loop from one step:
    the step's locals and temporaries, not only what its tape keeps."""

    __slots__ = ("live", "peak", "_refs")

    def __init__(self, transform: str = "vjp"):
        super().__init__(transform)
        self.live = self.peak = 0
        self._refs: list | None = []

    def process(self, prim, args, params):
        out = super().process(prim, args, params)
        for v in out if type(out) is tuple else (out,):
            self._track(v.primal if type(v) is VJPTracer else v)
        return out

    def _track(self, value) -> None:
        n = _data_nbytes(value) + _ARRAY_BYTES
        self.live += n
        self.peak = max(self.peak, self.live)
        if self._refs is not None:
            with contextlib.suppress(TypeError):  # no weak reference (a NumPy scalar): kept
                self._refs.append(weakref.ref(value, functools.partial(self._free, n)))

    def _free(self, n: int, _ref) -> None:
        self.live -= n

    def stop(self) -> int:
        """Stop measuring; the peak bytes of recorded values alive at once, plus the tape's
        own objects (the same bookkeeping `nbytes` counts)."""
        self._refs = None
        n = sum(1 for node in self.nodes if node is not None and node[0] is not None)
        return self.peak + _TAPE_BYTES + n * _NODE_BYTES


def _drop(refs: dict, obj) -> int:
    """Release one reference to a simulated cotangent; its bytes if that was the last."""
    if obj is None:
        return 0
    r = refs[obj]
    r[1] -= 1
    return r[0] if r[1] == 0 else 0


def _n_out(node) -> int:
    ans = node[3]
    return len(ans) if type(ans) is tuple else 0


def _array_nbytes(shape, dtype) -> int:
    n = getattr(dtype, "itemsize", 8)
    for d in shape:
        n *= d
    return n + _ARRAY_BYTES


def _data_nbytes(v) -> int:
    while isinstance(v, Tracer):
        v = v.primal
    return int(getattr(v, "nbytes", 0))


class _Like:
    """Shape and dtype of a primal, for fitting a cotangent without keeping the primal."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = shape
        self.dtype = dtype


def _fit(ct, shape, dtype):
    try:
        if ct.shape == shape and ct.dtype == dtype:
            return ct
    except AttributeError:
        pass
    return ops.fit_to(ct, _Like(tuple(shape), dtype))
