"""Online checkpointing: the number of steps is learnt only when the loop stops.

Adaptive time stepping and ``while_loop`` decide to stop on the fly, so the schedule must
place its ``s`` checkpoints during the forward sweep without knowing ``n``. The placement
follows the structure of the optimal online schemes of Stumm & Walther 2010 ("New algorithms
for optimal online checkpointing", SIAM J. Sci. Comput. 32(2)) and, beyond their range, moves
one checkpoint at a time as the dynamic checkpointing of Wang, Moin & Iaccarino 2009 ("Minimal
repetition dynamic checkpointing algorithm for unsteady adjoint calculation", SIAM J. Sci.
Comput. 31(4)) does, choosing the move by its cost:

* Once all ``s`` slots are full, checkpoint ``j`` starts a *segment* reversed later with
  ``s - j`` slots; reversing ``l`` steps with ``σ`` slots costs Revolve's closed form, whose
  marginal cost per step grows by one at each length ``C(σ + R - 1, σ)``. An offline-optimal
  configuration has every segment within ``cap_R(σ) = C(σ + R - 1, σ)``, ``R`` being the
  repetition level reached so far.
* Up to step ``C(s + 2, 2)`` (repetition level 2): when the last segment (one slot) is full,
  the current state is saved and the leftmost checkpoint whose two neighbouring segments fit
  into one capped segment is discarded. This is exactly optimal for every ``n <= C(s+2, 2)``
  (tested for s <= 30), as Stumm & Walther's r = 2 algorithm.
* From then on, a greedy rule: at each step, keep the configuration or drop one checkpoint
  (merging its two segments, every later segment gaining a slot) for the kept previous state,
  whichever minimizes the cost of stopping right after this step; ties move. Exhaustive search
  over all online decision sequences gives the same worst ratio for s = 2, 3 (1.0455, 1.0303)
  on ``n <= C(s+3, 3)``; the tests check <= 1.05 there for s <= 30, and the benchmark prints
  the grid, ``n <= C(s+4, 4)`` included (~1.02-1.04 for s >= 6).
* For s = 2..5 the moves up to ``TABLE_RANGE[s]`` steps are a table (:data:`TABLES`) found
  by searching every configuration sequence (``benchmarks/online_search.py``): the least
  worst ratio any online schedule of this protocol reaches there, the offline optimum kept
  for ``n <= C(s+2, 2)``: 1.075 for s = 2 on n <= 15 (the greedy rule: 1.100), 1.0353 for
  s = 3 on n <= 35 (1.0435), 1.0216 for s = 4 on n <= 70 (1.0270), 1.0156 for s = 5 on
  n <= 56 (1.0260). The greedy rule takes over after the table. (s = 6 reaches 1.0119 on
  n <= 84, against 1.0233, but the greedy rule after that table's end is worse on n <= 210,
  1.041 against 1.032, so s = 6 has no table.)
At the end, each segment is reversed with offline Revolve using the slots freed so far.

Executor contract (a ``while_loop``)::

    sched = Online(snapshots)
    i = 0
    while cond(state):
        for action in sched.forward_step(i):   # Discard(j, tier) / Save(i - 1, tier): the
            execute(action)                     # previous state, still kept (see forward_step)
        keep = state; state = step(state); i += 1   # untaped; keep the input of this step
    for action in sched.reverse(i):   # starts with Reverse(i - 1) from `keep` (current state)
        execute(action)

The step that produced the final state is run untaped once more than offline Revolve would,
because the loop learns it was the last only after running it; ``actions(n)`` (the stream the
validator replays) leaves that step out, so its counts compare with the offline optimum.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from math import comb

from diffkit.checkpoint.actions import RAM, Action, Advance, Discard, Reverse, Save
from diffkit.checkpoint.revolve import predict, reverse_segment
from diffkit.errors import ScheduleError

__all__ = ["Online"]


TABLE_RANGE = {2: 15, 3: 35, 4: 70, 5: 56}  # s: the n <= N each table is best for
TABLES = {  # benchmarks/online_search.py: one digit per step from s + 1 (0: keep, j: drop j)
    2: "010010001000",
    3: "0101200100012220000012220200000",
    4: "01010102300200020013002000233000002000300001330300002330000300000",
    5: "01010110202034003000300140003400140002440344440000",
}


@lru_cache(maxsize=1 << 12)
def _cost(steps: int, snaps: int) -> int:
    """Forward advances to reverse ``steps`` steps with ``snaps`` slots (Revolve's optimum)."""
    return predict(steps, snaps).forward_advances if steps > 0 else 0


class Online:
    """Checkpoint a loop of unknown length with ``snapshots`` slots (state 0's included).

    >>> sched = Online(3)
    >>> [str(a) for i in range(6) for a in sched.forward_step(i)]
    ['Save(0, ram)', 'Save(1, ram)', 'Save(2, ram)', 'Discard(1, ram)', 'Save(4, ram)']
    >>> from diffkit.checkpoint import validate
    >>> validate(Online(3), 9).forward_advances  # = predict(9, 3): C(5, 2) >= 9
    22
    """

    n_steps = None  # unknown until reverse(n): validate calls actions(n)
    nbytes = 0  # no tables (its cost cache is bounded and counted in stream_bytes)

    def __init__(self, snapshots: int, tier: str = RAM) -> None:
        if not isinstance(snapshots, int) or snapshots < 1:
            raise ScheduleError(f"Online needs snapshots >= 1 (an int), got {snapshots!r}")
        self.snapshots, self.tier = snapshots, tier
        self.slots = {tier: snapshots}
        self.tapes = 0
        self.points: list[int] = []  # checkpointed states, ascending; points[0] == 0
        self._from = 1  # leftmost checkpoint that may still be mergeable (level 2)
        self._next = 0  # the step forward_step expects next
        self._exact = comb(snapshots + 2, 2)  # from step C(s+2, 2) on: the greedy move
        self._best: tuple[float, int | None] | None = None  # cached min_j D_j (see _greedy)
        self._valid = 1  # _best_drop's entries below this index are still up to date
        self._prefix = [0] * snapshots
        self._prefix_min: list[tuple[int, int]] = [(0, 0)] * snapshots

    def __repr__(self) -> str:
        return f"Online(snapshots={self.snapshots}, tier={self.tier!r})"

    def forward_step(self, i: int) -> tuple[Action, ...]:
        """Called when step ``i`` is about to run (so ``n > i``); says what to keep.

        The executor holds the current state ``i`` and, for ``i >= 1``, the input ``i - 1``
        of the step it just ran. The answer is ``()`` or ``(Discard(j, tier), ...,
        Save(i - 1, tier))``: saving the *kept previous* state, one step late, is what makes
        the schedule exact -- state ``i - 1`` is worth a slot only if the loop goes on past
        it, which is known only now. The executor then drops state ``i - 1`` and runs step i.
        """
        if i != self._next:
            raise ScheduleError(f"Online.forward_step({i}) called out of order: expected "
                                f"step {self._next} (call it once per step, from 0)")
        self._next = i + 1
        s, points, prev = self.snapshots, self.points, i - 1
        if i == 0:
            return ()
        if len(points) < s:
            points.append(prev)
            return (Save(prev, self.tier),)
        moves = TABLES.get(s, "")
        if i - s - 1 < len(moves):  # the searched best moves for a small s
            j = int(moves[i - s - 1])
            return () if j == 0 else self._move(j, prev)
        if i >= self._exact:
            return self._greedy(i)
        # Saves eagerly: any capped configuration is optimal here, and eager merges let tail
        # segments grow past the one-slot cap.
        j = self._mergeable(prev) if s > 1 else None
        return () if j is None else self._move(j, prev)

    def _move(self, j: int, prev: int) -> tuple[Action, ...]:
        dropped = self.points.pop(j)
        self.points.append(prev)
        self._from = max(1, j - 1)
        self._best = None
        self._valid = min(self._valid, max(1, j - 1))
        return (Discard(dropped, self.tier), Save(prev, self.tier))

    def _greedy(self, i: int) -> tuple[Action, ...]:
        """Beyond ``C(s+2, 2)``: the move that minimizes the cost if the loop stopped after i.

        Dropping checkpoint ``j`` merges segments ``j-1, j`` and gives every later segment one
        slot more; for ``j < s - 1`` that change, ``D_j``, does not depend on ``i``, so the best
        ``D_j`` is found once per move (O(s)) and each step compares three costs.
        """
        points, s, prev = self.points, self.snapshots, i - 1
        if s == 1:
            return ()
        if self._best is None:
            self._best = self._best_drop()
        last = points[-1]
        stay = _cost(i - last, 1)  # no move: the last segment grows to end at i
        tail = _cost(prev - last, 2) + 1  # old last segment gets 2 slots; new one is 1 step
        best_d, best_j = self._best
        move_last = _cost(prev - points[-2], 2) - _cost(last - points[-2], 2) + 1
        if move_last <= best_d + tail and move_last <= stay:
            return self._move(s - 1, prev)
        if best_j is not None and best_d + tail <= stay:
            return self._move(best_j, prev)
        return ()

    def _best_drop(self) -> tuple[float, int | None]:
        """``min_j D_j`` over ``1 <= j < s - 1`` (the last checkpoint is priced per step).

        ``D_j = merged_j + P[s-2] - P[j]``: ``merged_j`` the cost change of merging segments
        ``j-1, j``, ``P`` the prefix sums of each segment's change when it gets one slot more.
        ``merged_j - P[j]`` and its prefix minima depend on segments up to ``j`` only, so after
        dropping checkpoint ``k`` only the entries from ``k - 1`` on are recomputed.
        """
        points, s, P, pre = self.points, self.snapshots, self._prefix, self._prefix_min
        for j in range(self._valid, s - 1):
            l0, l1 = points[j] - points[j - 1], points[j + 1] - points[j]
            P[j] = P[j - 1] + _cost(l1, s - j + 1) - _cost(l1, s - j)
            e = _cost(l0 + l1, s - j + 1) - _cost(l0, s - j + 1) - _cost(l1, s - j) - P[j]
            pre[j] = pre[j - 1] if j > 1 and pre[j - 1][0] <= e else (e, j)
        self._valid = max(s - 1, 1)
        if s < 3:  # no checkpoint but the last one may go
            return (float("inf"), None)
        e, j = pre[s - 2]
        return (e + P[s - 2], j)

    def _mergeable(self, new: int) -> int | None:
        """Leftmost ``j >= 1`` whose removal merges two segments into one within the cap.

        ``new`` is the checkpoint about to be appended, the right end of the last segment.
        """
        points, s = self.points, self.snapshots
        for j in range(self._from, len(points)):
            right = points[j + 1] if j + 1 < len(points) else new
            sigma = s - (j - 1)
            if right - points[j - 1] <= sigma + 1:  # cap_2(σ) = C(σ + 1, σ)
                return j
        return None

    def reverse(self, n: int) -> Iterator[Action]:
        """The reverse sweep once the loop stopped after ``n`` steps (current state: ``n - 1``)."""
        if n != self._next or n < 1:
            raise ScheduleError(f"Online.reverse({n}) after {self._next} forward steps: "
                                f"pass the number of steps run ({self._next})")
        return self._reverse(n, list(self.points))

    def _reverse(self, n: int, points: list[int]) -> Iterator[Action]:
        yield Reverse(n - 1)
        ends = [*points[1:], n - 1]
        for j in range(len(points) - 1, -1, -1):
            if ends[j] > points[j]:
                yield from reverse_segment(points[j], ends[j], self.snapshots - j, self.tier)
            yield Discard(points[j], self.tier)

    def actions(self, n_steps: int) -> Iterator[Action]:
        """The whole stream for a loop of ``n_steps`` steps, from a fresh copy (for validate).

        A late ``Save(i - 1)`` of the live protocol appears here before the advance past
        ``i - 1``; untaped advances between saves are merged into one ``Advance``.
        """
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ScheduleError(f"Online.actions needs n_steps >= 1 (an int), got {n_steps!r}")
        return whole_stream(Online(self.snapshots, self.tier), n_steps)

    def count(self, n_steps: int) -> int:
        """Forward advances of ``actions(n_steps)`` from the closed form, without the stream."""
        fresh = Online(self.snapshots, self.tier)
        for i in range(n_steps):
            fresh.forward_step(i)
        points = fresh.points
        ends = [*points[1:], n_steps - 1][: len(points)]
        total = n_steps  # the untaped sweep to n - 1, plus taping step n - 1
        for j, (a, b) in enumerate(zip(points, ends, strict=True)):
            if b > a:
                total += predict(b - a, self.snapshots - j).forward_advances
        return total


def whole_stream(fresh, n_steps: int) -> Iterator[Action]:
    """The actions an online schedule `fresh` (just started) gives a loop of `n_steps`
    steps: its forward steps, untaped advances between saves merged into one `Advance`,
    then its reverse sweep."""
    fresh.forward_step(0)
    start = 0  # a pending untaped advance from `start`, emitted as one action
    for i in range(1, n_steps):
        todo = fresh.forward_step(i)
        if todo:
            if start < i - 1:
                yield Advance(start, i - 1)
                start = i - 1
            yield from todo
    if start < n_steps - 1:
        yield Advance(start, n_steps - 1)
    yield from fresh.reverse(n_steps)
