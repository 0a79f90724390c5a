"""Whether compiled loop steps fuse their elementwise chains (`Backend.lower_program`).

Fusing (NumPy: numba loops, plugins/diffkit_numpy/fusion.py) makes a replayed step several
times faster but compiles each new kernel once per process (~0.5-1 s), so "auto" fuses only
where that pays: an offline loop tells the backend its length, and a kernel is compiled
once the steps run with it in this process (over every call: an optimizer's iterations)
reach the backend's threshold (NumPy: 20,000), or at once when the loop's budget needs the
fused programs' smaller working set (`CompiledStep.fuse_for_memory`); a while_loop, whose
length is unknown, fuses only with True, which compiles every kernel at once.
"""

from __future__ import annotations

import importlib.util
import os

from diffkit.checkpoint.setting import ModeSetting, mode_of
from diffkit.errors import CompileError

__all__ = ["fuse_steps", "plan"]

def _numba() -> bool:
    try:  # (a module blocked with sys.modules["numba"] = None raises ValueError)
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        return False


def _parse(mode, where: str, need: bool = True):
    mode = mode_of(mode, where, "fusion")
    if mode is True and need and not _numba():
        raise CompileError(f"{where}: fusing compiled steps needs numba, which is not "
                           f"installed: pip install 'diffkit[fast]' (or pass 'auto')")
    return mode


# from the environment, True without numba runs unfused (the backend's lowering needs it)
_default = [_parse(os.environ.get("DIFFKIT_FUSE", "auto"), "$DIFFKIT_FUSE", need=False)]


def plan(n_steps: int | None, for_memory: bool = False) -> tuple[bool, int | None]:
    """For a compiled step of a loop of `n_steps` steps (None: a while_loop): (whether to
    lower its programs, the runs to count toward compiling kernels; None: compile now).
    `for_memory`: the loop's budget needs the fused programs' smaller working set, so
    'auto' fuses now, whatever the length."""
    mode = _default[0]
    if mode == "auto":
        if for_memory:
            return _numba(), None
        return n_steps is not None and _numba(), n_steps
    return mode, None


class fuse_steps(ModeSetting):  # noqa: N801 - a function and a with-block, a setting
    """Set whether compiled loop steps fuse elementwise chains into one compiled loop
    (NumPy backend, needs numba: ``pip install 'diffkit[fast]'``): 'auto' (the default;
    also `$DIFFKIT_FUSE`) fuses a loop's kernels once the steps run with them in this
    process reach 20,000 (compiling one takes ~1 s), True every compiled loop at once
    (while_loop included), False none. Results equal the unfused programs' (to an ulp
    for sin, exp, ...). As a call it sets the default; in a `with` block, for the block.

    >>> import diffkit as dk
    >>> with dk.checkpoint.fuse_steps(False):
    ...     pass  # compiled steps here run one NumPy call per equation
    """

    _default, _parse = _default, staticmethod(_parse)
