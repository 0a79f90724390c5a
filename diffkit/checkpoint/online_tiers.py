"""Online checkpointing with a tier below RAM: a while loop of unknown length, RAM and disk.

With room on disk, the offline optimum for long loops writes a disk checkpoint every ``P``
steps in the first sweep, ``P`` the segment length of least time per step
(:func:`~diffkit.checkpoint.segmented.segment_costs`), and reverses each segment exactly
from its disk start. That needs no knowledge of ``n``, so the online schedule does the same:
state ``kP`` is saved to disk when the loop passes it, the open segment is checkpointed in
RAM by :class:`~diffkit.checkpoint.online.Online` (its points are dropped when the next
segment opens), and at the end the open segment is reversed by ``Online`` and every closed
one by the exact two-tier schedule (Revolve in RAM from its start if it is longer than the
tables). When the disk is full, every other disk checkpoint is dropped and ``P`` doubles
(the same move as Online's merges, at the disk level), so no tier ever exceeds its slots.
The first segment runs as long as Revolve in RAM stays below that time per step, so a short
loop is reversed from RAM as by plain Online; the open segment is reversed from its disk
start by the exact schedule when that is cheaper than by Online's RAM checkpoints.

State 0 goes to disk only when needed: when the first segment closes (its RAM copy is
loaded, written, and the state the loop is at taken back from a RAM slot, in the forward
sweep) or when the reverse sweep reverses the open first segment from disk; a loop that ends
in its first segment and reverses it from RAM writes nothing. The write is moved, never added,
so the schedule's counts are those of writing state 0 at step 1. With one RAM slot there is
no slot to hold the loop's state meanwhile, and state 0 is written at step 1.

The forward protocol is :class:`~diffkit.checkpoint.online.Online`'s: ``forward_step(i)``
before step ``i`` runs, acting on the kept state ``i - 1``; ``reverse(n)`` once it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import chain

import numpy as np

from diffkit.checkpoint.actions import RAM, Action, Advance, Discard, Load, Reverse, Save
from diffkit.checkpoint.multilevel import StepCosts, Tier
from diffkit.checkpoint.online import Online, whole_stream
from diffkit.checkpoint.optimal import _Tables, tally
from diffkit.checkpoint.revolve import predict, reverse_segment
from diffkit.checkpoint.segmented import segment_costs
from diffkit.errors import ScheduleError

__all__ = ["OnlineTiered"]

_HORIZON = 10**9  # segment tables as long as SEG_WORK allows


class OnlineTiered:
    """Checkpoint a loop of unknown length with ``ram`` RAM slots and the tier ``tier``.

    >>> from diffkit.checkpoint import Tier, validate
    >>> sched = OnlineTiered(2, Tier("disk", 100, 4.0, 0.3))
    >>> sched.period, validate(sched, 500).peak["disk"] <= 100
    (4, True)
    """

    n_steps = None  # unknown until reverse(n): validate calls actions(n)

    def __init__(self, ram: int, tier: Tier, costs: StepCosts | None = None,
                 ram_name: str = RAM) -> None:
        if not isinstance(ram, int) or ram < 1:
            raise ScheduleError(f"OnlineTiered needs ram >= 1 slot (an int), got {ram!r}")
        if not isinstance(tier.slots, int) or tier.slots < 1:
            raise ScheduleError(f"OnlineTiered: tier {tier.name!r} needs >= 1 slot, got "
                                f"{tier.slots!r}")
        self.ram, self.tier, self.costs, self.ram_name = ram, tier, costs or StepCosts(), ram_name
        inner = (Tier(ram_name, ram), replace(tier, slots=1))
        made = segment_costs(_HORIZON, inner, self.costs)
        table, seg = made if made is not None else (None, np.full(2, np.inf))
        rates = seg[1:] / np.arange(1, len(seg))
        self.period = int(np.argmin(rates)) + 1
        self.first = max(self.period, _ram_reach(ram, float(rates.min()) / self.costs.forward))
        keep = 4 * self.first  # the segments it will reverse exactly; longer ones by Revolve
        if table is not None and keep < len(seg) - 1:
            table = _Tables(keep, inner, self.costs.forward)  # small: held while the loop runs
        self._table = table
        self._reset()

    def _reset(self) -> None:
        self.slots = {self.ram_name: self.ram, self.tier.name: self.tier.slots}
        self.tapes = 0
        self.disk: list[int] = []  # disk checkpoints, ascending; the open segment's last
        self.zero_written = False  # state 0 (disk[0] from step 1 on) saved to disk yet
        self.base, self.step_length = 0, self.first
        self.inner = Online(self.ram, self.ram_name)
        self._next = 0

    @property
    def nbytes(self) -> int:
        """Bytes this schedule holds while a loop runs it (its segment tables)."""
        return 0 if self._table is None else self._table.nbytes

    def __repr__(self) -> str:
        return (f"OnlineTiered({self.ram_name}={self.ram}, {self.tier.name}={self.tier.slots}, "
                f"period={self.period})")

    def forward_step(self, i: int) -> tuple[Action, ...]:
        """Called before step ``i`` runs; acts on the kept previous state ``i - 1``."""
        if i != self._next:
            raise ScheduleError(f"OnlineTiered.forward_step({i}) called out of order: expected "
                                f"step {self._next} (call it once per step, from 0)")
        self._next = i + 1
        prev, name = i - 1, self.tier.name
        if i == 0:
            return self.inner.forward_step(0)
        out: list[Action] = []
        if i == 1:
            self.disk.append(0)
            if self.ram == 1:  # no RAM slot to park the loop's state when writing it later
                out.append(Save(0, name))
                self.zero_written = True
        elif prev - self.base == self.step_length and self._room(out):
            if not self.zero_written:  # the first close: state 0 to disk now, from RAM
                out.extend(Discard(p, self.ram_name) for p in self.inner.points[1:])
                out.extend((Save(prev, self.ram_name), *self._write_zero(),
                            Load(prev, self.ram_name), Discard(prev, self.ram_name)))
            else:
                out.extend(Discard(p + self.base, self.ram_name) for p in self.inner.points)
            self.disk.append(prev)
            out.append(Save(prev, name))
            self.base, self.inner = prev, Online(self.ram, self.ram_name)
            self.step_length = max(self.step_length if prev > self.first else 0, self.period)
            self.inner.forward_step(0)
        out.extend(_shift(a, self.base) for a in self.inner.forward_step(i - self.base))
        return tuple(out)

    def _write_zero(self) -> tuple[Action, ...]:
        """State 0 from its RAM slot to disk, the slot freed (the current state becomes 0)."""
        self.zero_written = True
        ram = self.ram_name
        return (Load(0, ram), Save(0, self.tier.name), Discard(0, ram))

    def _room(self, out: list[Action]) -> bool:
        """Make room on disk for one more checkpoint: drop every other one, double the
        segment length. False if nothing can go (one slot, holding state 0)."""
        if len(self.disk) < self.tier.slots:
            return True
        if len(self.disk) < 2:
            self.step_length = np.inf
            return False
        out.extend(Discard(d, self.tier.name) for d in self.disk[1::2])
        self.disk = self.disk[::2]
        self.step_length *= 2
        return len(self.disk) < self.tier.slots

    def reverse(self, n: int) -> Iterator[Action]:
        """The reverse sweep once the loop stopped after ``n`` steps (current: ``n - 1``)."""
        if n != self._next or n < 1:
            raise ScheduleError(f"OnlineTiered.reverse({n}) after {self._next} forward steps: "
                                f"pass the number of steps run ({self._next})")
        if n == 1:
            return iter((Reverse(0),))
        base = self.base
        starts = [d for d in self.disk if d < base]  # closed segments, up to the next start
        closed = zip(starts, [*starts[1:], base][:len(starts)], strict=True)
        return chain(self._open(n), chain.from_iterable(self._closed(a, b)
                                                        for a, b in reversed(list(closed))))

    def _open(self, n: int) -> Iterator[Action]:
        """The open segment ``[base, n)``: by Online's RAM checkpoints, or, when cheaper and
        its start is on disk, by the exact schedule from there after reversing step n - 1."""
        base, name, t = self.base, self.tier.name, self._table
        online = [_shift(a, base) for a in self.inner.reverse(n - base)]
        on_disk = bool(self.disk) and self.disk[-1] == base
        if on_disk and t is not None and 2 <= n - base <= t.F.shape[-1]:
            exact = self.tier.read + float(t.F[(2, *t.caps, n - 1 - base)])
            if exact < self.costs.forward * (tally(online, (self.ram_name, name))[0] - 1):
                yield Reverse(n - 1)
                if self.zero_written:
                    yield from (Discard(p + base, self.ram_name) for p in self.inner.points)
                else:  # the first segment: state 0 to disk now (its write moved, not added)
                    yield from (Discard(p, self.ram_name) for p in self.inner.points[1:])
                    yield from self._write_zero()
                yield from self._closed(base, n - 1)
                return
        yield from online
        if on_disk and self.zero_written:
            yield Discard(base, name)

    def _closed(self, a: int, b: int) -> Iterator[Action]:
        """Reverse the closed segment ``[a, b)`` from its disk checkpoint, then free it."""
        name, ram = self.tier.name, self.ram_name
        yield Load(a, name)
        t = self._table
        if t is not None and b - a < t.F.shape[-1]:
            yield from t.emit(2, a, b - a, t.caps)  # set {tier}: held on disk
            return
        if b - a == 1:
            yield Reverse(a)
        else:
            yield Save(a, ram)
            yield from reverse_segment(a, b, self.ram, ram, a)
            yield Discard(a, ram)
        yield Discard(a, name)

    def actions(self, n_steps: int) -> Iterator[Action]:
        """The whole stream for a loop of ``n_steps`` steps, from a fresh start (validate)."""
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ScheduleError(f"OnlineTiered.actions needs n_steps >= 1 (an int), got "
                                f"{n_steps!r}")
        fresh = object.__new__(OnlineTiered)
        fresh.__dict__.update(self.__dict__)
        fresh._reset()
        return whole_stream(fresh, n_steps)


def _ram_reach(ram: int, rate: float) -> int:
    """The longest loop Revolve reverses in ``ram`` slots at no more than ``rate`` advances a
    step (its advances per step only grow with the length): the first segment's length, so
    a short loop stays in RAM as plain Online would keep it."""
    lo, hi = 1, 1
    while hi < _HORIZON and predict(hi, ram).forward_advances <= rate * hi:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if predict(mid, ram).forward_advances <= rate * mid else (lo, mid)
    return lo


def _shift(a: Action, by: int) -> Action:
    """The action moved ``by`` steps later."""
    match a:
        case Advance(start, stop):
            return Advance(start + by, stop + by)
        case Save(step, tier) | Load(step, tier) | Discard(step, tier):
            return type(a)(step + by, tier)
        case Reverse(step):
            return Reverse(step + by)
    raise ScheduleError(f"OnlineTiered: unexpected action {a!r} from Online (a diffkit bug)")
