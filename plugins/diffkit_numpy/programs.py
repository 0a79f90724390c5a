"""Preallocated outputs for compiled programs on NumPy (`Backend.program_buffers`).

A large array freshly allocated by a kernel costs page faults (glibc maps it anew), which on
a 2-D step of 512^2 doubles the time of its arithmetic. A program's temporaries die within
the program, so a ufunc may write them into buffers kept from one step to the next. A value
gets a buffer only when nothing can keep a view of it: a ufunc makes it, only ufuncs (or
guards) read it, and it is not an output of the program; a buffer is reused by a later
value only after its last reader (liveness), and never by that reader's own output.
"""

from __future__ import annotations

import numpy as np

from diffkit.core.program import Eqn, Guard, Var
from diffkit.core.program_passes import last_uses

__all__ = ["program_buffers", "stand_in", "MIN_BYTES"]

MIN_BYTES = 1 << 16  # smaller arrays come from NumPy's and malloc's caches anyway


def stand_in(x):
    """`x`'s shape and dtype in no memory: a read-only broadcast of a copy of its first
    element (`Backend.stand_in`, for tracing a step's shapes only)."""
    if getattr(x, "size", 1) <= 1:
        return x
    return np.broadcast_to(x.reshape(-1)[0].copy(), x.shape)


def _buffer(pool: dict, key, slot: int):
    """Buffer `slot` of shape and dtype `key` in `pool` ({key: [arrays]}), made on first use.
    The programs of one compiled loop step share a pool: they never run at the same time."""
    row = pool.setdefault(key, [])
    while len(row) <= slot:
        row.append(np.empty(key[0], dtype=key[1]))
    return row[slot]


def _ufunc(eqn) -> bool:
    k = eqn.kernel
    return isinstance(k, np.ufunc) and k.nout == 1


def program_buffers(program, pool: dict) -> dict:
    """{equation index: buffer} for the equations whose output may live in `pool`."""
    outputs = {v.n for v in program.outs if type(v) is Var}
    readers_ok: dict[int, bool] = {}
    for item in program.body:
        reads = (item.var,) if type(item) is Guard else item.ins
        ok = type(item) is Guard or _ufunc(item)
        for v in reads:
            if type(v) is Var:
                readers_ok[v.n] = readers_ok.get(v.n, True) and ok
    chosen, free, count, held = {}, {}, {}, {}  # held: var number -> (key, slot)
    for k, (item, dead) in enumerate(zip(program.body, last_uses(program), strict=True)):
        if type(item) is Eqn and _ufunc(item) and len(item.outs) == 1:
            o = item.outs[0]
            if (o.n not in outputs and readers_ok.get(o.n, False) and o.shape
                    and o.nbytes >= MIN_BYTES and isinstance(o.dtype, np.dtype)):
                key = (o.shape, o.dtype)
                if free.get(key):
                    slot = free[key].pop()
                else:
                    slot = count.get(key, 0)
                    count[key] = slot + 1
                held[o.n] = (key, slot)
                chosen[k] = _buffer(pool, key, slot)
        for v in dead:  # after the output is placed: never the output of one of its readers
            if v.n in held:
                key, slot = held.pop(v.n)
                free.setdefault(key, []).append(slot)
    return chosen
