"""Exact multi-tier checkpointing for small loops: a dynamic programme that emits its schedule.

The model is H-Revolve's (Herrmann & Pallez 2020, "H-Revolve: a framework for adjoint
computation on synchronous hierarchical platforms", ACM TOMS 46(2)), of which Disk-Revolve
(Aupy et al. 2016) is the two-tier case: ``K`` tiers, each with a slot count and a cost to
write and to read one state (RAM is usually free); a forward step costs ``forward`` and a
step's VJP ``reverse``. Time is diffkit's convention (:mod:`diffkit.checkpoint.actions`)::

    forward * advances + reverse * n + sum over tiers (write * saves + read * loads)

To reverse ``l`` steps whose start is current and held in the set ``S`` of tiers, with slot
counts ``c`` (the start's copies included), either ``l = 1`` (tape and reverse), or first
change ``S`` to ``S'`` (add copies at their write cost, drop copies for free), then advance
``j`` steps, reverse the right part ``[j, l)`` -- its start current, held nowhere -- with
``c`` minus the start's copies, read the start back from the cheapest tier of ``S'`` and
reverse ``[0, j)`` with all of ``c``::

    F[S](l, c) = min_{S'} ( write(S' - S) + min_j ( j forward + F[{}](l - j, c - S')
                                                    + read(S') + F[S'](j, c) ) )

``F[{}]`` (the start held nowhere) is the answer. Holding the start in two tiers at once and
re-reading a disk copy instead of recomputing are both in the model, which is why this beats
:class:`~diffkit.checkpoint.multilevel.MultiLevel` with costly writes or one RAM slot
(n = 8, one RAM slot, two disk slots, write 4, read 0.3, reverse 1: 34.6 against 36.3).
``tests/checkpoint/test_optimal.py`` checks it against an exhaustive search over every action
sequence on tiny loops and against ``benchmarks/two_level_reference.py``.

Cost: ``O(2^K * n^2 * prod(slots + 1))`` (slots capped at ``n``), vectorized over the slot
grid and the split; :func:`dp_work` estimates it, and the planner uses this schedule only
below :data:`PLAN_WORK`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from math import prod

import numpy as np

from diffkit.checkpoint.actions import Action, Advance, Discard, Load, Reverse, Save
from diffkit.checkpoint.multilevel import MultiLevelPrediction, StepCosts, Tier
from diffkit.errors import ScheduleError

__all__ = ["Optimal", "dp_work", "feasible", "tally", "PLAN_WORK", "PLAN_CELLS"]

PLAN_WORK = 1e8  # splits the planner allows itself: n=200, 5 RAM, 200 disk slots is 0.27 s
PLAN_CELLS = 4e6  # table cells (~21 bytes each), so a plan never takes more than ~90 MB


def _caps(n: int, tiers: Sequence[Tier]) -> tuple[int, ...]:
    """Slots worth modelling per tier: a tier never holds more than the ``n`` states 0..n-1."""
    return tuple(min(t.slots, n) for t in tiers)


def _cells(n: int, tiers: Sequence[Tier]) -> float:
    return 2.0 ** len(tiers) * prod(c + 1 for c in _caps(n, tiers)) * (n + 1)


def dp_work(n: int, tiers: Sequence[Tier]) -> float:
    """Cells times splits of the dynamic programme: its running time up to a constant."""
    return _cells(n, tiers) * n / 2


def feasible(n: int, tiers: Sequence[Tier]) -> bool:
    """Whether the planner may solve this exactly (within :data:`PLAN_WORK` and
    :data:`PLAN_CELLS`)."""
    return len(tiers) <= 6 and dp_work(n, tiers) <= PLAN_WORK and _cells(n, tiers) <= PLAN_CELLS


class _Tables:
    """``F[S][c..., l]`` and the choices that reach it: ``pick[S]`` (the set ``S'``) and
    ``split[S']`` (the ``j``), filled bottom-up in ``l`` (no recursion)."""

    def __init__(self, n: int, tiers: Sequence[Tier], forward: float) -> None:
        k = len(tiers)
        caps = _caps(n, tiers)
        grid = tuple(c + 1 for c in caps)
        sets = range(1 << k)
        inf = np.inf
        self.caps, self.sets = caps, sets
        F = np.full((1 << k, *grid, n + 1), inf)
        shifted = np.full((1 << k, *grid, n + 1), inf)  # F[{}] at c - S, per S
        split = np.zeros((1 << k, *grid, n + 1), np.int32)
        pick = np.zeros((1 << k, *grid, n + 1), np.int8)
        members = [[t for t in range(k) if s >> t & 1] for s in sets]
        write = [sum(tiers[t].write for t in m) for m in members]
        read = [min((tiers[t].read for t in m), default=0.0) for m in members]
        fits = [np.ones(grid, bool) for _ in sets]
        src = []  # per S: where F[{}] is read from (c - S) and written to (c)
        for s in sets:
            for t in members[s]:
                idx = [slice(None)] * k
                idx[t] = 0
                fits[s][tuple(idx)] = False
            src.append((tuple(slice(0, -1) if t in members[s] else slice(None)
                              for t in range(k)),
                        tuple(slice(1, None) if t in members[s] else slice(None)
                              for t in range(k))))
        for s in sets:
            F[s][fits[s], 1] = forward
        self._shift(shifted, F, src, 1)
        sp = np.full((1 << k, *grid), inf)
        for l in range(2, n + 1):
            adv = forward * np.arange(1, l)
            for s in sets[1:]:
                total = adv + shifted[s][..., l - 1:0:-1] + F[s][..., 1:l]
                j = total.argmin(axis=-1)
                split[s][..., l] = j + 1
                sp[s] = np.take_along_axis(total, j[..., None], -1)[..., 0] + read[s]
            for s in sets:
                best = np.full(grid, inf)
                arg = np.zeros(grid, np.int8)
                for s2 in sets[1:]:
                    cand = write[s2 & ~s] + sp[s2]
                    better = cand < best
                    best[better], arg[better] = cand[better], s2
                best[~fits[s]] = inf
                F[s][..., l], pick[s][..., l] = best, arg
            self._shift(shifted, F, src, l)
        self.F, self.split, self.pick = F, split, pick
        self.members, self.names = members, [t.name for t in tiers]
        self.cheapest = [min(m, key=lambda t: tiers[t].read) if m else -1 for m in members]

    @property
    def nbytes(self) -> int:
        """Bytes of the tables kept (the emitter needs only ``split`` and ``pick``)."""
        return sum(a.nbytes for a in (self.F, self.split, self.pick) if a is not None)

    def emit(self, s: int, a: int, l: int, c: tuple[int, ...]) -> Iterator[Action]:
        """Reverse steps ``a .. a + l - 1`` from the current state ``a``, held in the set ``s``
        of tiers, with slot counts ``c``; the copies of ``a`` are discarded at the end."""
        members, names = self.members, self.names
        stack: list = [(s, a, l, c)]
        while stack:
            item = stack.pop()
            if not isinstance(item, tuple):
                yield item
                continue
            s, a, l, c = item
            if l == 1:
                yield Reverse(a)
                for k in members[s]:
                    yield Discard(a, names[k])
                continue
            s2 = int(self.pick[(s, *c, l)])
            for k in members[s]:  # drop first: the DP counts each set's slots alone
                if not s2 >> k & 1:
                    yield Discard(a, names[k])
            for k in members[s2]:
                if not s >> k & 1:
                    yield Save(a, names[k])
            j = int(self.split[(s2, *c, l)])
            right = tuple(x - (s2 >> k & 1) for k, x in enumerate(c))
            yield Advance(a, a + j)
            stack.append((s2, a, j, c))
            stack.append(Load(a, names[self.cheapest[s2]]))
            stack.append((0, a + j, l - j, right))

    @staticmethod
    def _shift(shifted: np.ndarray, F: np.ndarray, src: list, l: int) -> None:
        for s, (lo, hi) in enumerate(src):
            shifted[s][(*hi, l)] = F[0][(*lo, l)]


class Optimal:
    """The least-time schedule over ``tiers`` (fast first; any slot counts and costs).

    ``tiers`` are :class:`~diffkit.checkpoint.multilevel.Tier` values (name, slots, write,
    read). ``predicted`` is exact: counted on the emitted stream, which replays under
    ``validate``; ``slots`` are the states each tier holds at its peak (at most its slots).

    >>> from diffkit.checkpoint import StepCosts, Tier, validate
    >>> opt = Optimal(8, [Tier("ram", 1), Tier("disk", 2, 4.0, 0.3)], StepCosts(1.0, 1.0))
    >>> round(opt.predicted.time, 6), validate(opt, 8).peak["disk"] <= 2
    (34.6, True)
    """

    def __init__(self, n_steps: int, tiers: Sequence[Tier],
                 costs: StepCosts | None = None) -> None:
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ScheduleError(f"Optimal needs n_steps >= 1 (an int), got {n_steps!r}")
        tiers = tuple(tiers)
        _check_tiers(tiers)
        self.n_steps, self.tiers, self.costs = n_steps, tiers, costs or StepCosts()
        self.limits = {t.name: t.slots for t in tiers}
        self.tapes = 0
        self._t = _Tables(n_steps, tiers, self.costs.forward)
        best = float(self._t.F[(0, *self._t.caps, n_steps)])
        if not np.isfinite(best):
            raise ScheduleError(f"Optimal: no schedule reverses {n_steps} steps with tiers "
                                f"{[t.name for t in tiers]} of {[t.slots for t in tiers]} slots; "
                                "give some tier at least one slot")
        self.optimum = best + self.costs.reverse * n_steps
        self._t.F = None  # the stream reads only the choices
        self.predicted, self.slots = self._count()

    def __repr__(self) -> str:
        held = ", ".join(f"{t.name}={t.slots}" for t in self.tiers)
        return f"Optimal(n_steps={self.n_steps}, {held})"

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    @property
    def nbytes(self) -> int:
        """Bytes this schedule holds while a loop runs it (its choice tables)."""
        return self._t.nbytes

    def actions(self) -> Iterator[Action]:
        """The optimal actions, traced back through the tables with an explicit stack."""
        return self._t.emit(0, 0, self.n_steps, self._t.caps)

    def _count(self) -> tuple[MultiLevelPrediction, dict[str, int]]:
        advances, writes, reads, peak = tally(self.actions(), self.limits)
        c = self.costs
        time = (c.forward * advances + c.reverse * self.n_steps
                + sum(t.write * writes.get(t.name, 0) + t.read * reads.get(t.name, 0)
                      for t in self.tiers))
        return MultiLevelPrediction(self.n_steps, advances, writes, reads, time), peak


def tally(actions: Iterable[Action], tiers: Iterable[str]) -> tuple[int, dict, dict, dict]:
    """Forward advances, saves and loads per tier, and each tier's peak, of a stream."""
    advances, writes, reads = 0, {}, {}
    held = dict.fromkeys(tiers, 0)
    peak = dict(held)
    for act in actions:
        match act:
            case Advance(start, stop):
                advances += stop - start
            case Reverse():
                advances += 1
            case Save(_, tier):
                writes[tier] = writes.get(tier, 0) + 1
                held[tier] += 1
                peak[tier] = max(peak[tier], held[tier])
            case Load(_, tier):
                reads[tier] = reads.get(tier, 0) + 1
            case Discard(_, tier):
                held[tier] -= 1
    return advances, writes, reads, peak


def _check_tiers(tiers: Sequence[Tier]) -> None:
    names = [t.name for t in tiers]
    if not tiers or len(set(names)) != len(names) or len(tiers) > 6:
        raise ScheduleError(f"Optimal needs 1 to 6 tiers with distinct names, got {names}")
    for t in tiers:
        if not isinstance(t.slots, int) or t.slots < 0:
            raise ScheduleError(f"Optimal: tier {t.name!r} has slots={t.slots!r}; use an int "
                                ">= 0")
        if not (0 <= t.write < np.inf and 0 <= t.read < np.inf):
            raise ScheduleError(f"Optimal: tier {t.name!r} costs write={t.write!r}, "
                                f"read={t.read!r}; use finite numbers >= 0")
