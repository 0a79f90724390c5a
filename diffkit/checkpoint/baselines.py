"""The two baseline schedules: keep every tape, or keep every k-th state.

``StoreAll`` is plain reverse-mode AD: tape every step on the way forward, then run the VJPs
backwards; memory grows with ``n`` tapes. ``Periodic(k)`` is what
``torch.utils.checkpoint_sequential`` does: save the state at the start of every segment of
``k`` steps on an untaped first sweep, tape the last segment directly, and in the reverse sweep
re-run each earlier segment with taping from its saved start. Both use ``Forward`` actions,
because they keep tapes of whole segments rather than recomputing step by step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from diffkit.checkpoint.actions import RAM, Action, Advance, Discard, Forward, Load, Reverse, Save
from diffkit.errors import ScheduleError

__all__ = ["Counts", "StoreAll", "Periodic"]


@dataclass(frozen=True, slots=True)
class Counts:
    """Predicted counts of a schedule, known before it runs.

    ``forward_advances`` counts every single-step forward run, taped or not (the Revolve
    convention); ``writes``/``reads`` count ``Save``/``Load`` actions per tier.
    """

    n_steps: int
    forward_advances: int
    writes: dict[str, int]
    reads: dict[str, int]

    @property
    def recomputation_factor(self) -> float:
        """Forward advances per step (1.0 is the minimum: every step run once)."""
        return self.forward_advances / self.n_steps


def _check_n(n: int, who: str) -> None:
    if not isinstance(n, int) or n < 1:
        raise ScheduleError(f"{who} needs n_steps >= 1 (an int), got {n!r}")


class StoreAll:
    """Tape all ``n_steps`` steps forward, then reverse them: ``n`` advances, ``n`` tapes held.

    >>> [str(a) for a in StoreAll(2).actions()]
    ['Forward(0)', 'Forward(1)', 'Reverse(1)', 'Reverse(0)']
    """

    def __init__(self, n_steps: int) -> None:
        _check_n(n_steps, "StoreAll")
        self.n_steps = n_steps
        self.slots = {RAM: 0}
        self.tapes = n_steps
        self.predicted = Counts(n_steps, n_steps, {}, {})

    def __repr__(self) -> str:
        return f"StoreAll(n_steps={self.n_steps})"

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    def actions(self) -> Iterator[Action]:
        """``Forward(0) .. Forward(n-1)``, then ``Reverse(n-1) .. Reverse(0)``."""
        for i in range(self.n_steps):
            yield Forward(i)
        for i in range(self.n_steps - 1, -1, -1):
            yield Reverse(i)


class Periodic:
    """Save every ``every``-th state; re-tape one segment at a time in the reverse sweep.

    Holds ``ceil(n / every) - 1`` states (the last segment is taped on the first sweep) and at
    most ``every`` tapes; runs ``2n - len(last segment)`` forward advances.

    >>> [str(a) for a in Periodic(3, every=2).actions()]
    ['Save(0, ram)', 'Advance(0, 2)', 'Forward(2)', 'Reverse(2)', 'Load(0, ram)', \
'Forward(0)', 'Forward(1)', 'Reverse(1)', 'Reverse(0)', 'Discard(0, ram)']
    """

    def __init__(self, n_steps: int, every: int, tier: str = RAM) -> None:
        _check_n(n_steps, "Periodic")
        if not isinstance(every, int) or every < 1:
            raise ScheduleError(f"Periodic needs every >= 1 (steps per segment), got {every!r}")
        self.n_steps, self.every, self.tier = n_steps, every, tier
        self.last_start = (n_steps - 1) // every * every
        saved = self.last_start // every
        self.slots = {tier: saved}
        self.tapes = min(every, n_steps)
        self.predicted = Counts(
            n_steps, 2 * n_steps - (n_steps - self.last_start), {tier: saved}, {tier: saved}
        )

    def __repr__(self) -> str:
        return f"Periodic(n_steps={self.n_steps}, every={self.every}, tier={self.tier!r})"

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    def actions(self) -> Iterator[Action]:
        """First sweep (saves, untaped advances, taped last segment), then segment by segment."""
        n, k, tier, last = self.n_steps, self.every, self.tier, self.last_start
        for start in range(0, last, k):
            yield Save(start, tier)
            yield Advance(start, start + k)
        yield from _tape_and_reverse(last, n)
        for start in range(last - k, -1, -k):
            yield Load(start, tier)
            yield from _tape_and_reverse(start, start + k)
            yield Discard(start, tier)


def _tape_and_reverse(start: int, stop: int) -> Iterator[Action]:
    for i in range(start, stop):
        yield Forward(i)
    for i in range(stop - 1, start - 1, -1):
        yield Reverse(i)
