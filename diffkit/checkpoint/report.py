"""What a checkpointed gradient actually did, next to what its plan predicted (as text, a dict
or JSON); the reports of the last gradient's loops; a progress bar per sweep; re-plans told
on the ``diffkit`` logger (the planner tells its choices there).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field

from diffkit.checkpoint.planner import budget_label, human_bytes
from diffkit.errors import DiffkitError

__all__ = ["Report", "Progress", "last_report", "last_reports", "plan_dict"]


class _Gradient:
    """The reports of the last gradient: those whose reverse sweeps ran inside the reverse
    sweep of the last top-level loop (nested loops), plus the top-level loops recorded on the
    same transform's trace (loops one after another, or one loop called twice)."""

    def __init__(self) -> None:
        self.depth, self.key, self.reports, self.pending = 0, None, [], []

    def finished(self, report: Report, key: object) -> None:
        if self.depth:  # inside another loop's reverse sweep: it ends after this one
            self.pending.append(report)
            return
        if key is None or key != self.key:
            self.key, self.reports = key, []
        self.reports += [*self.pending, report]
        self.pending = []


_gradient = _Gradient()


def last_report() -> Report | None:
    """The report of the most recent checkpointed loop reversed in this process (or None)."""
    return _gradient.reports[-1] if _gradient.reports else None


def last_reports() -> list[Report]:
    """The reports of every loop of the last gradient, in the order their reverse sweeps
    ended (a nested loop's before its outer loop's; later loops of a function first)."""
    return list(_gradient.reports)


def set_last_report(report: Report, key: object = None) -> None:
    """Record a finished reverse sweep; `key` names the transform (trace) that recorded the
    loop, so that loops of one gradient share one list (None: a gradient of its own)."""
    _gradient.finished(report, key)


@contextlib.contextmanager
def reverse_sweep():
    """Around one loop's reverse sweep: loops reversed inside it belong to its gradient."""
    if not _gradient.depth:
        _gradient.pending = []  # left by a sweep that raised
    _gradient.depth += 1
    try:
        yield
    finally:
        _gradient.depth -= 1


_SCHEDULE_NAMES = {"StoreAll": "store_all", "Periodic": "periodic", "Revolve": "revolve",
                   "Online": "online", "MultiLevel": "multilevel", "Optimal": "multilevel",
                   "Segmented": "multilevel", "OnlineTiered": "online", "Mixed": "mixed"}


def schedule_name(schedule: object) -> str:
    """The budget-file name of a schedule object (``Revolve(...)`` -> ``"revolve"``)."""
    cls = type(schedule).__name__
    return _SCHEDULE_NAMES.get(cls, cls)


def plan_dict(plan) -> dict:
    """A `Plan` as plain data (exact bytes; time in units of one forward step)."""
    b = plan.budget
    return {
        "schedule": schedule_name(plan.schedule), "schedule_repr": repr(plan.schedule),
        "n_steps": plan.n_steps, "slots": dict(plan.slots),
        "forward_advances": plan.forward_advances,
        "recomputation_factor": plan.recomputation_factor, "peak_bytes": plan.peak_bytes,
        "disk_bytes_written": plan.disk_bytes_written, "disk_bytes_read": plan.disk_bytes_read,
        "time_forward_steps": plan.time, "relative_time": plan.relative_time,
        "budget": {"source": b.source, "memory_bytes": b.memory, "schedule": b.schedule,
                   "disk_bytes": b.disk.size if b.disk else None},
    }


@dataclass
class Report:
    """What the executor did, counted as it ran, next to its plan.

    ``held_bytes`` is the exact running total of the RAM snapshots and step tapes the loop
    holds (each counted when kept and when released, with ``tree_nbytes`` and
    ``tape.nbytes()``); ``peak_held`` its maximum; ``peak_bytes`` adds the step working
    set measured on step 0 (``reverse_bytes``), the part the planner cannot see per step.
    """

    plan: object
    state_bytes: int
    work_bytes: int
    reverse_bytes: int = 0
    n_steps: int | None = None
    advances: int = 0
    reversed: int = 0
    peak_snapshots: dict = field(default_factory=dict)
    held_bytes: int = 0
    peak_held: int = 0
    disk_written: int = 0
    disk_read: int = 0
    forward_seconds: float = 0.0
    reverse_seconds: float = 0.0
    replans: int = 0  # forward sweeps restarted because a kept step tape outgrew the plan's
    io_bytes: int = 0  # room for overlapped disk I/O, part of reverse_bytes (`writer`)
    overlapped_writes: int = 0  # disk writes run in the background thread
    read_ahead: int = 0  # disk loads read ahead in the background thread
    resumed_from: int | None = None  # the state a resumed forward sweep restarted from
    compiled: str = "?"  # "compiled: ..." (the step's programs), or why it ran eagerly

    @property
    def peak_bytes(self) -> int:
        """The measured peak of snapshots and tapes held, plus the measured working set."""
        return self.peak_held + self.reverse_bytes

    def hold(self, nbytes: int) -> int:
        """Count `nbytes` more held (negative: released); the new total."""
        self.held_bytes += nbytes
        self.peak_held = max(self.peak_held, self.held_bytes)
        return self.held_bytes

    def to_dict(self) -> dict:
        """The report as plain data: the plan (`plan_dict`) and what was done, bytes exact
        and times in seconds; ``json.dumps`` takes it as is."""
        done = {k: getattr(self, k) for k in (
            "n_steps", "advances", "reversed", "state_bytes", "work_bytes", "reverse_bytes",
            "peak_held", "peak_bytes", "disk_written", "disk_read", "forward_seconds",
            "reverse_seconds", "replans", "io_bytes", "overlapped_writes", "read_ahead",
            "resumed_from", "compiled")}
        return {"plan": plan_dict(self.plan),
                "done": {**done, "peak_snapshots": dict(self.peak_snapshots)}}

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        p = self.plan
        planned_held = None if p.peak_bytes is None else p.peak_bytes - self.reverse_bytes
        total = self.forward_seconds + self.reverse_seconds
        rows = [
            ("", "planned", "done"),
            ("schedule", schedule_name(p.schedule), ""),
            ("budget", budget_label(p.budget), ""),
            ("steps", _v(p.n_steps), _v(self.n_steps)),
            ("forward advances", _v(p.forward_advances), _v(self.advances)),
            ("reversed steps", _v(p.n_steps), _v(self.reversed)),
            ("snapshots per tier", _v(p.slots), _v(self.peak_snapshots)),
            ("peak snapshots + tapes", _b(planned_held), _b(self.peak_held)),
            ("step working set", _b(self.reverse_bytes), "(measured on step 0)"),
            ("peak memory", _b(p.peak_bytes), _b(self.peak_bytes)),
            ("disk written", _b(p.disk_bytes_written), _b(self.disk_written)),
            ("disk read", _b(p.disk_bytes_read), _b(self.disk_read)),
            ("time", _rel(p.relative_time), f"{total:.3f} s ({self.forward_seconds:.3f} s "
                                            f"forward + {self.reverse_seconds:.3f} s reverse)"),
        ]
        rows.append(("step", "", self.compiled))
        if self.io_bytes:
            rows.append(("overlapped I/O", _b(self.io_bytes), f"{self.overlapped_writes} writes "
                         f"in the background, {self.read_ahead} reads ahead"))
        if self.resumed_from is not None:
            rows.append(("resumed", "", f"from state {self.resumed_from} of a killed run"))
        if self.replans:
            rows.append(("re-planned", "", f"{self.replans}x: a step tape outgrew step 0's"))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows if r[2])
        return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() if c else f"{a:<{w0}}  {b}"
                         for a, b, c in rows)


def _v(x) -> str:
    if x is None:
        return "?"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {v}" for k, v in x.items())
    return f"{x:,}" if isinstance(x, int) else str(x)


def _b(n: int | None) -> str:
    return "?" if n is None else human_bytes(n)


def _rel(x: float | None) -> str:
    return "?" if x is None else f"{x:.3f}x store-all"


def log_replan(step: int, nbytes: int, replans: int, why: str = "tape") -> None:
    """Tell at INFO on the ``diffkit`` logger that a loop plans again, and why: a kept tape
    larger than step 0's, or (``why="tracing"``) a compiled step to trace again."""
    log = logging.getLogger("diffkit")
    if why == "tracing":
        log.info("checkpoint re-plan %d: step %d took a new branch of its compiled program; "
                 "planning again with room (%s) to trace it", replans, step, human_bytes(nbytes))
        return
    log.info("checkpoint re-plan %d: step %d's tape keeps %s, more than step 0's; planning again "
             "for tapes of that size", replans, step, human_bytes(nbytes))


class Progress:
    """One progress bar per sweep (forward, then reverse) on stderr, each counting up only:
    steps advanced past in the forward sweep, steps reversed in the reverse sweep (the
    recomputations the reverse sweep needs are counted apart, never as forward steps).

    ``enabled``: False (off), True (always; on a non-terminal as a few plain lines) or
    ``"auto"`` (only when stderr is a terminal). On a terminal a ``tqdm`` bar when tqdm is
    installed (``pip install diffkit[progress]``), else one line redrawn with ``\\r``.
    """

    def __init__(self, enabled: bool | str, total: int | None, file=None):
        if enabled not in (True, False, "auto"):
            raise DiffkitError(f"checkpoint.loop(progress={enabled!r}): use True, False or "
                               f"'auto' (only when stderr is a terminal)")
        self.file = file
        tty = _isatty(self.stream)
        self.enabled = enabled is True or (enabled == "auto" and tty)
        self.tty, self.total, self.phase, self.bar = tty, total, None, None
        self.recomputed = 0

    @property
    def stream(self):
        return self.file if self.file is not None else sys.stderr

    def update(self, phase: str, done: int) -> None:
        """`done` steps of `phase` ("forward" or "reverse"); a "forward" step while the
        reverse sweep runs is a recomputation."""
        if not self.enabled:
            return
        if phase == "forward" and self.phase == "reverse":
            self.recomputed += 1
            self.bar.note(f"recomputed {self.recomputed:,}")
            return
        if phase != self.phase:
            self.start(phase, self.total)
        self.bar.to(done)

    def start(self, phase: str, total: int | None) -> None:
        """Close the current bar and open the one of `phase` with `total` steps."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        self.phase, self.total = phase, total
        make = _tqdm_bar if self.tty and _has_tqdm() else _PlainBar
        self.bar = make(f"diffkit checkpoint: {phase}", total, self.stream, self.tty)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class _tqdm_bar:
    """A tqdm bar that only moves forward (rate and ETA are tqdm's)."""

    def __init__(self, desc: str, total: int | None, stream, tty: bool):
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, total=total, file=stream, unit="step", dynamic_ncols=True,
                        leave=True)

    def to(self, done: int) -> None:
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def note(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self.bar.close()


class _PlainBar:
    """Without tqdm: on a terminal one line redrawn with ``\\r`` at most every 0.2 s; elsewhere
    a newline-terminated line at each quarter of the total (every 10 s when it is unknown)
    and one when the sweep ends."""

    def __init__(self, desc: str, total: int | None, stream, tty: bool):
        self.desc, self.total, self.stream, self.tty = desc, total, stream, tty
        self.n, self.extra, self.t0, self.shown, self.mark = 0, "", time.perf_counter(), -1.0, 0
        self.at = 0.0  # seconds from the start to the last step counted

    def to(self, done: int) -> None:
        if done <= self.n:
            return
        self.n = done
        self.at = now = time.perf_counter() - self.t0
        if self.tty:
            if now - self.shown >= 0.2 or done == self.total:
                self._write("\r" + self._line() + "   ", now)
        elif self.total:
            quarter = 4 * done // self.total
            if self.mark < quarter < 4:  # the last line is close's
                self.mark = quarter
                self._write(self._line() + "\n", now)
        elif now - self.shown >= 10:
            self._write(self._line() + "\n", now)

    def note(self, text: str) -> None:
        self.extra = text

    def _line(self) -> str:
        rate = self.n / self.at if self.at > 0 else 0.0
        line = f"{self.desc} {self.n}{f'/{self.total}' if self.total else ''} steps"
        line += f", {rate:,.0f} steps/s" if rate >= 100 else f", {rate:.3g} steps/s" if rate else ""
        if self.total and rate and self.n < self.total:
            line += f", ETA {(self.total - self.n) / rate:.1f} s"
        return line + (f" ({self.extra})" if self.extra else "")

    def _write(self, text: str, now: float) -> None:
        self.shown = now
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        now = time.perf_counter() - self.t0
        if self.tty:
            self._write("\r" + self._line() + "\n", now)
        else:
            self._write(self._line() + "\n", now)
