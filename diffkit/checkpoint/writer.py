"""Overlapped disk I/O for the storage tiers below RAM: writes run in a background thread while
the next steps compute, and the next load of the action stream is read ahead.

At most one write is in flight (a new one first waits for the previous) and at most one state
is read ahead, so the I/O holds at most two states beyond what the schedule counts:
`io_bytes`, which the executor adds to the plan's working set (`plan_with_io`). A write or
read that failed in the thread raises at the next storage call, naming its step.
``budget.disk.overlap: false`` (or `Executor.overlap_io = False`, for every loop) turns the
overlap off: every write and read in the caller's thread.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from diffkit.checkpoint.actions import RAM, Discard, Load, Reverse, Save
from diffkit.errors import BudgetError, CheckpointStorageError, DiffkitError

__all__ = ["DiskIO", "Lookahead", "action_stream", "io_bytes", "plan_with_io"]

WINDOW = 512  # actions looked ahead for the next Load below RAM (~64 B each)


def io_bytes(state_bytes: int) -> int:
    """What overlapped I/O holds beyond the schedule's own count: the state of the write in
    flight (the executor has moved on from it), the state read ahead, and the window."""
    return 2 * state_bytes + WINDOW * 128


def plan_with_io(make_plan, n, state_bytes, budget, tape, reverse, overlap=True):
    """(plan, io bytes): the plan, made with room for overlapped I/O when the plan without it
    stores states below RAM and the room fits and pays: the plan with room (fewer RAM slots),
    its disk time hidden, is predicted no slower. Otherwise no room (the I/O then runs in the
    caller's thread)."""
    try:
        plain = make_plan(n, state_bytes, budget, step_tape_bytes=tape, reverse_bytes=reverse)
    except BudgetError as e:
        raise _with_io_room(e, state_bytes, budget, tape, reverse, overlap) from None
    if not (overlap and _stores_below_ram(plain) and getattr(budget.disk, "overlap", True)):
        return plain, 0
    io = io_bytes(state_bytes)
    try:
        roomy = make_plan(n, state_bytes, budget, step_tape_bytes=tape, reverse_bytes=reverse + io)
    except BudgetError:
        return plain, 0
    if not _stores_below_ram(roomy):
        return plain, 0
    if plain.time is not None and roomy.time is not None:
        c = budget.costs
        hidden = (c.disk_write * roomy.disk_bytes_written
                  + c.disk_read * roomy.disk_bytes_read) / state_bytes
        if roomy.time - hidden > plain.time:
            return plain, 0
    return roomy, io


def _with_io_room(e: BudgetError, state, budget, tape, reverse, overlap) -> BudgetError:
    """The planner's "no room for one state" error, with the memory overlapped I/O would need
    too when the budget has a tier below RAM: the least that plans runs its I/O in the
    caller's thread."""
    from diffkit.checkpoint.planner import human_bytes, storage_tiers

    need = state + (tape or state) + reverse  # the planner's least: one slot, one step
    if not (overlap and budget.memory < need and storage_tiers(budget)
            and getattr(budget.disk, "overlap", True)):
        return e
    more = need + io_bytes(state)
    return BudgetError(f"{e}; that runs the disk I/O in the caller's thread: overlapping it "
                       f"(one write in flight, one state read ahead) needs at least {more:,} "
                       f"bytes ({human_bytes(more)})")


def _stores_below_ram(p) -> bool:
    return any(v for k, v in p.slots.items() if k != RAM)


class DiskIO:
    """One background thread for a `Storage`: writes and reads in submission order."""

    def __init__(self):
        self._name = f"diffkit-disk-io-{id(self):x}"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        self._writes: dict[tuple, Future] = {}  # (tier, step) -> its write, oldest first
        self._ahead: tuple | None = None  # ((tier, step), Future of the state read ahead)
        self.overlapped = self.read_ahead = 0  # counts, for the report

    def write(self, key, job, done) -> None:
        """Run `job()` (the write of `key`) in the thread once the previous write is done;
        `done(key)` is called in the caller's thread for each completed write, in order."""
        self.reap(done, wait=True)
        self._writes[key] = self._pool.submit(job)
        self.overlapped += 1

    def reap(self, done, wait=False, key=None) -> None:
        """Collect finished writes, oldest first: all of them (`wait`), those up to `key`, or
        those already done; a failed write raises here, naming its step."""
        while self._writes:
            k, f = next(iter(self._writes.items()))
            if not (wait or key in self._writes or f.done()):
                return
            del self._writes[k]
            _result(f, "writing", k)
            done(k)

    def pending(self, key) -> bool:
        return key in self._writes

    def prefetch(self, key, job) -> None:
        self._ahead = (key, self._pool.submit(job))
        self.read_ahead += 1

    @property
    def ahead(self):
        return None if self._ahead is None else self._ahead[0]

    def take(self, key):
        """The state of `key` read ahead, or None if it was not."""
        if self._ahead is None or self._ahead[0] != key:
            return None
        f, self._ahead = self._ahead[1], None
        return (_result(f, "reading", key),)

    def drop(self, key) -> None:
        """Forget a read ahead of `key` (its snapshot is discarded unread)."""
        if self._ahead is not None and self._ahead[0] == key:
            self._ahead[1].cancel()
            self._ahead = None

    def close(self) -> None:
        """Let the running job finish, cancel the queued ones, stop the thread (idempotent).
        Called from that thread (a storage collected there), it does not wait for itself."""
        own = threading.current_thread().name.startswith(self._name)
        self._pool.shutdown(wait=not own, cancel_futures=True)
        self._writes.clear()
        self._ahead = None


def _result(f: Future, what: str, key):
    try:
        return f.result()
    except DiffkitError:
        raise
    except Exception as e:
        tier, step = key
        raise CheckpointStorageError(
            f"{what} the snapshot of step {step} ({tier} tier) failed in the background I/O "
            f"thread: {type(e).__name__}: {e}") from e


def action_stream(actions, storage):
    """The executor's action stream: a plain iterator unless the storage overlaps I/O or
    belongs to a resumable run (then a `Lookahead`, ~0.7 us more per action)."""
    if storage.io is None and storage.run is None:
        return iter(actions)
    return Lookahead(actions, storage)


class Lookahead:
    """An action stream that counts the actions taken (`index`) and, for a storage that
    overlaps I/O, starts reading the next Load below RAM while the actions before it run.
    A Load is read ahead only when no Save or Discard of the same snapshot comes first."""

    def __init__(self, actions, storage, window: int = WINDOW):
        self._it, self._storage = iter(actions), storage
        self._window = window if storage.io is not None else 0
        self._buf: deque = deque()
        self._loads = 0  # Loads below RAM in the window
        self.index, self.reversing = 0, False

    def __iter__(self):
        return self

    def __next__(self):
        buf = self._buf
        while len(buf) <= self._window:
            a = next(self._it, None)
            if a is None:
                break
            buf.append(a)
            self._loads += type(a) is Load and a.tier != RAM
        if not buf:
            raise StopIteration
        action = buf.popleft()
        self.index += 1
        if type(action) is Reverse:
            self.reversing = True
        elif type(action) is Load and action.tier != RAM:
            self._loads -= 1
        if self._window and self._loads and self._storage.io.ahead is None:
            self._prefetch(action)
        return action

    def _prefetch(self, now) -> None:
        """Read ahead the first Load below RAM in the window, unless `now` (the action being
        handed out) or one before it saves or discards that snapshot."""
        for k, a in enumerate(self._buf):
            if type(a) is Load and a.tier != RAM:
                if not any(type(b) in (Save, Discard) and b.tier == a.tier and b.step == a.step
                           for b in (now, *islice(self._buf, k))):
                    self._storage.prefetch(a.step, a.tier)
                return
