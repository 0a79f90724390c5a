"""Online checkpointing: the number of steps is learnt only when the loop stops.

Adaptive time stepping and ``while_loop`` decide to stop on the fly, so the schedule must
place its ``s`` checkpoints during the forward sweep without knowing ``n``. The placement
follows the structure of the optimal online schemes of Stumm & Walther 2010 ("New algorithms
for optimal online checkpointing", SIAM J. Sci. Comput. 32(2)) and, beyond their range, the
level-by-level thinning of Wang, Moin & Iaccarino 2009 ("Minimal repetition dynamic
checkpointing algorithm for unsteady adjoint calculation", SIAM J. Sci. Comput. 31(4)):

* Once all ``s`` slots are full, checkpoint ``j`` starts a *segment* reversed later with
  ``s - j`` slots; reversing ``l`` steps with ``σ`` slots costs Revolve's closed form, whose
  marginal cost per step grows by one at each length ``C(σ + R - 1, σ)``. An offline-optimal
  configuration has every segment within ``cap_R(σ) = C(σ + R - 1, σ)``, ``R`` being the
  repetition level reached so far.
* When the last segment (one slot, cap ``R``) is full, the current state is saved and the
  leftmost checkpoint whose two neighbouring segments fit into one capped segment is discarded;
  segments are thus filled left to right. When no pair fits, ``R`` grows by one.

For ``n <= C(s + 2, 2)`` this gives exactly the offline optimum (the tests check every such n
for s <= 30). Beyond, the ratio to the offline optimum is measured, not bounded: up to
``C(s + 3, 3)`` it reaches 1.08 (s <= 5), 1.13 (s = 12), 1.23 (s = 40); the benchmark prints
the grid. (The 1.05 target of Stumm & Walther's r = 3 scheme is not reached yet.)
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
from math import comb

from diffkit.checkpoint.actions import RAM, Action, Advance, Discard, Reverse, Save
from diffkit.checkpoint.revolve import predict, reverse_segment
from diffkit.errors import ScheduleError

__all__ = ["Online"]


class Online:
    """Checkpoint a loop of unknown length with ``snapshots`` slots (state 0's included).

    >>> sched = Online(3)
    >>> [str(a) for i in range(6) for a in sched.forward_step(i)]
    ['Save(0, ram)', 'Save(1, ram)', 'Save(2, ram)', 'Discard(1, ram)', 'Save(3, ram)', \
'Discard(2, ram)', 'Save(4, ram)']
    >>> from diffkit.checkpoint import validate
    >>> validate(Online(3), 9).forward_advances  # = predict(9, 3): C(5, 2) >= 9
    22
    """

    n_steps = None  # unknown until reverse(n): validate calls actions(n)

    def __init__(self, snapshots: int, tier: str = RAM) -> None:
        if not isinstance(snapshots, int) or snapshots < 1:
            raise ScheduleError(f"Online needs snapshots >= 1 (an int), got {snapshots!r}")
        self.snapshots, self.tier = snapshots, tier
        self.slots = {tier: snapshots}
        self.tapes = 0
        self.points: list[int] = []  # checkpointed states, ascending; points[0] == 0
        self.level = 2  # R: segments are capped at C(σ + R - 1, σ)
        self._from = 1  # leftmost checkpoint that may still be mergeable at this level
        self._next = 0  # the step forward_step expects next

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
        # Level 2 saves eagerly (any capped configuration is then optimal, and eager merges let
        # tail segments grow past the one-slot cap); higher levels save only when forced.
        if s == 1 or (self.level > 2 and i - points[-1] <= self.level):
            return ()
        j = self._mergeable(prev)
        while j is None:
            if i - points[-1] <= self.level:
                return ()
            self.level += 1
            self._from = 1
            j = self._mergeable(prev)
        dropped = points.pop(j)
        points.append(prev)
        self._from = max(1, j - 1)
        return (Discard(dropped, self.tier), Save(prev, self.tier))

    def _mergeable(self, new: int) -> int | None:
        """Leftmost ``j >= 1`` whose removal merges two segments into one within the cap.

        ``new`` is the checkpoint about to be appended, the right end of the last segment.
        """
        points, s, level = self.points, self.snapshots, self.level
        for j in range(self._from, len(points)):
            right = points[j + 1] if j + 1 < len(points) else new
            sigma = s - (j - 1)
            if right - points[j - 1] <= comb(sigma + level - 1, sigma):
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
        fresh = Online(self.snapshots, self.tier)
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
