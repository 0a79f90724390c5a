"""Tapes or states: the least-advance schedule that keeps, per step, a state or the step's tape.

Keeping the tape of step ``a`` (``Forward(a)``, freed by ``Reverse(a)``) instead of state
``a`` saves the re-run of step ``a`` when it is reversed; it pays when a tape is not much
larger than a state (a compiled step's residuals are often 1-3 states). The idea is
Maddison's mixed schedule (arXiv:2305.09568, checkpoint_schedules' ``MixedCheckpointSchedule``,
where a checkpoint is "forward restart" or "non-linear dependency" data of one size), here
with any sizes: states of ``s`` and tapes of ``t`` memory units in a RAM budget of ``M``.

To reverse ``l`` steps from the current state ``a`` with ``m`` units free (a stored copy of
``a`` included: it is discarded before it stops being useful), either tape step ``a`` and
keep the tape, or save ``a``, advance ``j`` steps, reverse the right part and come back::

    F(1, m) = 1                                              (m >= t: tape and reverse)
    F(l, m) = min(1 + F(l - 1, m - t),                       (m >= t)
                  min_j  j + F(l - j, m - s) + F(j, m))      (m >= s)

It holds Revolve (no kept tapes), store-all and Periodic, so it is never slower than any of
them with the same bytes. ``tests/checkpoint/test_mixed.py`` checks it against an exhaustive
search over every action sequence. Cost: ``n^2 / 2 * (M + 1)`` cells of work, vectorized
over ``m`` and ``j``; :func:`feasible` bounds it for the planner. Time is
``forward * advances + reverse * n`` with a fixed ``n`` reversals, so least advances is least
time.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from math import gcd

import numpy as np

from diffkit.checkpoint.actions import RAM, Action, Advance, Discard, Forward, Load, Reverse, Save
from diffkit.checkpoint.baselines import Counts
from diffkit.errors import ScheduleError

__all__ = ["Mixed", "units", "dp_work", "dp_bytes", "feasible", "PLAN_WORK", "PLAN_CELLS"]

PLAN_WORK = 6e7  # cell updates the planner allows itself (~0.2 s: n=1000 with 120 units)
PLAN_CELLS = 2e6  # table cells (6 bytes each while planning; a loop keeps only its choices)
RESOLUTION = 32  # the larger of a state and a tape in units, when their gcd is finer
_INF = 1 << 29  # two of them still fit an int32


def units(state_bytes: int, tape_bytes: int, memory: int,
          resolution: int = RESOLUTION) -> tuple[int, int, int, int]:
    """``(unit, s, t, m)``: bytes per unit, a state, a tape and the memory in units.

    Exact in units of ``gcd(state_bytes, tape_bytes)`` when that keeps both within
    ``resolution`` units; else sizes round up (a plan never holds more than it says)
    and the memory down.
    """
    unit = max(gcd(state_bytes, tape_bytes), -(-max(state_bytes, tape_bytes) // resolution))
    return unit, -(-state_bytes // unit), -(-tape_bytes // unit), memory // unit


def _cap(n: int, t: int, m: int) -> int:
    """Memory beyond ``n`` tapes buys nothing: store-all already runs each step once."""
    return min(m, n * t)


def dp_work(n: int, s: int, t: int, m: int) -> float:
    """Cell updates of the dynamic programme: its running time up to a constant."""
    return n * n / 2 * (_cap(n, t, m) + 1)


def _rows(n: int, width: int) -> int:
    """Splits taken at once: their temporaries stay within ~1/4 of the tables."""
    return max(1, (n + 1) // 8)


def dp_bytes(n: int, s: int, t: int, m: int) -> int:
    """Bytes the dynamic programme holds while it runs: ``F`` (4 bytes a cell), the choices
    (2) and the split temporaries of :func:`_rows` splits (3 int32 arrays of ``m`` cells)."""
    width = _cap(n, t, m) + 1
    return (n + 1) * width * 6 + 12 * _rows(n, width) * width + 64 * width


def feasible(n: int, state_bytes: int, tape_bytes: int, memory: int,
             scale: float = 1.0, resolution: int = RESOLUTION, room: int | None = None) -> bool:
    """Whether the planner may solve this: within ``scale`` times :data:`PLAN_WORK` and
    :data:`PLAN_CELLS`, and its tables within ``room`` bytes (a loop plans inside its
    budget: what its snapshots will take is free then)."""
    _, s, t, m = units(state_bytes, tape_bytes, memory, resolution)
    return (dp_work(n, s, t, m) <= PLAN_WORK * scale
            and (n + 1) * (_cap(n, t, m) + 1) <= PLAN_CELLS * scale
            and (room is None or dp_bytes(n, s, t, m) <= room))


def _tables(n: int, s: int, t: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``F[l, m]`` (advances) and ``choice[l, m]`` (0: tape step a and keep it; j > 0: save a,
    advance j), filled bottom-up in ``l`` with every ``m`` at once and the splits ``j`` in
    blocks of :func:`_rows` (ties: the smallest ``j``, then the tape)."""
    F = np.full((n + 1, m + 1), _INF, np.int32)
    choice = np.zeros((n + 1, m + 1), np.int16 if n < 2**15 else np.int32)
    F[1, t:] = 1
    width = m + 1 - s
    rows, cols = _rows(n, m + 1), np.arange(max(width, 0))
    for l in range(2, n + 1):
        row = np.full(m + 1, _INF, np.int32)
        row[t:] = 1 + F[l - 1, :m + 1 - t]  # tape step a, keep it
        for j0 in range(1, l if m >= s else 1, rows):  # save a, advance j: the right part
            j1 = min(l, j0 + rows)  # from a + j without a's slot, then the left part
            split = np.arange(j0, j1, dtype=np.int32)[:, None] + F[l - j0:l - j1:-1, :width]
            split += F[j0:j1, s:]
            j = split.argmin(axis=0)
            best = split[j, cols]
            better = best < row[s:]
            row[s:][better] = best[better]
            choice[l, s:][better] = j[better] + j0
        F[l] = np.minimum(row, _INF)
    return F, choice


@lru_cache(maxsize=8)
def _solve(n: int, s: int, t: int, m: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(advances, memory, keys, choices)``: the least advances, the least memory that gives
    them, and the choices at the ``(l, m)`` the optimal schedule visits (key ``l (m+1) + m``,
    sorted): a few hundred where the tables have ~10^5 cells (n=1000, 119 units: 236)."""
    F, choice = _tables(n, s, t, m)
    best = int(F[n, m])
    if best >= _INF:
        return best, m, np.zeros(0, np.int64), np.zeros(0, np.int32)
    low = int(np.argmax(F[n] == best))
    nodes: dict[int, int] = {}
    stack = [(n, low)]
    while stack:
        l, mm = stack.pop()
        key = l * (m + 1) + mm
        if l == 1 or key in nodes:
            continue
        nodes[key] = j = int(choice[l, mm])
        stack += [(l - 1, mm - t)] if j == 0 else [(l - j, mm - s), (j, mm)]
    keys = np.array(sorted(nodes), np.int64)
    values = np.array([nodes[k] for k in keys.tolist()], np.int32)
    keys.flags.writeable = values.flags.writeable = False  # shared through the cache
    return best, low, keys, values


class Mixed:
    """The least-advance schedule keeping states (``state_bytes``) and step tapes
    (``tape_bytes``) within ``memory`` bytes of RAM, with at most one step being taped on
    top of what is kept (the tape a tape-less ``Reverse`` makes counts in ``memory``).

    ``predicted`` is exact (counted on the emitted stream); ``slots``/``tapes`` are the
    peak states and kept tapes; ``peak_bytes`` the peak of states plus tapes, the least
    memory that gives the same advances. Optimal in memory units (:func:`units`): exact
    when ``resolution`` units hold both sizes, else with sizes rounded up to a unit.

    >>> from diffkit.checkpoint import Revolve, validate
    >>> m = Mixed(10, state_bytes=8, tape_bytes=8, memory=32)  # Revolve: 3 slots + a tape
    >>> m.predicted.forward_advances, Revolve(10, 3).predicted.forward_advances
    (19, 25)
    >>> validate(m, 10).peak_bytes <= 32
    True
    """

    def __init__(self, n_steps: int, state_bytes: int, tape_bytes: int, memory: int,
                 resolution: int = RESOLUTION) -> None:
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ScheduleError(f"Mixed needs n_steps >= 1 (an int), got {n_steps!r}")
        if min(state_bytes, tape_bytes) < 1:
            raise ScheduleError(f"Mixed needs state_bytes and tape_bytes >= 1, got "
                                f"{state_bytes!r} and {tape_bytes!r}")
        self.n_steps, self.state_bytes, self.tape_bytes = n_steps, state_bytes, tape_bytes
        self.unit, s, t, m = units(state_bytes, tape_bytes, memory, resolution)
        m = _cap(n_steps, t, m)
        best, self.memory_units, self._keys, self._choices = _solve(n_steps, s, t, m)
        if best >= _INF:
            raise ScheduleError(
                f"Mixed: {memory:,} bytes cannot reverse {n_steps} steps with states of "
                f"{state_bytes:,} and tapes of {tape_bytes:,} bytes: give at least one state "
                f"plus one tape ({state_bytes + tape_bytes:,} bytes)")
        self._s, self._t, self._stride = s, t, m + 1
        self._count()

    def __repr__(self) -> str:
        return (f"Mixed(n_steps={self.n_steps}, state_bytes={self.state_bytes}, "
                f"tape_bytes={self.tape_bytes}, memory={self.memory_units * self.unit})")

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    @property
    def nbytes(self) -> int:
        """Bytes this schedule holds while a loop runs it (its choices)."""
        return self._keys.nbytes + self._choices.nbytes

    def _choice(self, l: int, m: int) -> int:
        """0: tape the first step and keep its tape; j > 0: save, advance j."""
        return int(self._choices[np.searchsorted(self._keys, l * self._stride + m)])

    def actions(self) -> Iterator[Action]:
        """The actions, traced back through the choice table with an explicit stack."""
        n, s, t = self.n_steps, self._s, self._t
        stack: list = [(0, n, self.memory_units, False)]
        while stack:
            item = stack.pop()
            if not isinstance(item, tuple):
                yield item
                continue
            a, l, m, held = item
            j = 0 if l == 1 else self._choice(l, m)
            if held and j == 0:  # a's copy is done with once step a is taped
                yield Discard(a)
            if l == 1:
                if a == n - 1:  # the forward sweep ends at state n: tape the last step
                    yield Forward(a)
                yield Reverse(a)
                continue
            if j == 0:
                yield Forward(a)
                stack.append(Reverse(a))
                stack.append((a + 1, l - 1, m - t, False))
                continue
            if not held:
                yield Save(a)
            yield Advance(a, a + j)
            stack.append((a, j, m, True))
            stack.append(Load(a))
            stack.append((a + j, l - j, m - s, False))

    def _count(self) -> None:
        """Advances, saves, loads and the peaks, counted on the emitted stream."""
        advances = saves = loads = states = peak_s = peak_t = peak = 0
        s, t, taped = self.state_bytes, self.tape_bytes, set()
        for act in self.actions():
            match act:
                case Advance(start, stop):
                    advances += stop - start
                case Save():
                    saves, states = saves + 1, states + 1
                case Load():
                    loads += 1
                case Discard():
                    states -= 1
                case Forward(step):
                    advances += 1
                    taped.add(step)
                case Reverse(step) if step in taped:
                    taped.discard(step)
                case Reverse():  # tapes the step, held while its VJP runs
                    advances += 1
                    peak = max(peak, states * s + (len(taped) + 1) * t)
            peak_s, peak_t = max(peak_s, states), max(peak_t, len(taped))
            peak = max(peak, states * s + len(taped) * t)
        self.slots, self.tapes, self.peak_bytes = {RAM: peak_s}, peak_t, peak
        self.predicted = Counts(self.n_steps, advances, {RAM: saves} if saves else {},
                                {RAM: loads} if loads else {})
