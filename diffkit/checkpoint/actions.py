"""The action vocabulary of checkpoint schedules: what an executor is told to do, step by step.

A schedule is a lazy generator of these frozen values over *state indices*: state ``i`` is the
input of forward step ``i`` and state ``i + 1`` its output, so a loop of ``n`` steps has states
``0 .. n``. Schedules never touch data; the executor owns the states, the tapes and the storage
tiers, and keeps one *current state* (the state it would advance next; it starts as state 0).

How an executor interprets each action (``match action: case Advance(start, stop): ...``):

``Advance(start, stop)``
    The current state is ``start``. Run forward steps ``start .. stop - 1`` *without* taping;
    the current state becomes ``stop``. One action covers a multi-step advance.
``Save(step, tier)``
    The current state is ``step``. Store a copy of it in ``tier`` (``"ram"``, ``"disk"``, ...).
    The current state stays ``step``.
``Load(step, tier)``
    Make the copy of state ``step`` held in ``tier`` the current state. The stored copy is kept
    until a ``Discard``, so the executor must not let the computation mutate it.
``Discard(step, tier)``
    Free the copy of state ``step`` held in ``tier``. Every ``Save`` is matched by exactly one
    ``Discard``; a schedule ends holding nothing.
``Forward(step)``
    The current state is ``step``. Run step ``step`` *with* taping and keep its tape (which holds
    whatever the step's VJP needs, its inputs included); the current state becomes ``step + 1``.
    Only ``StoreAll`` and ``Periodic`` use it: they keep the tapes of many steps rather than
    states, which is what "store everything" means in reverse-mode AD.
``Reverse(step)``
    Propagate the cotangent from state ``step + 1`` to state ``step``. If a ``Forward(step)``
    tape is held, run its VJP and free it; otherwise the current state must be ``step``: tape
    step ``step`` from it and run the VJP at once (that tape lives only during this action).
    The current state is undefined afterwards: the next action that needs one is a ``Load``.
    Steps are reversed exactly once each, in the order ``n - 1, n - 2, ..., 0``.

Cost conventions used by every ``predicted`` count and the planner: an ``Advance`` of ``k`` steps
costs ``k`` forward steps; a ``Forward`` or a tape-less ``Reverse`` tapes one step, which counts
as one *forward advance* (the Griewank--Walther convention, so Revolve's count is comparable with
the closed form); each ``Reverse`` also costs one reverse (VJP) step.

Example::

    >>> from diffkit.checkpoint import Revolve
    >>> [str(a) for a in Revolve(3, 2).actions()]
    ['Save(0, ram)', 'Advance(0, 1)', 'Save(1, ram)', 'Advance(1, 2)', 'Reverse(2)', \
'Load(1, ram)', 'Reverse(1)', 'Discard(1, ram)', 'Load(0, ram)', 'Reverse(0)', 'Discard(0, ram)']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RAM", "DISK", "Advance", "Save", "Load", "Discard", "Forward", "Reverse", "Action"]

RAM = "ram"
DISK = "disk"


@dataclass(frozen=True, slots=True)
class Advance:
    """Run steps ``start .. stop - 1`` untaped; the current state goes ``start`` -> ``stop``."""

    start: int
    stop: int

    def __str__(self) -> str:
        return f"Advance({self.start}, {self.stop})"


@dataclass(frozen=True, slots=True)
class Save:
    """Store a copy of the current state, which is state ``step``, in ``tier``."""

    step: int
    tier: str = RAM

    def __str__(self) -> str:
        return f"Save({self.step}, {self.tier})"


@dataclass(frozen=True, slots=True)
class Load:
    """Make the stored copy of state ``step`` in ``tier`` the current state (the copy stays)."""

    step: int
    tier: str = RAM

    def __str__(self) -> str:
        return f"Load({self.step}, {self.tier})"


@dataclass(frozen=True, slots=True)
class Discard:
    """Free the stored copy of state ``step`` in ``tier``."""

    step: int
    tier: str = RAM

    def __str__(self) -> str:
        return f"Discard({self.step}, {self.tier})"


@dataclass(frozen=True, slots=True)
class Forward:
    """Tape step ``step`` from the current state and keep the tape; current becomes ``step + 1``."""

    step: int

    def __str__(self) -> str:
        return f"Forward({self.step})"


@dataclass(frozen=True, slots=True)
class Reverse:
    """Run the VJP of step ``step`` (from its kept tape, or taping it from the current state)."""

    step: int

    def __str__(self) -> str:
        return f"Reverse({self.step})"


Action = Advance | Save | Load | Discard | Forward | Reverse
