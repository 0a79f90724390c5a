"""Large loops over several tiers: segment starts in the slowest tier, each segment exact.

The exact dynamic programme (:mod:`diffkit.checkpoint.optimal`) is quadratic in ``n``. With
room in the slowest tier for every segment start, optimal schedules write that tier only in
the first sweep (as Disk-Revolve's, Aupy et al. 2016): the first sweep saves the start of
each segment there, the last segment is reversed at once, and each earlier segment is loaded
back and reversed by the exact schedule of the other tiers plus its own start's slot (which
may re-read the start instead of recomputing, or keep it in two tiers). So the time is::

    sum over segments  h(l) = l forward + write + read + E(l)     (E: the exact segment cost)
    + the last segment's exact cost,

and the best segmentation is a one-dimensional min-plus programme over lengths ``l <= L``,
``L`` as large as the tables allow in :data:`SEG_WORK`. Up to ``4 L`` steps it is solved
exactly; beyond, segments of the length ``l*`` of least ``h(l) / l`` are repeated and the
exact programme places the rest (the same cost for every ``n`` tried against the exact DP;
``tests/checkpoint/test_segmented.py``). Against the exact optimum on ``n <= 1000`` with
unlimited disk this is 1.00000 where MultiLevel is up to 1.10 (one RAM slot, write = read =
50). When the slowest tier cannot hold a start for every segment wanted, all its slots start
segments of near-equal lengths (if the tables reach them); else the plan is MultiLevel's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import chain

import numpy as np

from diffkit.checkpoint.actions import Action, Advance, Load, Save
from diffkit.checkpoint.multilevel import MultiLevelPrediction, StepCosts, Tier
from diffkit.checkpoint.optimal import PLAN_CELLS, _cells, _Tables, dp_work, tally

__all__ = ["Segmented", "segment_costs", "SEG_WORK"]

SEG_WORK = 2e7  # table work for the segment costs (~0.05-0.1 s)


class Segmented:
    """Segment starts in ``tiers[-1]`` (first sweep), each segment reversed exactly.

    ``runs`` lists the non-last segments as ``(length, count)`` runs (never one entry per
    segment), ``last`` is the last segment's length. ``Segmented.make`` returns None when no
    such plan fits (too few slots in the slowest tier).

    >>> from diffkit.checkpoint import Tier, validate
    >>> seg = Segmented.make(10**4, [Tier("ram", 1), Tier("disk", 10**6, 50.0, 50.0)])
    >>> validate(seg, 10**4).forward_advances == seg.predicted.forward_advances
    True
    """

    def __init__(self, n_steps: int, tiers: Sequence[Tier], costs: StepCosts,
                 table: _Tables, runs: list[tuple[int, int]], last: int) -> None:
        self.n_steps, self.tiers, self.costs = n_steps, tuple(tiers), costs
        self.runs, self.last, self._t = runs, last, table
        self.tapes = 0
        top = len(tiers) - 1
        self._held = 1 << top  # the segment's start, held in the slowest tier
        self._caps = table.caps  # the slowest tier: 1 slot, the start's
        self.predicted, self.slots = self._count()

    @property
    def nbytes(self) -> int:
        """Bytes this schedule holds while a loop runs it (its segment tables)."""
        return self._t.nbytes

    @property
    def segments(self) -> int:
        """Segments whose start the slowest tier holds (all but the last)."""
        return sum(k for _, k in self.runs)

    def __repr__(self) -> str:
        held = ", ".join(f"{t.name}={t.slots}" for t in self.tiers)
        return f"Segmented(n_steps={self.n_steps}, {held}, segments={self.segments + 1})"

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    @classmethod
    def make(cls, n_steps: int, tiers: Sequence[Tier],
             costs: StepCosts | None = None) -> Segmented | None:
        """The best segmented plan, or None if it needs more slots than ``tiers[-1]`` has."""
        costs = costs or StepCosts()
        top = tiers[-1]
        if n_steps < 2 or top.slots < 1:
            return None
        made = segment_costs(n_steps, tuple(tiers), costs)
        if made is None:
            return None
        table, seg = made
        last = table.F[(0, *table.caps)]
        plan = _segmentation(n_steps, seg, last)
        if plan is not None and sum(k for _, k in plan[0]) >= top.slots:
            plan = _equal_segments(n_steps, seg, last, top.slots - 1)
        return None if plan is None else cls(n_steps, tiers, costs, table, *plan)

    def starts(self) -> Iterator[tuple[int, int]]:
        """``(start, length)`` of each non-last segment, in order."""
        a = 0
        for length, count in self.runs:
            for _ in range(count):
                yield a, length
                a += length

    def actions(self) -> Iterator[Action]:
        """First sweep saving each start, the last segment, then each segment loaded back."""
        name, t = self.tiers[-1].name, self._t
        sweep = chain.from_iterable((Save(a, name), Advance(a, a + l)) for a, l in self.starts())
        start = self.n_steps - self.last
        back = chain.from_iterable(chain((Load(a, name),), t.emit(self._held, a, l, self._caps))
                                   for a, l in _reversed(self.runs, start))
        return chain(sweep, t.emit(0, start, self.last, self._caps), back)

    def _count(self) -> tuple[MultiLevelPrediction, dict[str, int]]:
        """Counts from one segment of each length, times how often it occurs (exact)."""
        names = [x.name for x in self.tiers]
        top = names[-1]
        adv, writes, reads, peak = tally(self._t.emit(0, 0, self.last, self._caps), names)
        m = self.segments
        peak[top] += m  # the starts held through the last segment
        for length, count in self.runs:
            a, w, r, p = tally(self._t.emit(self._held, 0, length, self._caps), names)
            adv += count * (a + length)
            for k in names:
                writes[k] = writes.get(k, 0) + count * w.get(k, 0)
                reads[k] = reads.get(k, 0) + count * r.get(k, 0)
                peak[k] = max(peak[k], p[k] + (m if k == top else 0))
        writes[top] = writes.get(top, 0) + m
        reads[top] = reads.get(top, 0) + m
        c = self.costs
        time = (c.forward * adv + c.reverse * self.n_steps
                + sum(t.write * writes.get(t.name, 0) + t.read * reads.get(t.name, 0)
                      for t in self.tiers))
        writes = {k: v for k, v in writes.items() if v}
        reads = {k: v for k, v in reads.items() if v}
        return MultiLevelPrediction(self.n_steps, adv, writes, reads, time), peak


def segment_costs(n: int, tiers: tuple[Tier, ...], costs: StepCosts
                  ) -> tuple[_Tables, np.ndarray] | None:
    """Exact tables for segments of up to ``L <= n`` steps (``L`` as :data:`SEG_WORK`
    allows) whose start the slowest tier holds, and ``h(l)``: a segment's time, first-sweep
    advance and its start's write and read included (``h[0]`` is inf). None if ``L < 2``.
    Cached by ``L`` (read-only results): plans for other ``n`` over the same tiers reuse them."""
    top = tiers[-1]
    inner = (*tiers[:-1], Tier(top.name, 1, top.write, top.read))
    length = _longest(n, inner)
    return _segment_costs(length, inner, costs) if length >= 2 else None


@lru_cache(maxsize=16)
def _segment_costs(length: int, inner: tuple[Tier, ...], costs: StepCosts
                   ) -> tuple[_Tables, np.ndarray]:
    top = inner[-1]
    table = _Tables(length, inner, costs.forward)
    held = 1 << (len(inner) - 1)
    seg = (costs.forward * np.arange(length + 1) + top.write + top.read
           + table.F[(held, *table.caps)])
    seg[0] = np.inf
    return table, seg


def _reversed(runs: list[tuple[int, int]], end: int) -> Iterator[tuple[int, int]]:
    """``(start, length)`` of the non-last segments from the last to the first."""
    b = end
    for length, count in reversed(runs):
        for _ in range(count):
            b -= length
            yield b, length


def _longest(n: int, tiers: Sequence[Tier]) -> int:
    """The longest segment length ``<= n`` whose tables fit :data:`SEG_WORK` and the cells."""
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if dp_work(mid, tiers) <= SEG_WORK and _cells(mid, tiers) <= PLAN_CELLS:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _segmentation(n: int, seg: np.ndarray, last: np.ndarray
                  ) -> tuple[list[tuple[int, int]], int] | None:
    """Non-last segment runs and the last length of least ``sum seg[l] + last[l_last]``.

    Exact min-plus programme up to ``4 L`` steps; beyond, ``k`` segments of the length of
    least cost per step, then the exact programme over the remaining ``4 L - l* < x <= 4 L``.
    """
    length = len(seg) - 1
    span = min(n, 4 * length)
    best = np.full(span + 1, np.inf)
    choice = np.zeros(span + 1, np.int64)
    best[0] = 0.0
    for x in range(1, span + 1):
        lo = max(0, x - length)
        cand = best[lo:x][::-1] + seg[1:x - lo + 1]  # cand[i]: a last segment of i + 1 steps
        i = int(cand.argmin())
        best[x], choice[x] = cand[i], i + 1
    star = int(np.argmin(seg[1:] / np.arange(1, length + 1))) + 1
    repeat = 0 if n <= span else -(-(n - span) // star)
    rest = n - repeat * star
    ends = np.arange(1, min(rest, length) + 1)
    total = best[rest - ends] + last[ends]
    if not np.isfinite(total.min()):
        return None
    tail = int(ends[int(total.argmin())])
    counts: dict[int, int] = {}
    x = rest - tail
    while x:
        counts[int(choice[x])] = counts.get(int(choice[x]), 0) + 1
        x -= int(choice[x])
    if repeat:
        counts[star] = counts.get(star, 0) + repeat
    return sorted(counts.items()), tail


def _equal_segments(n: int, seg: np.ndarray, last: np.ndarray, count: int
                    ) -> tuple[list[tuple[int, int]], int] | None:
    """``count`` non-last segments of near-equal lengths (``q`` or ``q + 1``) and the best
    last length, when the slowest tier cannot hold a start for every segment the
    unconstrained plan wants (it wants more, so ``count`` is all of them). None if they
    would be longer than the tables."""
    if count < 1:
        return None
    length, best = len(seg) - 1, None
    for tail in range(1, min(length, n - count) + 1):
        q, extra = divmod(n - tail, count)
        if q + (extra > 0) > length:
            continue
        total = extra * seg[q + 1] + (count - extra) * seg[q] + last[tail]
        if best is None or total < best[0]:
            best = (total, q, extra, tail)
    if best is None or not np.isfinite(best[0]):
        return None
    _, q, extra, tail = best
    return [(q, count - extra), *([(q + 1, extra)] if extra else [])], tail
