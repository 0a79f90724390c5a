"""Two-tier checkpointing: a few slow, large disk slots over fast RAM slots.

The structure is the two-level scheme of Stumm & Walther 2009 ("MultiStage approaches for
optimal offline checkpointing", SIAM J. Sci. Comput. 31(3)) and of disk-revolve / H-Revolve
(Herrmann & Pallez 2020, "H-Revolve: a framework for adjoint computation on synchronous
hierarchical platforms", ACM TOMS 46(2)): the steps are cut into segments at ``d_0 = 0 < d_1 <
... < d_m``; segment starts are checkpointed on disk, and each segment is reversed, from its
start, with binomial checkpointing in RAM.

When the disk holds one state per segment (``m <= disk slots``), the first sweep writes
``d_0 .. d_{m-1}``, the last segment is reversed at once and each earlier one is read back.
Segment lengths come from water-filling: the predicted time of a segment of ``l`` steps is
``forward * T(l, s_ram)`` (Revolve's closed form) plus, for every segment but the last, the
first-sweep advance and one disk write and read; its marginal cost per step is piecewise
constant, ``forward * (r(l) + 2)`` (``+ 1`` for the last), so the optimal lengths follow by
water-filling on the repetition level in O(log n) per ``m``, and ``m`` is scanned. This equals
the O(n^2) dynamic programme over the same partitions (:func:`partition_dp`, the reference the
tests compare with).

When the disk slots bind, more segments than slots pay off: the segments are then scheduled
as the steps of a Revolve with the disk slots (a segment's "taping" is its RAM Revolve), so
disk slots are rewritten during the reverse sweep and some starts are re-read -- the two-level
binomial of Stumm & Walther and the Disk-Revolve structure (Aupy et al. 2016). A segment
advanced ``a`` times by that schedule has marginal cost ``a + 1 + r(l)``, so its lengths are
water-filled the same way, per ``a``; the segment count is searched (:meth:`MultiLevel.
_best_macro`) and kept only where it beats the one-slot-per-segment plan.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from math import comb

from diffkit.checkpoint.actions import Action, Advance, Discard, Reverse, Save
from diffkit.checkpoint.revolve import Revolve, _split, predict, reverse_segment
from diffkit.errors import ScheduleError

__all__ = ["Tier", "StepCosts", "MultiLevel", "MultiLevelPrediction", "partition_dp"]


@dataclass(frozen=True, slots=True)
class Tier:
    """A storage tier: its name, slots (states it may hold) and per-state write/read cost."""

    name: str
    slots: int
    write: float = 0.0
    read: float = 0.0


@dataclass(frozen=True, slots=True)
class StepCosts:
    """Cost of one untaped forward step and of one step's VJP (relative units)."""

    forward: float = 1.0
    reverse: float = 2.0


@dataclass(frozen=True, slots=True)
class MultiLevelPrediction:
    """Predicted counts and time of a ``MultiLevel`` schedule."""

    n_steps: int
    forward_advances: int
    writes: dict[str, int]
    reads: dict[str, int]
    time: float

    @property
    def recomputation_factor(self) -> float:
        """Forward advances per step."""
        return self.forward_advances / self.n_steps


def _segment_advances(lengths: Sequence[int], ram: int) -> int:
    """First-sweep advances over all but the last segment plus each segment's Revolve
    (water-filled lengths take few distinct values: one prediction per value)."""
    return sum(lengths[:-1]) + sum(
        count * predict(l, ram).forward_advances for l, count in Counter(lengths).items())


def _time(lengths: Sequence[int], ram: Tier, disk: Tier, costs: StepCosts) -> float:
    m = len(lengths) - 1
    advances = _segment_advances(lengths, ram.slots)
    return (costs.forward * advances + costs.reverse * sum(lengths)
            + m * (disk.write + disk.read) + (2 * m + 1) * (ram.write + ram.read))


def _water_fill(n: int, m: int, ram: int) -> list[int]:
    """Lengths of ``m`` disk-started segments and the last one minimizing total advances."""
    def caps(k: int) -> tuple[int, int]:  # lengths at repetition level k: (non-last, last)
        return (comb(ram + k, ram) if k >= 0 else 0), comb(ram + k + 1, ram)

    k = -1
    while m * caps(k)[0] + caps(k)[1] < n:
        k += 1
    lo_nl, lo_last = caps(k - 1)
    lengths = [max(lo_nl, 1)] * m + [lo_last]
    spare = n - sum(lengths)
    hi_nl, hi_last = caps(k)
    for j in range(m + 1):  # fill at the same marginal cost, earlier segments first
        room = (hi_nl if j < m else hi_last) - lengths[j]
        add = min(max(room, 0), spare)
        lengths[j] += add
        spare -= add
    while spare < 0:  # the >= 1 floor overshot n: take back from the last segments
        j = max(i for i in range(m + 1) if lengths[i] > 1)
        take = min(lengths[j] - 1, -spare)
        lengths[j] -= take
        spare += take
    return lengths


class MultiLevel:
    """Disk checkpoints over segments, Revolve in RAM within each segment.

    ``tiers`` is ``(ram, disk)``: ``Tier`` values (fast first). Every state is saved and
    discarded explicitly, so no tier ever holds more than its slots. ``lengths`` are the
    segments' step counts; with more segments than disk slots they are scheduled by Revolve
    over segments (:func:`_macro_time`).

    >>> from diffkit.checkpoint import validate
    >>> ml = MultiLevel(1000, [Tier("ram", 4), Tier("disk", 10, 2.0, 2.0)])
    >>> validate(ml, 1000).forward_advances == ml.predicted.forward_advances
    True
    """

    def __init__(self, n_steps: int, tiers: Sequence[Tier],
                 costs: StepCosts | None = None) -> None:
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ScheduleError(f"MultiLevel needs n_steps >= 1 (an int), got {n_steps!r}")
        if len(tiers) != 2 or tiers[0].slots < 1 or tiers[1].slots < 0:
            raise ScheduleError(f"MultiLevel needs two tiers (ram with >= 1 slot, disk), got "
                                f"{list(tiers)!r}; more than two tiers are not supported yet")
        self.n_steps, self.costs = n_steps, costs or StepCosts()
        self.ram, self.disk = tiers
        self.lengths = self._best_lengths()
        m = len(self.lengths) - 1
        time, advances, writes, reads = (
            _time(self.lengths, self.ram, self.disk, self.costs),
            _segment_advances(self.lengths, self.ram.slots), m, m)
        macro = self._best_macro(time) if m == self.disk.slots else None
        if macro is not None:
            time, advances, writes, reads, self.lengths = macro
            m = len(self.lengths) - 1
        self.slots = {self.ram.name: self.ram.slots, self.disk.name: min(m, self.disk.slots)}
        self.tapes = 0
        self.predicted = MultiLevelPrediction(
            n_steps, advances, {self.disk.name: writes}, {self.disk.name: reads}, time)

    def __repr__(self) -> str:
        return (f"MultiLevel(n_steps={self.n_steps}, ram={self.ram.slots}, "
                f"disk={self.disk.slots}, segments={len(self.lengths)})")

    def _best_lengths(self) -> list[int]:
        """Water-filled lengths for the best count m of disk checkpoints (at most one per
        disk slot). The time is roughly unimodal in m: a geometric scan (x1.25) until it
        exceeds 1.5x the best so far, then every count between the best's neighbours (at
        most 64 of them). Planning stays fast when the disk has millions of slots."""
        top = min(self.disk.slots, self.n_steps - 1)
        cache: dict[int, tuple[float, list[int]]] = {}

        def at(m: int) -> float:
            if m not in cache:
                lengths = _water_fill(self.n_steps, m, self.ram.slots)
                cache[m] = (_time(lengths, self.ram, self.disk, self.costs), lengths)
            return cache[m][0]

        grid, m = [], 0
        while m <= top:
            grid.append(m)
            if at(m) > 1.5 * min(at(g) for g in grid):
                break
            m = max(m + 1, int(m * 1.25))
        if grid[-1] < top and m > top:  # the scan stepped over the last count: try it
            grid.append(top)
            at(top)
        i = min(range(len(grid)), key=lambda k: at(grid[k]))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        for m in range(lo, hi + 1, max(1, (hi - lo) // 64)):
            at(m)
        best = min(cache, key=lambda k: (cache[k][0], k))
        return cache[best][1]

    def _best_macro(self, time: float) -> tuple[float, int, int, int, list[int]] | None:
        """More segments than disk slots, if some count beats ``time``: (time, advances,
        disk writes, disk reads, lengths), else None.

        The predicted time over the segment count ``M`` is roughly unimodal: a geometric scan
        (x1.25) up to where it exceeds 1.5x the best so far, then up to 64 evenly spaced
        counts between the best's neighbours.
        """
        n, sd = self.n_steps, self.disk.slots
        if sd < 1 or n <= sd + 1:
            return None
        memo: dict = {}
        cache: dict[int, tuple] = {}

        def at(segments: int) -> tuple:
            if segments not in cache:
                cache[segments] = _macro_time(n, segments, self.ram, self.disk, self.costs,
                                              memo)
            return cache[segments]

        grid, segments = [], sd + 2
        while segments <= n:
            grid.append(segments)
            if at(segments)[0] > 1.5 * min(at(g)[0] for g in grid):
                break
            segments = max(segments + 1, int(segments * 1.25))
        i = min(range(len(grid)), key=lambda k: at(grid[k])[0])
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        for segments in range(lo, hi + 1, max(1, (hi - lo) // 64)):
            at(segments)
        best = min(cache, key=lambda k: (cache[k][0], k))
        t, advances, writes, reads, level = cache[best]
        if t >= time:
            return None
        return t, advances, writes, reads, _macro_lengths(n, best, self.ram.slots, sd, level)

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    def actions(self) -> Iterator[Action]:
        """Revolve over the segments with the disk slots; each segment reversed by Revolve in
        RAM from its start (current when the segment-level schedule reverses it)."""
        ram, disk, s = self.ram.name, self.disk.name, self.ram.slots
        bounds = array("q", accumulate(self.lengths, initial=0))  # compact: may be long
        segments = len(self.lengths)
        if segments == 1:
            yield from _ram_segment(0, self.n_steps, s, ram, current=0)
            return
        for x in Revolve(segments, self.disk.slots, disk).actions():
            kind = type(x)
            if kind is Reverse:
                a = bounds[x.step]
                yield from _ram_segment(a, bounds[x.step + 1], s, ram, current=a)
            elif kind is Advance:
                yield Advance(bounds[x.start], bounds[x.stop])
            else:
                yield kind(bounds[x.step], disk)


def _frame_counts(l: int, s: int, memo: dict) -> tuple[tuple[int, ...], int, int]:
    """Revolve over ``l`` segments with ``s`` slots from a saved, current start: how many
    segments are advanced (untaped) ``k`` times for each ``k`` (a tuple indexed by ``k``), the
    saves and the loads. Follows the splits of :func:`reverse_segment` (memoized on
    ``(l, s)``, iteratively: the left chain can be thousands of frames deep)."""
    stack = [(l, s)]
    while stack:
        key = stack[-1]
        if key in memo:
            stack.pop()
            continue
        fl, fs = key
        if fl == 1:
            memo[key] = ((1,), 0, 0)
        elif fs == 1:  # re-advance from the start for every segment, last first
            memo[key] = ((1,) * fl, 0, fl - 1)
        else:
            m = _split(fl, fs)
            need = [(m, fs)] + ([(fl - m, fs - 1)] if fl - m > 1 else [])
            missing = [k for k in need if k not in memo]
            if missing:
                stack.extend(missing)
                continue
            left, left_saves, left_loads = memo[(m, fs)]
            right, right_saves, right_loads = (
                memo[(fl - m, fs - 1)] if fl - m > 1 else ((1,), -1, 0))
            hist = [0, *left]  # the left part is advanced once more, here
            hist += [0] * (len(right) - len(hist))
            for k, c in enumerate(right):
                hist[k] += c
            # the right part starts current (+1 save unless one step); the left needs a load
            memo[key] = (tuple(hist), left_saves + right_saves + 1, left_loads + right_loads + 1)
        stack.pop()
    return memo[(l, s)]


def _caps(level: int, advanced: int, ram: int) -> int:
    """Longest segment advanced ``advanced`` times whose last step's marginal cost
    (``advanced + 1 + r(l)`` advances: Revolve's slope) is at most ``level`` (at least 1)."""
    k = level - 1 - advanced
    return comb(ram + k, ram) if k >= 0 else 1


def _macro_time(n: int, segments: int, ram: Tier, disk: Tier, costs: StepCosts,
                memo: dict) -> tuple[float, int, int, int, int]:
    """Predicted (time, advances, disk writes, disk reads, level) of ``segments`` segments
    scheduled by Revolve with the disk slots, lengths water-filled.

    A segment advanced ``a`` times (untaped) and reversed by Revolve in RAM costs ``a l +
    t(l, ram)`` advances; its marginal cost ``a + 1 + r(l)`` is nondecreasing in ``l``, so
    the optimal lengths fill every segment up to one marginal cost ``level`` (grouped by
    ``a``: only the histogram matters), the spare steps costing ``level`` each.
    """
    hist, saves, loads = _frame_counts(segments, disk.slots, memo)
    saves += 1  # state 0 on disk
    s = ram.slots

    def total(level: int) -> int:
        return sum(c * _caps(level, a, s) for a, c in enumerate(hist) if c)

    lo, hi = 0, 1
    while total(hi) < n:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if total(mid) < n else (lo, mid)
    level = hi if total(lo) < n else lo
    advances = level * (n - total(level - 1))
    for a, c in enumerate(hist):
        if c:
            l = _caps(level - 1, a, s)
            advances += c * (a * l + predict(l, s).forward_advances)
    m = segments - 1
    time = (costs.forward * advances + costs.reverse * n + disk.write * saves
            + disk.read * loads + (2 * m + 1) * (ram.write + ram.read))
    return time, advances, saves, loads, level


def _macro_lengths(n: int, segments: int, ram: int, disk: int, level: int) -> list[int]:
    """The water-filled lengths of :func:`_macro_time`, segment by segment (spare steps to
    the earliest segments that have room at ``level``)."""
    advanced = [0] * segments
    stack = [(0, segments, disk, 0)]
    while stack:  # each segment's untaped advances, along the splits of _frame_counts
        off, l, s, add = stack.pop()
        if l == 1:
            advanced[off] = add
        elif s == 1:
            advanced[off:off + l] = range(add + l - 1, add - 1, -1)
        else:
            m = _split(l, s)
            stack.append((off, m, s, add + 1))
            stack.append((off + m, l - m, s - 1, add))
    lengths = [_caps(level - 1, a, ram) for a in advanced]
    spare = n - sum(lengths)
    for j, a in enumerate(advanced):
        if spare == 0:
            break
        add = min(_caps(level, a, ram) - lengths[j], spare)
        lengths[j] += add
        spare -= add
    return lengths


def _ram_segment(a: int, b: int, s: int, tier: str, current: int) -> Iterator[Action]:
    if b - a == 1:
        yield Reverse(a)
        return
    yield Save(a, tier)
    yield from reverse_segment(a, b, s, tier, current)
    yield Discard(a, tier)


def partition_dp(n: int, ram: Tier, disk: Tier, costs: StepCosts) -> float:
    """The O(n^2 * disk slots) dynamic programme over the same segmentations (reference).

    ``best[k][x]``: least time to handle the first ``x`` steps as ``k`` disk-started segments;
    the answer adds the last segment. Used by the tests (optimality) and the benchmark (speed).
    """
    f, tr = costs.forward, ram.write + ram.read
    seg = [0.0] + [f * (l + predict(l, ram.slots).forward_advances) + disk.write + disk.read
                   + 2 * tr for l in range(1, n + 1)]
    last = [0.0] + [f * predict(l, ram.slots).forward_advances + tr for l in range(1, n + 1)]
    prev = [0.0] + [float("inf")] * n
    best = last[n]
    for _ in range(min(disk.slots, n - 1)):
        cur = [float("inf")] * (n + 1)
        for x in range(1, n):
            cur[x] = min(prev[y] + seg[x - y] for y in range(x))
        best = min(best, min(cur[x] + last[n - x] for x in range(1, n)))
        prev = cur
    return best + costs.reverse * n
