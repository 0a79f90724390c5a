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

Planning never visits segments one by one: how many segments Revolve advances ``a`` times is
a closed form (binomial below its top two levels, :func:`~diffkit.checkpoint.revolve._profile`),
so is its save count, and the water-filling sums over that profile are Vandermonde sums of
``O(min(slots, r))`` terms (:func:`_conv`). One segment count is costed in ``O(log n)`` such
sums, and each search costs at most ~160 counts, whatever ``n`` and the disk size. The action
stream walks the same splits and places segments by those sums (:func:`_disk_level`), keeping
``O(disk slots + r)`` frames, never a per-segment array.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from math import comb

from diffkit.checkpoint.actions import Action, Advance, Discard, Load, Reverse, Save
from diffkit.checkpoint.revolve import _profile, _save_count, _split, predict, reverse_segment
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
    """Reference: first-sweep advances over all but the last segment plus each segment's
    Revolve, for explicit lengths with one disk slot per segment (tests, benchmark)."""
    return sum(lengths) - lengths[-1] + sum(
        count * predict(l, ram).forward_advances for l, count in Counter(lengths).items())


def _time(lengths: Sequence[int], ram: Tier, disk: Tier, costs: StepCosts) -> float:
    """Reference: predicted time of explicit lengths with one disk slot per segment."""
    m = len(lengths) - 1
    advances = _segment_advances(lengths, ram.slots)
    return (costs.forward * advances + costs.reverse * sum(lengths)
            + m * (disk.write + disk.read) + (2 * m + 1) * (ram.write + ram.read))


def _water_fill(n: int, m: int, ram: int) -> list[int]:
    """Reference: lengths of ``m`` disk-started segments and the last one minimizing total
    advances, segment by segment (what :class:`_Segments` gives in closed form)."""
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
    return lengths


def _conv(p: int, k: int, q: int, j: int) -> int:
    """``sum(C(a + p, p) * C(q + j - a, q) for a in range(k + 1))`` for ``0 <= k <= j``.

    Hockey-stick sums turn it into ``p + 2`` binomials (Vandermonde's identity, truncated),
    so it costs ``O(min(p, k))`` operations, never ``O(k)`` for a large ``k``.
    """
    if p <= k:
        return comb(q + p + j + 1, q + p + 1) - sum(
            comb(q + i + j - k, q + i + 1) * comb(k + p - i, p - i) for i in range(p + 1))
    left, right, total = 1, comb(q + j, q), 0
    for a in range(k + 1):
        total += left * right
        left = left * (a + p + 1) // (a + 1)
        right = right * (j - a) // (q + j - a)
    return total


class _Profile:
    """How many of ``l`` segments a Revolve with ``s`` slots advances ``a`` times (untaped):
    ``C(a + s - 1, s - 1)`` for ``a <= r - 2``, then ``x`` and ``y`` (closed forms, O(1) state)."""

    __slots__ = ("l", "s", "r", "x", "y", "below")

    def __init__(self, l: int, s: int) -> None:
        self.l, self.s = l, s
        self.r, self.x, self.y = _profile(l, s)
        self.below = self.r - 2  # the binomial levels are 0 .. r - 2

    def count_from(self, lo: int) -> int:
        """Segments advanced at least ``lo`` times."""
        k = min(lo - 1, self.below)
        under = (comb(k + self.s, self.s) if k >= 0 else 0) + (self.x if self.r - 1 < lo else 0)
        return self.l - under - (self.y if self.r < lo else 0)

    def moment_from(self, lo: int) -> int:
        """Total advances of the segments advanced at least ``lo`` times."""
        r, s, k = self.r, self.s, min(lo - 1, self.below)
        total = r * self.l - comb(s + r, r - 1) if r else 0
        under = (s * comb(k + s, s + 1) if k >= 0 else 0) + ((r - 1) * self.x if r - 1 < lo else 0)
        return total - under - (r * self.y if r < lo else 0)

    def weighted(self, q: int, j: int) -> int:
        """``sum(H[a] * C(q + j - a, q) for a <= j)`` over the profile ``H``."""
        r, k = self.r, min(j, self.below)
        out = _conv(self.s - 1, k, q, j) if k >= 0 else 0
        if 0 <= r - 1 <= j:
            out += self.x * comb(q + j - r + 1, q)
        if r <= j:
            out += self.y * comb(q + j - r, q)
        return out

    def total(self, level: int, ram: int) -> int:
        """Steps the segments hold at marginal cost ``level``: a segment advanced ``a`` times
        holds ``C(ram + level - 1 - a, ram)`` steps (Revolve's level), at least one."""
        return self.weighted(ram, level - 1) + self.count_from(level)


class _Segments:
    """Segment lengths of a plan, in closed form: ``count`` segments whose starts a Revolve with
    ``slots`` disk slots handles, each reversed by Revolve in ``ram`` slots.

    A segment advanced ``a`` times (untaped) costs ``a + 1 + r(l)`` advances per step at the
    margin, so the optimal lengths fill each segment to one marginal cost ``level``:
    ``base(a)`` steps each, and the ``spare`` rest (each costing ``level``) to the earliest
    segments, up to ``base(a) + room(a)``. With one slot per segment (``count <= slots + 1``)
    this is the water-filling of the first-sweep plan. Iterating yields the lengths (O(count));
    everything else is O(log n) closed-form sums over the profile.
    """

    def __init__(self, n: int, count: int, slots: int, ram: int) -> None:
        self.n, self.count, self.slots, self.ram = n, count, slots, ram
        profile = _Profile(count, slots)
        lo, hi = 0, 1
        while profile.total(hi, ram) < n:
            lo, hi = hi, 2 * hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if profile.total(mid, ram) < n else (lo, mid)
        level = self.level = hi if profile.total(lo, ram) < n else lo
        held = profile.total(level - 1, ram)
        self.spare = n - held
        # each segment: a * base + Revolve(base) = (level - 1) base - C(ram + k, ram + 1),
        # k = level - 2 - a >= 0; a + 1 when it holds one step; the spare steps: level each
        self.advances = (level * self.spare + (level - 1) * held
                         - profile.weighted(ram + 1, level - 3) + profile.moment_from(level - 1)
                         + (2 - level) * profile.count_from(level - 1))
        self.saves = _save_count(count, slots)
        self.loads = count - 1
        self._caps: dict[int, tuple[int, int]] = {}
        self._sums: dict[tuple[int, int, int], tuple[int, int]] = {}

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        room = 0
        for a in _advance_counts(self.count, self.slots):
            yield self.length(a, room)
            room += self.caps(a)[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (Sequence, _Segments)):
            return NotImplemented
        return len(other) == self.count and all(x == y for x, y in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_Segments(n={self.n}, count={self.count}, level={self.level})"

    def caps(self, a: int) -> tuple[int, int]:
        """``(base, room)`` of a segment advanced ``a`` times."""
        got = self._caps.get(a)
        if got is None:
            k = self.level - 2 - a
            base = comb(self.ram + k, self.ram) if k >= 0 else 1
            top = comb(self.ram + k + 1, self.ram) if k >= -1 else 1
            got = self._caps[a] = (base, top - base)
        return got

    def length(self, a: int, room_before: int) -> int:
        """Steps of a segment advanced ``a`` times after segments with ``room_before`` room."""
        base, room = self.caps(a)
        return base + min(room, max(self.spare - room_before, 0))

    def span(self, l: int, s: int, add: int, room_before: int) -> tuple[int, int]:
        """``(steps, room)`` of the ``l`` segments a Revolve with ``s`` slots handles, each
        advanced ``add`` more times, after segments with ``room_before`` room (O(log n))."""
        key = (l, s, add)
        sums = self._sums.get(key)
        if sums is None:
            if len(self._sums) > 1 << 14:  # bounded, whatever the stream's length
                self._sums.clear()
            profile = _Profile(l, s)
            base = profile.total(self.level - 1 - add, self.ram)
            sums = self._sums[key] = (base, profile.total(self.level - add, self.ram) - base)
        base, room = sums
        return base + min(room, max(self.spare - room_before, 0)), room


def _advance_counts(count: int, slots: int) -> Iterator[int]:
    """Untaped advances of each of ``count`` segments (in order) under a Revolve with
    ``slots`` slots, along :func:`_split`'s splits (the left part is advanced once more)."""
    stack = [(count, slots, 0)]
    while stack:
        l, s, add = stack.pop()
        if l == 1:
            yield add
        elif s == 1:
            yield from range(add + l - 1, add - 1, -1)
        elif s >= l - 1:  # a slot per segment: every split is after the first segment
            yield from repeat(add + 1, l - 1)
            yield add
        else:
            m = _split(l, s)
            stack.append((l - m, s - 1, add))
            stack.append((m, s, add + 1))


def _scan(first: int, last: int, cost: Callable[[int], float], close: bool) -> int:
    """The count in ``first..last`` of least ``cost`` (ties: the smaller), searched as cost is
    roughly unimodal: a geometric scan (x1.25) until the cost exceeds 1.5x the best so far
    (``close``: plus ``last`` if the scan stepped over it), then up to 64 evenly spaced counts
    between the best's neighbours. At most ~2 log_1.25(last) + 66 calls of ``cost``."""
    seen: dict[int, float] = {}

    def at(k: int) -> float:
        if k not in seen:
            seen[k] = cost(k)
        return seen[k]

    grid, k = [], first
    while k <= last:
        grid.append(k)
        if at(k) > 1.5 * min(at(g) for g in grid):
            break
        k = max(k + 1, int(k * 1.25))
    if close and grid[-1] < last < k:
        grid.append(last)
        at(last)
    i = min(range(len(grid)), key=lambda j: at(grid[j]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for k in range(lo, hi + 1, max(1, (hi - lo) // 64)):
        at(k)
    return min(seen, key=lambda j: (seen[j], j))


class MultiLevel:
    """Disk checkpoints over segments, Revolve in RAM within each segment.

    ``tiers`` is ``(ram, disk)``: ``Tier`` values (fast first). Every state is saved and
    discarded explicitly, so no tier ever holds more than its slots. ``lengths`` are the
    segments' step counts (iterable, with ``len``; never materialized); with more segments
    than disk slots they are scheduled by Revolve over segments.

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
        seg = self._best_lengths()
        m = seg.count - 1
        time, writes, reads = self._unbound_time(seg), m, m
        macro = self._best_macro(time) if m == self.disk.slots else None
        if macro is not None:
            seg, time = macro, self._macro_time(macro)
            writes, reads = macro.saves + 1, macro.loads  # + 1: state 0 on disk
            m = seg.count - 1
        self.lengths = seg
        self.slots = {self.ram.name: self.ram.slots, self.disk.name: min(m, self.disk.slots)}
        self.tapes = 0
        self.predicted = MultiLevelPrediction(
            n_steps, seg.advances, {self.disk.name: writes}, {self.disk.name: reads}, time)

    nbytes = 0  # no tables: its plan is closed forms (the stream's frames are stream_bytes')

    def __repr__(self) -> str:
        return (f"MultiLevel(n_steps={self.n_steps}, {self.ram.name}={self.ram.slots}, "
                f"{self.disk.name}={self.disk.slots}, segments={len(self.lengths)})")

    def _segments(self, count: int) -> _Segments:
        return _Segments(self.n_steps, count, self.disk.slots, self.ram.slots)

    def _unbound_time(self, seg: _Segments) -> float:
        """Predicted time with one disk slot per segment start (first-sweep writes)."""
        c, m, ram = self.costs, seg.count - 1, self.ram
        return (c.forward * seg.advances + c.reverse * self.n_steps
                + m * (self.disk.write + self.disk.read) + (2 * m + 1) * (ram.write + ram.read))

    def _macro_time(self, seg: _Segments) -> float:
        """Predicted time when a Revolve over the disk slots handles the segment starts."""
        c, m, ram, disk = self.costs, seg.count - 1, self.ram, self.disk
        return (c.forward * seg.advances + c.reverse * self.n_steps
                + disk.write * (seg.saves + 1) + disk.read * seg.loads
                + (2 * m + 1) * (ram.write + ram.read))

    def _best_lengths(self) -> _Segments:
        """Water-filled lengths for the best count m of disk checkpoints (at most one per
        disk slot), searched by :func:`_scan` (O(log n) counts, each costed in closed form)."""
        top = min(self.disk.slots, self.n_steps - 1)
        best = _scan(0, top, lambda m: self._unbound_time(self._segments(m + 1)), close=True)
        return self._segments(best + 1)

    def _best_macro(self, time: float) -> _Segments | None:
        """More segments than disk slots, if some count (searched by :func:`_scan`) beats
        ``time``, else None."""
        n, sd = self.n_steps, self.disk.slots
        if sd < 1 or n <= sd + 1:
            return None
        best = self._segments(_scan(sd + 2, n, lambda k: self._macro_time(self._segments(k)),
                                    close=False))
        return best if self._macro_time(best) < time else None

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    def actions(self) -> Iterator[Action]:
        """Revolve over the segments with the disk slots; each segment reversed by Revolve in
        RAM from its start (current when the segment-level schedule reverses it)."""
        ram, s = self.ram.name, self.ram.slots
        if len(self.lengths) == 1:
            return iter(_ram_segment(0, self.n_steps, s, ram))
        disk = self.disk.name
        return chain.from_iterable(chain(((Save(0, disk),),),
                                         _disk_level(self.lengths, s, ram, disk),
                                         ((Discard(0, disk),),)))


def _disk_level(seg: _Segments, s: int, ram: str, disk: str) -> Iterator[Iterable[Action]]:
    """The actions of ``Revolve(len(seg), seg.slots, disk)`` over segments (the same splits as
    :func:`~diffkit.checkpoint.revolve._reference_actions`), placed at the segments' steps
    and with each segment-level ``Reverse`` replaced by the segment's RAM Revolve.

    Frames carry their first segment's step and the room before it, so a split's step is one
    :meth:`_Segments.span`; runs handled by one slot, or by a slot each, are walked directly.
    Yields chunks of actions (flattened in C by :meth:`MultiLevel.actions`).
    """
    frames: list = [(0, seg.count, seg.slots, 0, 0, 0)]  # a, b, slots, advanced, step, room
    current = 0
    while frames:
        item = frames.pop()
        if type(item) is int:
            yield (Discard(item, disk),)
            continue
        a, b, k, add, pos, room = item
        done = False
        while b - a > 1:
            if k == 1 or k >= b - a - 1:
                run = _one_slot if k == 1 else _slot_each
                yield from run(seg, b - a, add, pos, room, current == a, s, ram, disk)
                done = True
                break
            m = a + _split(b - a, k)
            steps, extra = seg.span(m - a, k, add + 1, room)
            pm, rm = pos + steps, room + extra
            if current != a:
                yield (Load(pos, disk),)
            yield (Advance(pos, pm),)
            if b - m == 1:  # one segment right of m: reverse it now, no need to save m
                yield _ram_segment(pm, pm + seg.length(add, rm), s, ram)
                current, b, add = -1, m, add + 1
                continue
            yield (Save(pm, disk),)
            frames.append((a, m, k, add + 1, pos, room))
            frames.append(pm)
            a, k, current, pos, room = m, k - 1, m, pm, rm
        if not done:
            if current != a:
                yield (Load(pos, disk),)
            yield _ram_segment(pos, pos + seg.length(add, room), s, ram)
        current = -1


def _slot_each(seg: _Segments, l: int, add: int, pos: int, room: int, loaded: bool, s: int,
               ram: str, disk: str) -> Iterator[Iterable[Action]]:
    """``l`` segments with a disk slot each (Revolve splits after the first every time):
    advance and save each start, reverse the last, then load, reverse and free each other."""
    extra = seg.caps(add + 1)[1]  # all but the last segment are advanced add + 1 times
    if not loaded:
        yield (Load(pos, disk),)
    p, r = pos, room
    for i in range(l - 1):
        q = p + seg.length(add + 1, r)
        yield (Advance(p, q),)
        if i < l - 2:
            yield (Save(q, disk),)
        p, r = q, r + extra
    yield _ram_segment(p, p + seg.length(add, r), s, ram)
    for i in range(l - 2, -1, -1):
        r -= extra
        q = p - seg.length(add + 1, r)
        yield (Load(q, disk),)
        yield _ram_segment(q, p, s, ram)
        if i:
            yield (Discard(q, disk),)
        p = q


def _one_slot(seg: _Segments, l: int, add: int, pos: int, room: int, loaded: bool, s: int,
              ram: str, disk: str) -> Iterator[Iterable[Action]]:
    """``l`` segments with one slot, the first's: re-advance from it to every segment, last
    first (segment ``i`` is advanced ``add + l - 1 - i`` times)."""
    steps, extra = seg.span(l, 1, add, room)
    p, r = pos + steps, room + extra  # the end of segment i, the room before segment i + 1
    for i in range(l - 1, 0, -1):
        a = add + l - 1 - i
        r -= seg.caps(a)[1]
        q = p - seg.length(a, r)
        if not loaded:
            yield (Load(pos, disk),)
        loaded = False
        yield (Advance(pos, q),)
        yield _ram_segment(q, p, s, ram)
        p = q
    yield (Load(pos, disk),)
    yield _ram_segment(pos, p, s, ram)


def _ram_segment(a: int, b: int, s: int, tier: str) -> Iterable[Action]:
    """Reverse steps ``b - 1 .. a`` by Revolve in RAM from the current state ``a``."""
    if b - a == 1:
        return (Reverse(a),)
    return chain((Save(a, tier),), reverse_segment(a, b, s, tier, a), (Discard(a, tier),))


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
