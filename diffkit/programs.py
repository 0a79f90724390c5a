"""`dk.make_program`: a function traced once into a program, printed like `jax.make_jaxpr`.

The same representation the compiled loop steps use (`diffkit.core.program`): one line per
primitive application over typed variables, with the guards the trace recorded (Python
decisions on traced values) in place. The result also runs: `prog(*args)` replays it on
new inputs of the same types, shapes and dtypes, with no tracer, raising `CompileError` if
a guard's outcome changed (a traced `if` that now goes the other way). Under a transform
(`dk.grad` of a function calling it) the replay binds every primitive, so it is
differentiated like the function itself.
"""

from __future__ import annotations

from collections.abc import Callable

from diffkit.core import pytree
from diffkit.core.program import GuardFailed, Program, ProgramTrace
from diffkit.core.program_passes import prune, ref
from diffkit.core.program_run import compile_program
from diffkit.core.tracer import Tracer
from diffkit.errors import CompileError

__all__ = ["make_program", "TracedProgram"]


class TracedProgram:
    """A traced function: `program` (printable), and a call that replays it."""

    def __init__(self, program: Program, in_tree, out_tree, name: str):
        self.program, self.in_tree, self.out_tree, self.name = program, in_tree, out_tree, name
        self._runs = {}  # whether inputs are traced -> the generated function

    def __str__(self) -> str:
        return str(self.program)

    __repr__ = __str__

    @property
    def equations(self) -> list:
        return self.program.eqns

    @property
    def guards(self) -> list:
        return self.program.guards

    def __call__(self, *args):
        flat, tree = pytree.flatten(args)
        if tree != self.in_tree:
            raise CompileError(f"the program of {self.name} was traced for arguments "
                               f"{self.in_tree!r}, got {tree!r}")
        traced = any(isinstance(x, Tracer) for x in flat)  # under a transform: every
        if traced not in self._runs:  # equation through `bind`, so it is differentiated
            self._runs[traced] = compile_program(self.program, through_bind=traced)
        try:
            out = self._runs[traced](*flat)
        except GuardFailed as e:
            guard = self.program.body[e.guard_index]
            raise CompileError(
                f"the program of {self.name} does not apply to these arguments: the trace "
                f"decided on a value ({guard.what}) that now comes out differently; call "
                f"make_program again on these arguments") from None
        return pytree.unflatten(self.out_tree, list(out))


def make_program(fun: Callable) -> Callable:
    """`make_program(f)(*args)`: trace `f` on `args` into a `TracedProgram` (print it to see
    one line per primitive application; call it to replay). Every array leaf of `args`
    (and every Python number) is an input; what `f` computes from none of them is a
    constant of the program.

    >>> import diffkit as dk, diffkit.numpy as dnp, numpy as np
    >>> print(dk.make_program(lambda x: dnp.sin(x) * 2.0)(np.ones(3)))
    { lambda v0:float64[3] .
        v1:float64[3] = sin(v0)
        v2:float64[3] = multiply(v1, 2.0)
      in (v2) }
    """
    name = getattr(fun, "__name__", "the function")

    def traced(*args) -> TracedProgram:
        flat, in_tree = pytree.flatten(args)
        trace = ProgramTrace("make_program")
        boxed = [trace.new(x) for x in flat]
        try:
            out = fun(*pytree.unflatten(in_tree, boxed))
        finally:
            trace.active = False
        flat_out, out_tree = pytree.flatten(out)
        outs = [ref(o) for o in flat_out]
        body = [trace.body[k] for k in prune(trace.body, outs)]
        return TracedProgram(Program([b.var for b in boxed], outs, body), in_tree, out_tree,
                             name)

    return traced
