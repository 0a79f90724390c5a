"""Fused elementwise kernels for NumPy compiled programs (`Backend.lower_program`).

A compiled step's program is mostly NumPy ufunc calls on arrays of one shape, each ~1 us on
512 elements and each allocating a temporary. `lower_program` finds maximal groups of such
equations (float64 or float32 arrays of one shape, 0-d values and Python-number constants,
plus `roll` read as a shifted index) and replaces each group by one equation whose kernel is
a numba loop over the elements computing only the group's values read outside it: values
used only inside the group are never materialized. A `sum` over all axes of such a value
joins its group as a 0-d result the loop accumulates (`_sum_block`: within 1e-13 of sum(|x|)
of np.sum for float64, n = 512^2; not bitwise: NumPy sums pairwise), so its summand is never
materialized either. An equation that cannot join a group but reads its values runs right after
the group's fused equation instead of ending the group (`_Lowering.defer`): a step's backward
with a scalar parameter's gradient is one loop. No fastmath: + - * / are bitwise NumPy's;
sin, exp, ... are libm's (within an ulp of NumPy's SIMD loops). numba is optional (extra
`diffkit[fast]`) and imported only here, when a program is lowered; kernels are cached in
this process by their source (never on disk), so a second gradient call compiles nothing.
A caller that says how often a program will run (`runs`) gets a kernel compiled only once
the runs counted for its source reach `HOT_RUNS`: until then its group stays unfused.
"""

from __future__ import annotations

import numpy as np

from diffkit.core.primitive import Primitive
from diffkit.core.program import Eqn, Guard, Lit, Program, Var

__all__ = ["lower_program", "available", "compilations", "FUSED"]

# a synthetic primitive naming fused equations; never registered, never bound: a fused
# equation exists only in a program run by its kernel (`compile_program`)
FUSED = Primitive("fused_elementwise", nondiff=True, multiple_results=True,
                  doc="A group of elementwise equations run as one numba loop.")

_BINARY = {np.add: "{0} + {1}", np.subtract: "{0} - {1}", np.multiply: "{0} * {1}",
           np.divide: "{0} / {1}", np.power: "{0} ** {1}",
           np.maximum: "{0} if ({0} >= {1} or {0} != {0}) else {1}",  # NaN propagates
           np.minimum: "{0} if ({0} <= {1} or {0} != {0}) else {1}"}
_UNARY = {np.negative: "-{0}", np.square: "{0} * {0}", np.absolute: "abs({0})"}
_UNARY.update({f: f"np.{f.__name__}({{0}})" for f in (
    np.sin, np.cos, np.tan, np.exp, np.log, np.tanh, np.sqrt, np.sinh, np.cosh, np.arctan,
    np.log1p, np.expm1)})
_NAMED = {"tanh_grad": "{0} * (ONE - {1} * {1})"}  # g * (1 - y*y): the NumPy kernel's order
_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_RECOMPUTE = 16  # a rolled in-group value is recomputed at the shifted index up to this
# many equations; a larger one ends the group (it is materialized, then rolled)
_MAX_NDIM = 4
_BLOCK = 256  # a fused sum's summands are buffered and summed this many at a time
HOT_RUNS = 20000  # compiling a kernel takes ~0.5-1 s; fusing saves ~30-50 us a 1-D step
# (forward and reverse, benchmarks/bench_compiled.py): it pays after ~20,000 steps

_runs: dict[str, int] = {}  # source -> runs counted toward compiling it

_kernels: dict[str, object] = {}  # generated source -> compiled numba dispatcher
_numba: list = []  # [the numba module, or None], on first use
_helpers: list = []  # [_sum_block compiled], on first use


def available() -> bool:
    """Whether numba can be imported (fusion needs it)."""
    if not _numba:
        try:
            import numba
        except ImportError:
            numba = None
        _numba.append(numba)
    return _numba[0] is not None


def compilations() -> int:
    """Kernels compiled in this process so far (each new group source compiles once)."""
    return len(_kernels)


def lower_program(program: Program, runs: int | None = None) -> Program:
    """`program` with each group of two or more fusible equations replaced by one fused
    equation. An equation that cannot join a group but reads its values is deferred: it runs
    right after the group's fused equation, and the group stays open until one of its later
    equations needs a deferred value (or a sum's), a guard (no equation moves across one) or
    the end. With `runs` (how many times the caller will run it), a group whose kernel is not
    compiled yet is fused only once the runs counted for it reach `HOT_RUNS`. Without numba,
    `program` itself."""
    if not available():
        return program
    body = _Lowering(program, runs).run()
    if len(body) == len(program.body):
        return program  # nothing fused: the same program (its caller may tell)
    return Program(program.ins, program.outs, body)


class _Lowering:
    """One pass over a program's body: the open groups (one per (shape, dtype)), the values
    their loops compute (`owner`), the values made only after a group's fused equation
    (`late`: its sums and its deferred equations' outputs), and the lowered body so far."""

    def __init__(self, program: Program, runs):
        self.program, self.runs = program, runs
        self.readers: dict[int, set] = {}
        for k, item in enumerate(program.body):
            for v in (item.var,) if type(item) is Guard else item.ins:
                if type(v) is Var:
                    self.readers.setdefault(v.n, set()).add(k)
        self.outs = {v.n for v in program.outs if type(v) is Var}
        self.body, self.groups, self.owner, self.late = [], {}, {}, {}

    def run(self) -> list:
        for k, item in enumerate(self.program.body):
            if type(item) is Guard:
                self.close(*self.groups.values())
                self.body.append(item)
                continue
            key = _fusible(item)
            if key is None:
                self.defer(item)
            else:
                self.join(k, item, key)
        self.close(*self.groups.values())
        return self.body

    def hit(self, item, maps) -> list:
        """The open groups whose values (in `maps`) `item` reads."""
        found = {}
        for v in item.ins:
            g = next((m[v.n] for m in maps if v.n in m), None) if type(v) is Var else None
            if g is not None:
                found[id(g)] = g
        return list(found.values())

    def join(self, k: int, item: Eqn, key) -> None:
        """Adds a fusible equation to its group, ending first each group whose late value
        it reads (its own included: a loop cannot read what is made after it)."""
        self.close(*self.hit(item, (self.late,)))
        g = self.groups.get(key)
        if g is not None and item.prim.name == "roll" and self.owner.get(item.ins[0].n) is g \
                and g.ancestors(self.program.body, item.ins[0].n) > _RECOMPUTE:
            self.close(g)
            g = None
        if g is None:
            g = self.groups[key] = _Group(key)
        g.members.append(k)
        made = self.late if item.prim.name == "sum" else self.owner
        for o in item.outs:
            g.index[o.n] = k
            made[o.n] = g

    def defer(self, item: Eqn) -> None:
        """Places a non-fusible equation: at once when it reads no open group's value, else
        after the fused equation of the last-extended group it reads (the others end now)."""
        hit = sorted(self.hit(item, (self.owner, self.late)), key=lambda g: g.members[-1])
        if not hit:
            self.body.append(item)
            return
        self.close(*hit[:-1])
        hit[-1].deferred.append(item)
        self.late.update((o.n, hit[-1]) for o in item.outs)

    def close(self, *groups) -> None:
        """Ends `groups` (in program order): each one's lowered equations, then its deferred
        ones, go to the body."""
        body = self.program.body
        for g in sorted(groups, key=lambda g: g.members[0]):
            del self.groups[g.key]
            for item in [body[k] for k in g.members] + g.deferred:
                for o in item.outs:
                    self.owner.pop(o.n, None)
                    self.late.pop(o.n, None)
            self.body.extend(g.lower(body, self.readers, self.outs, self.runs))
            self.body.extend(g.deferred)


def _fusible(eqn: Eqn):
    """The (shape, dtype) of the loop an equation can join, or None."""
    if len(eqn.outs) != 1:
        return None
    if eqn.prim.name == "sum":
        return _full_sum(eqn)
    o = eqn.outs[0]
    dt = o.dtype
    if not (isinstance(dt, np.dtype) and dt in _DTYPES and 1 <= len(o.shape) <= _MAX_NDIM
            and o.kind is np.ndarray and 0 not in o.shape):
        return None
    if eqn.prim.name == "roll":
        x = eqn.ins[0]
        ok = (type(x) is Var and x.shape == o.shape and x.kind is np.ndarray and x.dtype == dt
              and eqn.params.get("axis") is not None
              and all(type(s) is int for s in eqn.params["shift"]))
        return (o.shape, dt) if ok else None
    if _template(eqn) is None or eqn.params:
        return None
    if eqn.kernel is np.power and type(eqn.ins[1]) is not Lit:
        return None  # a constant exponent only
    for v in eqn.ins:
        if type(v) is Lit:
            if not _weak(v.value, dt):
                return None
        elif v.shape == ():
            if not (v.kind in (int, float) or v.dtype == dt):
                return None
        elif not (v.shape == o.shape and v.kind is np.ndarray and v.dtype == dt):
            return None
    return o.shape, dt


def _full_sum(eqn: Eqn):
    """The (shape, dtype) of a `sum` over all axes of a fusible array (a 0-d result of
    its dtype), or None: a sum over some axes is left unfused."""
    x, o, p = eqn.ins[0], eqn.outs[0], eqn.params
    if not (type(x) is Var and x.kind is np.ndarray and isinstance(x.dtype, np.dtype)
            and x.dtype in _DTYPES and 1 <= len(x.shape) <= _MAX_NDIM and 0 not in x.shape
            and o.shape == () and o.dtype == x.dtype and set(p) <= {"axis", "keepdims"}
            and not p.get("keepdims", False)):
        return None
    axis = p.get("axis")
    nd = len(x.shape)
    axes = range(nd) if axis is None else (axis,) if type(axis) is int else axis
    if not all(type(a) is int and -nd <= a < nd for a in axes) \
            or {a % nd for a in axes} != set(range(nd)):
        return None
    return x.shape, x.dtype


def _weak(value, dt) -> bool:
    """A constant that leaves the result's dtype `dt`: a Python number (NumPy's weak
    scalar), or a NumPy scalar or 0-d array of dtype `dt`."""
    if type(value) in (int, float):
        return True
    return getattr(value, "dtype", None) == dt and getattr(value, "shape", None) == ()


def _template(eqn: Eqn):
    k = eqn.kernel
    if k is None:
        return None
    if isinstance(k, np.ufunc):
        t = _BINARY.get(k) if k.nin == 2 else _UNARY.get(k)
        return t if k.nin == len(eqn.ins) else None
    return _NAMED.get(eqn.prim.name) if k is _named_kernel(eqn.prim.name) else None


def _named_kernel(name):
    from diffkit_numpy.elementwise import OWN

    return OWN.get(name)


class _Group:
    """An open group of fusible equations (body indices) of one (shape, dtype)."""

    def __init__(self, key):
        self.key, self.members, self.index = key, [], {}  # index: var number -> body index
        self.deferred: list[Eqn] = []  # equations placed right after the group's

    def ancestors(self, body, n: int) -> int:
        """How many of the group's equations the value numbered `n` depends on."""
        seen, todo = set(), [n]
        while todo:
            k = self.index.get(todo.pop())
            if k is not None and k not in seen:
                seen.add(k)
                todo += [v.n for v in body[k].ins if type(v) is Var]
        return len(seen)

    def lower(self, body, readers, outs, runs) -> list:
        """The group as body items: one fused equation, or its equations unchanged when
        fusing would not pay (a single equation, rolls alone, a kernel not yet hot) or
        numba refuses it."""
        eqns = [body[k] for k in self.members]
        if len(eqns) < 2 or all(e.prim.name == "roll" for e in eqns):
            return eqns
        mine = set(self.members)
        results = [o for e in eqns for o in e.outs
                   if o.n in outs or any(r not in mine for r in readers.get(o.n, ()))]
        if not results:
            return eqns
        ins, seen = [], set()
        for e in eqns:
            for v in e.ins:
                if type(v) is Var and v.n not in self.index and v.n not in seen:
                    seen.add(v.n)
                    ins.append(v)
        try:
            kernel = _build(self.key, eqns, ins, results, self.index, runs)
        except Exception:  # noqa: BLE001 - a group numba cannot compile runs unfused
            return eqns
        return eqns if kernel is None else [Eqn(FUSED, ins, {}, tuple(results), kernel)]


def _build(key, eqns, ins, results, index, runs):
    """The Python function running one group (allocates the results, calls the kernel), or
    None while its kernel is not compiled and its runs stay below `HOT_RUNS`."""
    shape, dt = key
    src = _Source(shape, dt, eqns, ins, index).text(results)
    disp = _kernels.get(src)
    if disp is None and runs is not None:
        _runs[src] = _runs.get(src, 0) + runs
        if _runs[src] < HOT_RUNS:
            return None
    n_sum = sum(1 for v in results if v.shape == ())  # a 0-d result is a sum's
    if disp is None:
        disp = _kernels[src] = _compile(src, shape, dt, ins, len(results) - n_sum, n_sum)
    names = [f"x{k}" for k in range(len(ins))]
    call = [f"F({x})" if v.shape == () else x for x, v in zip(names, ins, strict=True)]
    cont = [a if v.shape == () else f"C({a})" for a, v in zip(call, ins, strict=True)]
    arrays = [f"o{k}" for k in range(len(results) - n_sum)]
    outs = arrays + ["A"] * (n_sum > 0)  # A: the sums, accumulated in float64
    a, j = iter(arrays), iter(range(n_sum))
    res = [f"F(A[{next(j)}])" if v.shape == () else next(a) for v in results]  # np.sum's type
    lines = [f"def fused({', '.join(names)}):"]
    lines += [f"    {o} = E(S, D)" for o in arrays] + [f"    A = E({n_sum}, W)"] * (n_sum > 0)
    lines += [f"    try:\n        K({', '.join(call + outs)})",
              f"    except TypeError:  # a non-contiguous input: the kernel reads C order\n"
              f"        K({', '.join(cont + outs)})",
              f"    return ({', '.join(res)},)"]
    env = {"E": np.empty, "S": shape, "D": dt, "F": dt.type, "C": np.ascontiguousarray,
           "K": disp, "W": np.float64}
    exec(compile("\n".join(lines) + "\n", "<diffkit fused>", "exec"), env)  # noqa: S102
    fused = env.pop("fused")
    fused.source = src
    return fused


def _compile(src, shape, dt, ins, n_out, n_sum):
    numba = _numba[0]
    t = numba.from_dtype(dt)
    nd = len(shape)
    arg = lambda v: t if v.shape == () else numba.types.Array(t, nd, "C", readonly=True)  # noqa: E731
    sig = numba.types.void(*[arg(v) for v in ins],
                           *[numba.types.Array(t, nd, "C")] * n_out,
                           *[numba.types.Array(numba.float64, 1, "C")] * (n_sum > 0))
    if not _helpers:
        _helpers.append(numba.njit(nogil=True, cache=False)(_sum_block))
    env = {"np": np, "BS": _helpers[0]}
    exec(compile(src, "<diffkit fused kernel>", "exec"), env)  # noqa: S102 - from a program
    return numba.njit(sig, error_model="numpy", nogil=True, cache=False)(env["kernel"])


def _sum_block(b, m, s, e):
    """(s, e) after adding the sum of b[:m]: 8 running sums (NumPy's pairwise leaf), then
    Neumaier's compensated step. Over blocks of <= `_BLOCK` summands, the total is within
    ~32 ulp of sum(|x|) of the exact sum whatever n (NumPy's pairwise: ~(16 + log2(n / 128))
    ulp); tests hold it to 1e-13 of sum(|x|) against np.sum at n = 512^2."""
    r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = 0.0
    k = 0
    while k + 8 <= m:
        r0 += b[k]
        r1 += b[k + 1]
        r2 += b[k + 2]
        r3 += b[k + 3]
        r4 += b[k + 4]
        r5 += b[k + 5]
        r6 += b[k + 6]
        r7 += b[k + 7]
        k += 8
    t = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while k < m:
        t += b[k]
        k += 1
    u = s + t
    return u, e + ((s - u) + t if abs(s) >= abs(t) else (t - u) + s)


class _Source:
    """The numba source of one group: nested loops over `shape`, each result computed from
    the inputs at the loop index; a roll reads its operand at a shifted index (an operand
    computed in the group is recomputed there)."""

    def __init__(self, shape, dt, eqns, ins, index):
        self.shape, self.dt, self.index = shape, dt, index
        self.eqn = {o.n: e for e in eqns for o in e.outs}
        self.arg = {v.n: k for k, v in enumerate(ins)}
        self.scalar = {v.n for v in ins if v.shape == ()}
        self.consts: dict = {}  # (type, value) -> name
        self.lines: list[str] = []
        self.memo: dict = {}  # (var number, shifts) -> name
        self.shifted: dict = {}  # (axis, shift) -> index name, defined at its loop level

    def text(self, results) -> str:
        nd = len(self.shape)
        zero = (0,) * nd
        stores, sums = [], []
        for v in results:  # a 0-d result is a sum: its summand read at the loop index
            if v.shape == ():
                sums.append(self._value(self.eqn[v.n].ins[0], zero))
            else:
                stores.append(f"o{len(stores)}[{self._idx(zero)}] = {self._value(v, zero)}")
        args = [f"x{k}" for k in range(len(self.arg))] + [f"o{k}" for k in range(len(stores))]
        out = [f"def kernel({', '.join(args + ['acc'] * bool(sums))}):  # {self.dt.name}"]
        out += [f"    {name} = np.{self.dt.name}(float({str(float(value))!r}))"
                for (_, value), name in self.consts.items()]  # float('inf') included
        n = self.shape[-1]
        out += [f"    s{j} = 0.0\n    e{j} = 0.0\n    w{j} = np.empty({min(n, _BLOCK)}, np.float64)"
                for j in range(len(sums))]
        blocks = bool(sums) and n > _BLOCK  # the innermost loop in blocks: buffers stay small
        pad = self._loops(out, blocks)
        k = f"i{nd - 1} - b" if blocks else f"i{nd - 1}"
        out += [pad + line for line in self.lines + stores]
        out += [f"{pad}w{j}[{k}] = {t}" for j, t in enumerate(sums)]  # keeps the loop SIMD
        m = "m" if blocks else str(n)
        out += [f"{pad[4:]}s{j}, e{j} = BS(w{j}, {m}, s{j}, e{j})" for j in range(len(sums))]
        out += [f"    acc[{j}] = s{j} + e{j} if np.isfinite(s{j}) else s{j}"  # inf, nan: as is
                for j in range(len(sums))]
        return "\n".join(out) + "\n"

    def _loops(self, out: list, blocks: bool) -> str:
        """Appends the nested loop headers (the innermost one over blocks of `_BLOCK` with
        `blocks`) and the shifted indices; returns the loop body's indentation."""
        pad = "    "
        for a, n in enumerate(self.shape):
            if blocks and a == len(self.shape) - 1:
                out += [f"{pad}for b in range(0, {n}, {_BLOCK}):",
                        f"{pad}    m = min({_BLOCK}, {n} - b)",
                        f"{pad}    for i{a} in range(b, b + m):"]
                pad += "    "
            else:
                out.append(f"{pad}for i{a} in range({n}):")
            pad += "    "
            for (ax, s), name in sorted(self.shifted.items()):
                if ax == a:
                    out.append(f"{pad}{name} = i{a} + {n - s} if i{a} < {s} else i{a} - {s}")
        return pad

    def _idx(self, shifts) -> str:
        parts = []
        for a, s in enumerate(shifts):
            if s:
                parts.append(self.shifted.setdefault((a, s), f"j{a}_{s}"))
            else:
                parts.append(f"i{a}")
        return ", ".join(parts)

    def _const(self, value) -> str:
        key = (type(value), value.item() if hasattr(value, "item") else value)
        return self.consts.setdefault(key, f"c{len(self.consts)}")

    def _value(self, v, shifts) -> str:
        """The name of variable `v` read at the loop index shifted by `shifts`."""
        if type(v) is Lit:
            return self._const(v.value)
        if v.n in self.scalar:
            return f"x{self.arg[v.n]}"
        key = (v.n, shifts)
        name = self.memo.get(key)
        if name is not None:
            return name
        e = self.eqn.get(v.n)
        if e is None:
            expr = f"x{self.arg[v.n]}[{self._idx(shifts)}]"
        elif e.prim.name == "roll":
            shifts = list(shifts)
            for s, ax in zip(e.params["shift"], e.params["axis"], strict=True):
                shifts[ax] = (shifts[ax] + s) % self.shape[ax]
            name = self.memo[key] = self._value(e.ins[0], tuple(shifts))
            return name
        else:
            args = [self._value(a, shifts) for a in e.ins]
            expr = _template(e).format(*args)
            if "ONE" in expr:
                expr = expr.replace("ONE", self._const(1))
        name = self.memo[key] = f"t{len(self.memo)}"
        self.lines.append(f"{name} = {expr}")
        return name
