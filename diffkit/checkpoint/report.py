"""What a checkpointed gradient actually did, next to what its plan predicted; and an
optional progress line for the forward and reverse sweeps."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

__all__ = ["Report", "Progress", "last_report"]

_last: Report | None = None


def last_report() -> Report | None:
    """The report of the most recent checkpointed gradient in this process (or None)."""
    return _last


def set_last_report(report: Report) -> None:
    global _last
    _last = report


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

    @property
    def peak_bytes(self) -> int:
        """The measured peak of snapshots and tapes held, plus the measured working set."""
        return self.peak_held + self.reverse_bytes

    def hold(self, nbytes: int) -> int:
        """Count `nbytes` more held (negative: released); the new total."""
        self.held_bytes += nbytes
        self.peak_held = max(self.peak_held, self.held_bytes)
        return self.held_bytes

    def __str__(self) -> str:
        p = self.plan
        planned_held = None if p.peak_bytes is None else p.peak_bytes - self.reverse_bytes
        rows = [
            ("", "planned", "done"),
            ("steps", _v(p.n_steps), _v(self.n_steps)),
            ("forward advances", _v(p.forward_advances), _v(self.advances)),
            ("reversed steps", _v(p.n_steps), _v(self.reversed)),
            ("snapshots per tier", _v(p.slots), _v(self.peak_snapshots)),
            ("peak snapshots + tapes", _v(planned_held), _v(self.peak_held)),
            ("step working set", _v(self.reverse_bytes), "(measured on step 0)"),
            ("peak bytes", _v(p.peak_bytes), _v(self.peak_bytes)),
            ("disk written", _v(p.disk_bytes_written), _v(self.disk_written)),
            ("disk read", _v(p.disk_bytes_read), _v(self.disk_read)),
            ("time (s)", "", f"{self.forward_seconds:.3f} fwd + {self.reverse_seconds:.3f} rev"),
        ]
        if self.replans:
            rows.append(("re-planned", "", f"{self.replans}x: a step tape outgrew step 0's"))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows)


def _v(x) -> str:
    if x is None:
        return "?"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {v}" for k, v in x.items())
    return f"{x:,}" if isinstance(x, int) else str(x)


class Progress:
    """A one-line progress display on stderr, redrawn at most every 0.2 s (off: no-op)."""

    def __init__(self, enabled: bool, total: int | None):
        self.enabled, self.total, self._last = enabled, total, 0.0

    def update(self, phase: str, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.2 and done != self.total:
            return
        self._last = now
        total = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\rdiffkit checkpoint: {phase} {done}{total} steps   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
