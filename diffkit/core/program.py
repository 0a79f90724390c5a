"""Programs: a function traced once into a straight-line list of primitive applications.

Tracing runs the function on example values with a `ProgramTrace`, which computes every
value as usual and records one equation per primitive call: the primitive, its inputs
(variables or constants), its static parameters and its output variables, each variable
typed by the example's shape, dtype and array type. A Python decision taken on a traced
value (`if x > 0:`, an integer value used as an index or a size) is recorded as a *guard*:
the program is valid only while the guard's outcome is the same, which replay checks.
Conversions that would bake a float value into the program (`float(x)`) stop tracing
(`NotProgrammable`): the caller falls back to running the function itself.

A trace may also follow shapes only (`ProgramTrace.stand_in`): inputs marked unknown hold a
zero-memory stand-in of their shape and dtype, and every value computed from one is unknown
too, so tracing holds one kernel's output at a time (a compiled loop step is traced so
first). A Python decision on an unknown value, or a result whose shape values decide,
cannot be recorded (`NeedsValues`): the caller traces with values instead.
"""

from __future__ import annotations

from diffkit.core.dispatch import SCALAR_TYPES, is_inexact
from diffkit.core.residuals import keep_plan
from diffkit.core.tracer import Trace, Tracer
from diffkit.errors import CompileError

__all__ = [
    "Var", "Lit", "Eqn", "Guard", "Program", "ProgramTrace", "ProgramTracer",
    "NotProgrammable", "NeedsValues", "GuardFailed", "refuse_inside",
]


class NotProgrammable(CompileError):
    """A traced function did something a program cannot replay (the message says what)."""


class NeedsValues(NotProgrammable):
    """A shapes-only trace met a use of a value it does not know (a Python decision on it,
    a result whose shape its values decide)."""


def refuse_inside(top, what: str) -> None:
    """Refuse, while tracing a program, an operation a program cannot hold (a custom rule,
    a checkpointed loop): the caller then runs the function itself."""
    if isinstance(top, ProgramTrace):
        raise NotProgrammable(f"{what} is called inside it (a program holds primitives only)")


class GuardFailed(Exception):
    """A replayed program met a guard whose outcome differs from the traced one."""

    def __init__(self, guard_index: int):
        super().__init__(guard_index)
        self.guard_index = guard_index


class Var:
    """A typed variable of a program: shape, dtype and array type of its example value."""

    __slots__ = ("n", "shape", "dtype", "kind", "nbytes")

    def __init__(self, n: int, value):
        base = value
        while isinstance(base, Tracer):
            base = base.primal
        self.n = n
        self.shape = tuple(getattr(base, "shape", ()))
        self.dtype = getattr(base, "dtype", type(base).__name__)
        self.kind = type(base)
        self.nbytes = int(getattr(base, "nbytes", 8))

    def __repr__(self):
        return f"v{self.n}"

    def describe(self) -> str:
        dt = str(self.dtype).removeprefix("torch.")
        return f"{dt}[{','.join(map(str, self.shape))}]"


class Lit:
    """A constant input of an equation (a Python number, or an array made without inputs)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        v = self.value
        if type(v) in SCALAR_TYPES:
            return repr(v)
        shape = getattr(v, "shape", None)
        return f"const{list(shape)}" if shape is not None else f"const<{type(v).__name__}>"


class Eqn:
    """`outs = prim(*ins, **params)`; `kernel` is the kernel the trace ran (None: dispatch
    again at replay)."""

    __slots__ = ("prim", "ins", "params", "outs", "kernel")

    def __init__(self, prim, ins, params, outs, kernel):
        self.prim, self.ins, self.params, self.outs, self.kernel = prim, ins, params, outs, kernel

    def __repr__(self):
        outs = ", ".join(f"{o}:{o.describe()}" for o in self.outs)
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{outs} = {self.prim.name}({', '.join(map(repr, self.ins))}{params})"


class Guard:
    """`var`'s outcome under `kind` ("bool": bool(x); "value": x.tolist(); "shape":
    tuple(x.shape), for a value whose shape its inputs' values decide) must equal
    `expected` for the program to apply; `what` says which Python operation made it."""

    __slots__ = ("var", "kind", "expected", "what")

    def __init__(self, var, kind, expected, what):
        self.var, self.kind, self.expected, self.what = var, kind, expected, what

    def __repr__(self):
        return f"guard {self.what}({self.var}) == {self.expected!r}"


class Program:
    """A straight-line program: `outs = f(*ins)` as equations and guards in order."""

    __slots__ = ("ins", "outs", "body")

    def __init__(self, ins, outs, body):
        self.ins, self.outs, self.body = list(ins), list(outs), list(body)

    @property
    def eqns(self) -> list:
        return [e for e in self.body if isinstance(e, Eqn)]

    @property
    def guards(self) -> list:
        return [e for e in self.body if isinstance(e, Guard)]

    def __str__(self):
        ins = ", ".join(f"{v}:{v.describe()}" for v in self.ins)
        lines = [f"{{ lambda {ins} ."]
        lines += [f"    {e!r}" for e in self.body]
        lines.append(f"  in ({', '.join(map(repr, self.outs))}) }}")
        return "\n".join(lines)

    __repr__ = __str__


class ProgramTracer(Tracer):
    """A value of a program trace: its example value (`primal`) and its variable."""

    __slots__ = ("_trace", "primal", "var")

    def __init__(self, trace, primal, var):
        self._trace, self.primal, self.var = trace, primal, var

    def __repr__(self):
        return f"ProgramTracer({self.var}, {self.primal!r})"

    def _mine(self) -> bool:
        return self._trace.active

    _records_values = property(_mine)

    def __bool__(self):
        if self._mine():
            self._trace.known(self, "bool(x)")
        value = bool(self._base())
        if self._mine():
            self._trace.guard(self, "bool", value, "bool")
        return value

    def _value_guard(self, what: str):
        """The Python value of an integer or boolean tracer, guarded; a float's refused."""
        if self._mine():
            self._trace.known(self, what)
            if is_inexact(self):
                raise NotProgrammable(
                    f"{what} turns a traced floating-point value into Python data, which a "
                    f"program would freeze at its traced value")
            value = self._base().tolist()
            self._trace.guard(self, "value", value, what)
            return value
        return self._base().tolist()

    __int__ = lambda self: int(self._value_guard("int(x)"))
    __index__ = lambda self: int(self._value_guard("x used as an index or a size"))
    __float__ = lambda self: float(self._value_guard("float(x)"))
    __complex__ = lambda self: complex(self._value_guard("complex(x)"))
    item = lambda self, *args: self._value_guard("x.item()")
    tolist = lambda self: self._value_guard("x.tolist()")

    def __hash__(self):  # an integer (a step index) hashes by value, as a Python int does
        if not is_inexact(self) and not self.shape:
            return hash(self._value_guard("hash(x)"))
        return id(self)

    def __format__(self, spec):  # integers only: a float printed is a side effect, not data
        if self._mine():
            self._trace.known(self, "formatting x")
        if not is_inexact(self):
            return format(self._value_guard("str(x)"), spec)
        return format(self._base(), spec) if spec else str(self._base())

    __str__ = lambda self: self.__format__("")


class ProgramTrace(Trace):
    """Runs primitives on example values and records an equation per call.

    With `diff` (the numbers of the variables to differentiate with respect to), it also
    tracks which variables depend on them and keeps, of each call, the values its VJP rules
    read (`keep`, as a reverse tape would: `core.residuals`) for `program_vjp.transpose`;
    everything else is freed when the traced function drops it.
    """

    __slots__ = ("body", "count", "diff", "keep", "unknown", "stand_in")

    def __init__(self, transform: str = "make_program", stand_in=None):
        super().__init__(transform)
        self.body: list = []
        self.count = 0
        self.diff: set[int] | None = None
        self.keep: dict[int, ProgramTracer] = {}  # var number -> tracer a VJP rule reads
        self.unknown: set[int] = set()  # numbers of the variables traced by shape only
        self.stand_in = stand_in  # value -> zero-memory stand-in (`Backend.stand_in`)

    def new(self, value, unknown: bool = False) -> ProgramTracer:
        """A tracer of `value`, as a new variable; `unknown`: `value` is a stand-in."""
        var = Var(self.count, value)
        self.count += 1
        if unknown:
            self.unknown.add(var.n)
        return ProgramTracer(self, value, var)

    def known(self, tracer: ProgramTracer, what: str) -> None:
        """Refuse `what` (a use of the value) on a variable traced by shape only."""
        if tracer.var.n in self.unknown:
            raise NeedsValues(f"{what} needs a value that tracing by shapes does not compute")

    def transient(self, nbytes: int) -> None:
        """A kernel made `nbytes` that a shapes-only trace drops at once (measured traces)."""

    def differentiate(self, tracers) -> None:
        """Track dependence on `tracers` and keep what their VJP rules will read."""
        self.diff = {t.var.n for t in tracers}
        self.keep.update((t.var.n, t) for t in tracers)

    def guard(self, tracer: ProgramTracer, kind: str, expected, what: str) -> None:
        self.body.append(Guard(tracer.var, kind, expected, what))

    def process(self, prim, args, params):
        primals = list(args)
        ins = []
        mask = 0  # which arguments depend on a differentiated input
        lower = False  # tracers of outer transforms remain among the primals
        diff = self.diff
        for i, a in enumerate(args):
            if type(a) is ProgramTracer and a._trace is self:
                p = primals[i] = a.primal
                ins.append(a.var)
                lower = lower or isinstance(p, Tracer)
                if diff is not None and a.var.n in diff:
                    mask |= 1 << i
            else:
                ins.append(Lit(a))
                lower = lower or isinstance(a, Tracer)
        unknown = bool(self.unknown) and any(type(v) is Var and v.n in self.unknown for v in ins)
        if unknown:
            ans = self._shapes_only(prim, primals, params)
        else:
            ans = prim.bind(*primals, **params) if lower else prim.impl(primals, params)
        kernel = None if lower else _kernel_of(prim, primals)
        outs = tuple(self.new(a, unknown) for a in ans) if prim.multiple_results else \
            (self.new(ans, unknown),)
        self.body.append(Eqn(prim, ins, dict(params), tuple(o.var for o in outs), kernel))
        if _value_shaped(prim, primals):
            for o in outs:  # a replay on other values makes another shape: a new program
                self.body.append(Guard(o.var, "shape", o.var.shape, f"shape of {prim.name}"))
        if mask and not prim.nondiff:
            self._keep(prim, args, outs, mask)
        return outs if prim.multiple_results else outs[0]

    def _shapes_only(self, prim, primals, params):
        """`prim` on stand-ins: its results as stand-ins, their memory freed at once."""
        if _value_shaped(prim, primals):
            raise NeedsValues(f"the shape of {prim.name}'s result depends on values that "
                              f"tracing by shapes does not compute")
        ans = prim.impl(primals, params)
        many = ans if prim.multiple_results else (ans,)
        self.transient(sum(int(getattr(a, "nbytes", 0)) for a in many))
        stand = [self.stand_in(a) for a in many]
        return stand if prim.multiple_results else stand[0]

    def _keep(self, prim, args, outs, mask) -> None:
        keep_args, keep_ans = prim.keep.get(mask) or keep_plan(prim, mask, len(args))
        self.diff.update(o.var.n for o in outs)
        for a, k in zip(args, (keep_args,) * len(args) if type(keep_args) is bool
                        else keep_args, strict=True):
            if k and type(a) is ProgramTracer:
                self.keep[a.var.n] = a
        if keep_ans:
            self.keep.update((o.var.n, o) for o in outs)


def _value_shaped(prim, primals) -> bool:
    """Whether this call's results have shapes that its arguments' values decide."""
    shaped = prim.value_shaped
    return bool(shaped) and (shaped is True or shaped(primals))


def _kernel_of(prim, primals):
    """The kernel `prim.impl` used for these argument types, if one serves them all."""
    kernel = None
    for a in primals:
        t = type(a)
        if t in SCALAR_TYPES:
            continue
        k = prim.kernels.get(t)
        if k is None or (kernel is not None and k is not kernel):
            return None
        kernel = k
    return kernel
