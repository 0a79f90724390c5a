"""Replay a schedule on symbolic states and prove it reverses the loop correctly.

``validate(schedule, n)`` executes the actions on a toy machine that knows only state indices:
a current state, the saved states per tier, the kept tapes, and the next step to reverse. It
checks every rule of the action vocabulary (see :mod:`diffkit.checkpoint.actions`): each step
is reversed exactly once, in the order ``n-1 .. 0``, from the right state; no tier ever holds
more states than its slots; a ``Load`` reads a state that was saved and not discarded; every
saved state is discarded by the end; given the sizes of a state and of a tape, RAM states
plus kept tapes (plus the tape a tape-less ``Reverse`` makes) never exceed a byte limit.
The first broken rule raises a ``ScheduleError`` naming
the action index, the action, what was expected and what the machine held. On success it
returns the measured counts, so a test can compare them with the schedule's predictions.
It runs at ~1-2 M actions per second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from diffkit.checkpoint.actions import RAM, Advance, Discard, Forward, Load, Reverse, Save
from diffkit.errors import ScheduleError

__all__ = ["Summary", "validate"]


@dataclass(frozen=True, slots=True)
class Summary:
    """What a valid schedule did: counts of each kind of work and the peak storage per tier.

    ``forward_advances`` counts every single-step forward run: untaped ``Advance`` steps plus
    taping (``Forward`` and tape-less ``Reverse``), the convention of Griewank & Walther.
    """

    n_steps: int
    actions: int
    forward_advances: int
    tapings: int
    saves: dict[str, int] = field(default_factory=dict)
    loads: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    peak_tapes: int = 0
    peak_bytes: int | None = None  # RAM states and tapes held, when sizes were given


class _Machine:
    """The symbolic executor; each method applies one action or raises with the reason."""

    def __init__(self, n: int, slots: Mapping[str, int] | None, tapes: int | None,
                 sizes: tuple[int, int] | None, memory: int | None) -> None:
        self.n, self.slots, self.max_tapes = n, slots, tapes
        self.sizes, self.memory, self.peak_bytes = sizes, memory, 0
        self.current: int | None = 0
        self.stored: dict[str, set[int]] = {}
        self.tapes: set[int] = set()
        self.next_reverse = n - 1
        self.advances = self.tapings = self.peak_tapes = 0
        self.saves: dict[str, int] = {}
        self.loads: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def need_current(self, step: int) -> str | None:
        if self.current == step:
            return None
        held = "no defined state (after a Reverse)" if self.current is None else self.current
        return f"the current state must be {step}, but it is {held}"

    def advance(self, a: Advance) -> str | None:
        if not a.start < a.stop <= self.n:
            return f"needs start < stop <= n_steps={self.n}"
        self.advances += a.stop - a.start
        err = self.need_current(a.start)
        self.current = a.stop
        return err

    def save(self, a: Save) -> str | None:
        if err := self.need_current(a.step):
            return err
        held = self.stored.setdefault(a.tier, set())
        if a.step in held:
            return f"state {a.step} is already saved in tier {a.tier!r}"
        limit = None if self.slots is None else self.slots.get(a.tier)
        if self.slots is not None and limit is None:
            return f"tier {a.tier!r} is not one of the schedule's tiers {sorted(self.slots)}"
        if limit is not None and len(held) >= limit:
            return f"tier {a.tier!r} already holds {limit} states {sorted(held)}, its slot limit"
        held.add(a.step)
        self.saves[a.tier] = self.saves.get(a.tier, 0) + 1
        self.peak[a.tier] = max(self.peak.get(a.tier, 0), len(held))
        return self.held_bytes()

    def held_bytes(self, making: int = 0) -> str | None:
        """Count RAM states and tapes held (plus ``making`` tapes being made) in bytes."""
        if self.sizes is None:
            return None
        state, tape = self.sizes
        states = len(self.stored.get(RAM, ()))
        held = states * state + (len(self.tapes) + making) * tape
        self.peak_bytes = max(self.peak_bytes, held)
        if self.memory is not None and held > self.memory:
            return (f"{states} RAM states of {state:,} bytes and {len(self.tapes) + making} "
                    f"tapes of {tape:,} bytes hold {held:,} bytes, more than the "
                    f"{self.memory:,} allowed")
        return None

    def load(self, a: Load) -> str | None:
        if a.step not in self.stored.get(a.tier, ()):
            return f"state {a.step} is not saved in tier {a.tier!r} ({self._held(a.tier)})"
        self.loads[a.tier] = self.loads.get(a.tier, 0) + 1
        self.current = a.step
        return None

    def discard(self, a: Discard) -> str | None:
        if a.step not in self.stored.get(a.tier, ()):
            return f"state {a.step} is not saved in tier {a.tier!r} ({self._held(a.tier)})"
        self.stored[a.tier].discard(a.step)
        return None

    def forward(self, a: Forward) -> str | None:
        if err := self.need_current(a.step):
            return err
        if a.step in self.tapes:
            return f"a tape of step {a.step} is already held"
        self.tapes.add(a.step)
        if self.max_tapes is not None and len(self.tapes) > self.max_tapes:
            return f"{len(self.tapes)} tapes held, more than the schedule's {self.max_tapes}"
        self.peak_tapes = max(self.peak_tapes, len(self.tapes))
        self.tapings += 1
        self.current = a.step + 1
        return self.held_bytes()

    def reverse(self, a: Reverse) -> str | None:
        if a.step != self.next_reverse:
            want = "nothing (all steps are reversed)" if self.next_reverse < 0 else (
                f"Reverse({self.next_reverse})"
            )
            return f"steps are reversed once each from n-1 down to 0: expected {want}"
        self.next_reverse -= 1
        if a.step in self.tapes:
            self.tapes.discard(a.step)
        else:
            if err := self.need_current(a.step):
                return err + f" (or a tape of step {a.step} from Forward({a.step}))"
            self.tapings += 1
            if err := self.held_bytes(making=1):
                return err
        self.current = None
        return None

    def _held(self, tier: str) -> str:
        return f"it holds {sorted(self.stored.get(tier, ()))}"


def validate(
    schedule: object,
    n_steps: int,
    slots: Mapping[str, int] | None = None,
    tapes: int | None = None,
    *,
    sizes: tuple[int, int] | None = None,
    memory: int | None = None,
) -> Summary:
    """Replay ``schedule`` for a loop of ``n_steps`` steps; raise ``ScheduleError`` if invalid.

    ``schedule`` is a schedule object (anything with ``actions()``, or ``actions(n)`` for
    ``Online``; its ``slots`` and ``tapes`` attributes give the limits unless passed here) or
    any iterable of actions. Without known limits, only the peaks are reported.
    ``sizes`` (bytes of a state and of a tape; a schedule's ``state_bytes`` and
    ``tape_bytes`` unless given) give ``Summary.peak_bytes``, held within ``memory`` (a
    schedule's ``peak_bytes`` unless given).

    >>> from diffkit.checkpoint import Revolve, Save, Advance, Reverse, Load, Discard
    >>> validate(Revolve(10, 3), 10).peak
    {'ram': 3}
    >>> validate([Save(0), Advance(0, 1), Reverse(1), Load(0), Reverse(0), Discard(0)], 2).loads
    {'ram': 1}
    """
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ScheduleError(f"validate needs n_steps >= 1 (an int), got {n_steps!r}")
    own_n = getattr(schedule, "n_steps", None)
    if hasattr(schedule, "actions"):
        if own_n is not None and own_n != n_steps:
            raise ScheduleError(
                f"{schedule!r} plans {own_n} steps, validate was asked for {n_steps}"
            )
        stream = schedule.actions() if own_n is not None else schedule.actions(n_steps)
    else:
        stream = schedule
    slots = getattr(schedule, "slots", None) if slots is None else slots
    tapes = getattr(schedule, "tapes", None) if tapes is None else tapes
    if sizes is None and hasattr(schedule, "tape_bytes"):
        sizes = (schedule.state_bytes, schedule.tape_bytes)
    memory = getattr(schedule, "peak_bytes", None) if memory is None else memory
    return _replay(stream, n_steps, slots, tapes, sizes, memory if sizes else None)


def _replay(
    stream: Iterable[object], n: int, slots: Mapping[str, int] | None, tapes: int | None,
    sizes: tuple[int, int] | None = None, memory: int | None = None,
) -> Summary:
    m = _Machine(n, slots, tapes, sizes, memory)
    handlers = {Advance: m.advance, Save: m.save, Load: m.load, Discard: m.discard,
                Forward: m.forward, Reverse: m.reverse}
    index = -1
    for index, action in enumerate(stream):
        handler = handlers.get(type(action))
        if handler is None:
            raise ScheduleError(f"action #{index} {action!r} is not a checkpoint action "
                                "(Advance, Save, Load, Discard, Forward, Reverse)")
        if err := handler(action):
            raise ScheduleError(f"action #{index} {action}: {err}")
    if m.next_reverse >= 0:
        raise ScheduleError(
            f"the schedule ended after {index + 1} actions with steps {m.next_reverse}..0 "
            f"not reversed (expected Reverse({m.next_reverse}))"
        )
    left = {t: sorted(s) for t, s in m.stored.items() if s}
    if left or m.tapes:
        raise ScheduleError(f"the schedule ended still holding states {left} and tapes "
                            f"{sorted(m.tapes)}: every Save needs a Discard")
    return Summary(n, index + 1, m.advances + m.tapings, m.tapings, m.saves, m.loads, m.peak,
                   m.peak_tapes, m.peak_bytes if sizes else None)
