"""Running a program without the tracer: one generated Python function per program.

The function calls each equation's kernel directly (the one the trace ran: no dispatch,
no tracer objects, no tape), deletes every variable after its last use, and checks each
guard where the trace recorded it (raising `GuardFailed`). An equation the trace could not
give one kernel (values of an outer transform, such as a JVP over a loop's gradient, or
arguments of two backends) goes through `Primitive.bind`, so every transform still
applies: the program still saves re-running the Python of the function.
"""

from __future__ import annotations

from diffkit.core.program import Eqn, GuardFailed, Program, Var
from diffkit.core.program_passes import last_uses

__all__ = ["compile_program"]


def compile_program(program: Program, through_bind: bool = False, buffers=None):
    """A Python function `run(*inputs) -> tuple of outputs` executing `program`; with
    `through_bind`, every equation goes through `Primitive.bind` (inputs of outer traces).
    `buffers` ({equation index: array}, from a backend's `program_buffers`) are preallocated
    outputs: that equation's kernel is called with `out=` the array."""
    env: dict[str, object] = {"GuardFailed": GuardFailed}
    buffers = {} if through_bind or buffers is None else buffers
    names: dict[int, str] = {}
    lines = []

    def name(v) -> str:
        if type(v) is Var:
            return names[v.n]
        key = f"c{len(env)}"
        env[key] = v.value
        return key

    for k, v in enumerate(program.ins):
        names.setdefault(v.n, f"a{k}")
    args = ", ".join(f"a{k}" for k in range(len(program.ins)))  # a repeated input: first wins
    for k, (item, dead) in enumerate(zip(program.body, last_uses(program), strict=True)):
        if type(item) is Eqn:
            fn = f"k{k}"
            env[fn] = item.prim.bind if through_bind else item.kernel or item.prim.bind
            call_args = ", ".join(name(v) for v in item.ins)
            if item.params:
                env[f"p{k}"] = item.params
                call_args += (", " if call_args else "") + f"**p{k}"
            if k in buffers:
                env[f"b{k}"] = buffers[k]
                call_args += f", out=b{k}"
            for o in item.outs:
                names[o.n] = f"v{o.n}"
            if item.prim.multiple_results:
                outs = ", ".join(names[o.n] for o in item.outs)
                lines.append(f"    ({outs},) = {fn}({call_args})")
            else:
                lines.append(f"    {names[item.outs[0].n]} = {fn}({call_args})")
        else:
            x = names[item.var.n]
            env[f"e{k}"] = item.expected
            test = {"bool": f"bool({x}) is not e{k}", "value": f"{x}.tolist() != e{k}",
                    "shape": f"tuple({x}.shape) != e{k}"}[item.kind]
            lines.append(f"    if {test}:\n        raise GuardFailed({k})")
        gone = [names[v.n] for v in dead if v.n in names]
        if gone:
            lines.append(f"    del {', '.join(gone)}")
    outs = ", ".join(name(v) for v in program.outs)
    lines.append(f"    return ({outs}{',' if len(program.outs) == 1 else ''})")
    src = f"def run({args}):\n" + "\n".join(lines) + "\n"
    exec(compile(src, "<diffkit program>", "exec"), env)  # noqa: S102 - generated from a trace
    run = env.pop("run")  # not in its own globals: no cycle keeps the buffers once dropped
    run.source = src
    return run

