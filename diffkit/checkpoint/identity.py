"""What a resumable run must match to be resumed: digests of the step's code, of the inputs'
shapes, dtypes and values, and of the budget and plan (`resume.Run` compares them).

The code digest covers the step's bytecode and constants (nested functions included), its
defaults, what its closure holds, and the globals it names: numbers, strings, tuples and
arrays by value, functions of the same module by their own code (recursively, a few levels
deep), so an edited step or helper, or a changed global constant, reads as a different
program. Mutable containers (lists, dicts: a step's counters or logs) count by type only.
"""

from __future__ import annotations

import functools
import hashlib
import re
import types

import numpy as np

from diffkit.core import pytree
from diffkit.core.tracer import Tracer

__all__ = ["code_digest", "leaf_digests", "run_name"]

_DEPTH = 4  # functions followed through closures and globals
_ITEMS = 64  # elements of a tuple hashed one by one


def code_digest(fn) -> str:
    """SHA-256 of a callable's code and of what it reads (see the module docstring)."""
    h = hashlib.sha256()
    _callable(h, fn, set(), 0)
    return h.hexdigest()


def _callable(h, fn, seen: set, depth: int) -> None:
    if id(fn) in seen or depth > _DEPTH:
        h.update(b"<seen>")
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        _callable(h, fn.func, seen, depth + 1)
        _value(h, (fn.args, fn.keywords), seen, depth)
        return
    func = getattr(fn, "__func__", fn)  # a bound method: its function
    code = getattr(func, "__code__", None)
    if code is None:  # a callable object: its class's __call__ and its attributes
        h.update(_qualname(type(fn)).encode())
        call = next((vars(c)["__call__"] for c in type(fn).__mro__ if "__call__" in vars(c)),
                    None)
        if getattr(call, "__code__", None) is not None:
            _callable(h, call, seen, depth + 1)
            _value(h, getattr(fn, "__dict__", None), seen, depth)
        return
    _code(h, code)
    _value(h, (func.__defaults__, func.__kwdefaults__), seen, depth)
    for cell in func.__closure__ or ():
        try:
            _value(h, cell.cell_contents, seen, depth)
        except ValueError:  # an empty cell
            h.update(b"<empty>")
    module = getattr(func, "__module__", None)
    for name in sorted(_names(code)):
        if name in func.__globals__:
            v = func.__globals__[name]
            h.update(name.encode())
            if isinstance(v, types.FunctionType) and v.__module__ != module:
                h.update(_qualname(v).encode())  # a library function: by name
            else:
                _value(h, v, seen, depth)


def _code(h, code) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code(h, c)
        else:
            h.update(repr(c).encode())


def _names(code) -> set[str]:
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def _value(h, v, seen: set, depth: int) -> None:
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        h.update(repr(v).encode())
    elif callable(v) and not isinstance(v, type) and (
            hasattr(v, "__code__") or isinstance(v, functools.partial)
            or hasattr(v, "__func__")):
        _callable(h, v, seen, depth + 1)
    elif type(v) is tuple:
        h.update(f"tuple{len(v)}".encode())
        for x in v[:_ITEMS]:
            _value(h, x, seen, depth)
    elif isinstance(v, types.ModuleType):
        h.update(v.__name__.encode())
    elif _is_array(v):
        h.update(_array_digest(v).encode())
    else:  # classes, mutable containers (a step's counters, logs) and other objects: by type
        h.update(_qualname(v if isinstance(v, type) else type(v)).encode())


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


def _is_array(x) -> bool:
    """A NumPy array or scalar, or an array of a registered backend (not a tracer)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return True
    from diffkit.plugins import registry

    return not isinstance(x, (Tracer, type)) and registry().backend_of(type(x)) is not None


def _array_digest(x) -> str:
    """'shape dtype sha256-prefix' of an array of any backend (a NumPy copy for others)."""
    from diffkit.plugins import registry

    b = registry().backend_of(type(x))
    a = np.asarray(b.to_numpy(x) if b is not None else x)
    raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    values = f" = {a.tolist()}" if a.size <= 4 else ""  # small ones readable in a message
    return f"{a.shape} {x.dtype}{values} sha256 {hashlib.sha256(raw).hexdigest()[:16]}"


def leaf_digests(tree, root: str) -> dict[str, str]:
    """Each leaf of a pytree by its path (``args[1]``): shape, dtype and a digest of its
    values (tracers by their primal)."""
    from diffkit.checkpoint.stepcheck import leaf_paths

    leaves, td = pytree.flatten(tree)
    out = {}
    for path, x in zip(leaf_paths(td, root), leaves, strict=True):
        while isinstance(x, Tracer):
            x = x.primal
        out[path] = _array_digest(x) if _is_array(x) else f"{type(x).__name__} {x!r}"
    return out


def run_name(step) -> str:
    """The default run id of `resume=True`: the step's module and qualified name."""
    fn = step.func if isinstance(step, functools.partial) else step
    fn = getattr(fn, "__func__", fn)
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "step"
    if len(clean) > 80:
        clean = clean[:70] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return clean
