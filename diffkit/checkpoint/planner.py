"""The planner: a budget and a state size in, a schedule with its predicted cost out.

Memory model (bytes): the executor's *working set* while it runs one step is
``work = step_tape_bytes`` -- what the tape of one step keeps (its input state when its rules
read it; a linear step keeps almost nothing; ``step_tape_bytes = 0`` means unknown and is
taken as one state) -- plus
``reverse_bytes``, what reversing one step creates beyond its tape (its cotangents; once,
whatever the schedule). Each RAM slot holds one state. So a schedule with ``s`` RAM slots
peaks at ``s * state_bytes + work + reverse_bytes``, and store-all, which keeps every
step's tape, needs ``n * work + reverse_bytes``. The minimum any schedule needs
is one slot plus the working set; a smaller budget is a ``BudgetError`` saying how much.

``auto`` picks the fitting schedule of least predicted time (store-all whenever it fits,
then Periodic with the fastest fitting period, Revolve, :class:`~diffkit.checkpoint.mixed.Mixed`
(states or step tapes, in RAM-only budgets where its dynamic programme is small enough:
:func:`~diffkit.checkpoint.mixed.feasible`) or, with tiers below RAM, the best
multi-tier plan: the exact :class:`~diffkit.checkpoint.optimal.Optimal` where its dynamic
programme is small enough (:func:`~diffkit.checkpoint.optimal.feasible`), else the faster of
:class:`~diffkit.checkpoint.segmented.Segmented` and
:class:`~diffkit.checkpoint.multilevel.MultiLevel` over RAM and the best single tier); with
``n_steps=None`` (a while loop) Online, or with tiers below RAM OnlineTiered over RAM and the
slowest tier.
Predicted time is in units of one forward step: ``forward * advances + reverse * n`` plus each
tier's writes and reads at its costs; ``relative_time`` divides it by store-all's
``(forward + reverse) * n``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from diffkit.checkpoint.actions import DISK, RAM, Action
from diffkit.checkpoint.baselines import Periodic, StoreAll
from diffkit.checkpoint.budget import Budget, StorageTier, load_budget
from diffkit.checkpoint.mixed import Mixed
from diffkit.checkpoint.mixed import feasible as mixed_feasible
from diffkit.checkpoint.multilevel import MultiLevel, StepCosts, Tier
from diffkit.checkpoint.online import Online
from diffkit.checkpoint.online_tiers import OnlineTiered
from diffkit.checkpoint.optimal import Optimal, feasible
from diffkit.checkpoint.revolve import Revolve
from diffkit.checkpoint.segmented import Segmented
from diffkit.errors import BudgetError

__all__ = ["Plan", "plan", "candidates", "tiered_schedule", "stream_bytes", "human_bytes",
           "budget_label", "storage_tiers"]

log = logging.getLogger("diffkit")


@dataclass(frozen=True, slots=True)
class Plan:
    """A schedule and what it will cost, known before anything runs."""

    schedule: object
    n_steps: int | None
    slots: dict[str, int]
    forward_advances: int | None
    recomputation_factor: float | None
    peak_bytes: int
    disk_bytes_written: int
    disk_bytes_read: int
    time: float | None
    relative_time: float | None
    budget: Budget

    def actions(self) -> Iterator[Action]:
        """The schedule's actions (offline schedules only; Online is driven step by step)."""
        return self.schedule.actions()

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    def __str__(self) -> str:
        rows = [("schedule", repr(self.schedule)), ("budget", budget_label(self.budget)),
                ("steps", _fmt(self.n_steps, "unknown (online)")),
                ("slots", ", ".join(f"{k}: {v}" for k, v in self.slots.items())),
                ("forward advances", _fmt(self.forward_advances)),
                ("recomputation factor", _fmt(self.recomputation_factor, fmt="{:.3f}")),
                ("peak memory", human_bytes(self.peak_bytes)),
                ("disk written / read", f"{human_bytes(self.disk_bytes_written)} / "
                                        f"{human_bytes(self.disk_bytes_read)}"),
                ("predicted time", _fmt(self.relative_time, fmt="{:.3f}x store-all's")
                 + _fmt(self.time, "", " ({:,.0f} forward-step times)"))]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _fmt(value: object, missing: str = "n/a", fmt: str = "{:,}") -> str:
    return missing if value is None else fmt.format(value)


def human_bytes(n: int) -> str:
    """`n` bytes in binary units with two decimals (``72139528`` -> ``"68.80 MiB"``)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def budget_label(budget: Budget) -> str:
    """Where a budget came from and its memory, for text (never a bare ``<dict>``)."""
    src = {"<dict>": "from a dict", "<default>": "the default"}.get(budget.source, budget.source)
    tiers = "".join(f", {t.name} {human_bytes(t.size)}" for t in storage_tiers(budget))
    return f"{src} (memory {human_bytes(budget.memory)}{tiers})"


def storage_tiers(budget: Budget) -> tuple[StorageTier, ...]:
    """The budget's tiers below RAM, fastest first (a Budget built with only ``disk`` has the
    one tier named ``"disk"``, at the budget's disk costs)."""
    if budget.tiers or budget.disk is None:
        return budget.tiers
    c = budget.costs
    return (StorageTier(DISK, budget.disk.path, budget.disk.size, c.disk_write, c.disk_read),)


def _explain(options: dict[str, Plan], chosen: Plan, forced: bool) -> None:
    """Tell at INFO on the ``diffkit`` logger which schedule was chosen and why."""
    if not log.isEnabledFor(logging.INFO):
        return
    why = ("forced by budget.schedule" if forced else "the only one for an unknown step count"
           if chosen.n_steps is None else "least predicted time of those that fit: " + ", ".join(
               f"{k} {_fmt(p.relative_time, fmt='{:.3f}x')}" for k, p in options.items()))
    log.info("checkpoint plan: %r (%s); slots %s, peak %s, recomputation factor %s; budget %s",
             chosen.schedule, why, chosen.slots, human_bytes(chosen.peak_bytes),
             _fmt(chosen.recomputation_factor, fmt="{:.3f}"), budget_label(chosen.budget))


def plan(n_steps: int | None, state_bytes: int, budget: Budget | str | dict | None = None,
         step_tape_bytes: int = 0, reverse_bytes: int = 0, state0_held: bool = False) -> Plan:
    """Choose and cost a schedule for ``n_steps`` steps (``None``: unknown, Online).
    ``state0_held``: the caller holds state 0 throughout (a loop keeps its argument), so a
    RAM snapshot of it, a reference, takes no memory: one RAM slot is free.

    >>> p = plan(100_000, 8 * 2**20, {"budget": {"memory": "2GiB"}}, step_tape_bytes=16 * 2**20)
    >>> type(p.schedule).__name__, p.slots
    ('Revolve', {'ram': 254})
    """
    budget = budget if isinstance(budget, Budget) else load_budget(budget)
    options = candidates(n_steps, state_bytes, budget, step_tape_bytes, reverse_bytes,
                         state0_held)
    if budget.schedule != "auto":
        if budget.schedule not in options:
            why = _why_not(budget.schedule, n_steps, state_bytes, budget, step_tape_bytes,
                           reverse_bytes)
            raise BudgetError(f"{budget.source}: schedule {budget.schedule!r} does not fit: {why}")
        chosen = options[budget.schedule]
    elif n_steps is None:
        chosen = options["online"]
    else:  # the fastest predicted plan that fits; store-all first, so it wins ties
        chosen = min(options.values(), key=lambda p: p.time)
    _explain(options, chosen, budget.schedule != "auto")
    return chosen


def _why_not(name: str, n: int | None, state: int, budget: Budget, tape: int,
             reverse: int) -> str:
    if n is None and name != "online":
        return "the number of steps is unknown; use schedule 'online' or 'auto'"
    if name == "multilevel":
        return "it needs budget.disk or budget.tiers with room for at least one state"
    work = tape or state
    if name == "mixed":
        return f"its dynamic programme over {n:,} steps, states of {human_bytes(state)} and " \
            f"tapes of {human_bytes(work)} in {human_bytes(budget.memory - reverse)} is too " \
            f"large to plan in the time and memory allowed (diffkit.checkpoint.mixed." \
            f"feasible); use 'revolve' or 'auto'"
    if name == "periodic":
        k = max(1, min(n, round((n * state / work) ** 0.5)))  # the least peak
        need = ((n - 1) // k) * state + min(k, n) * work + reverse
        return f"its smallest peak ({k} tapes and {(n - 1) // k} states) is {human_bytes(need)}; " \
            f"budget.memory is {human_bytes(budget.memory)}"
    need = n * work + reverse
    return f"keeping all {n} step tapes needs {human_bytes(need)}; budget.memory is " \
        f"{human_bytes(budget.memory)}"


def candidates(n_steps: int | None, state_bytes: int, budget: Budget,
               step_tape_bytes: int = 0, reverse_bytes: int = 0,
               state0_held: bool = False) -> dict[str, Plan]:
    """Every schedule that fits the budget, by name, each with its predicted cost
    (``state0_held``: see `plan`)."""
    if state_bytes <= 0 or step_tape_bytes < 0 or reverse_bytes < 0:
        raise BudgetError(f"state_bytes must be > 0, step_tape_bytes and reverse_bytes >= 0, "
                          f"got {state_bytes}, {step_tape_bytes} and {reverse_bytes}")
    work = step_tape_bytes or state_bytes
    lower = [Tier(t.name, t.size // state_bytes, t.write, t.read) for t in storage_tiers(budget)
             if t.size >= state_bytes]
    free = state_bytes if state0_held and not lower else 0  # state 0's slot: a reference
    memory = budget.memory - reverse_bytes  # what is left for snapshots and tapes
    ram = (memory + free - work) // state_bytes
    if ram < 1:
        need = state_bytes - free + work + reverse_bytes  # (state 0's: the caller's)
        raise BudgetError(f"{budget.source}: budget.memory = {human_bytes(budget.memory)} "
                          f"cannot hold one saved state plus one step's working set: at least "
                          f"{need:,} bytes ({human_bytes(need)}) are needed")
    make = _Maker(n_steps, state_bytes, work, budget, lower)
    spare = memory + free - work - ram * state_bytes  # what tables held by a schedule may take
    if n_steps is None:  # a while loop: Online, over RAM and the slowest tier if any
        sched = _online(ram, lower, budget, state_bytes, spare)
        held = sched.slots[RAM] * state_bytes - free
        return {"online": make(sched, sched.slots, held + work + reverse_bytes + sched.nbytes)}
    out = {}
    if n_steps * work <= memory:
        out["store_all"] = make(StoreAll(n_steps), {RAM: 0}, n_steps * work + reverse_bytes)
    every = _periodic_every(n_steps, state_bytes, work, memory)  # (no credit for state 0:
    if every:  # its first segment may be taped without a snapshot)
        p = Periodic(n_steps, every)
        out["periodic"] = make(p, p.slots, p.slots[RAM] * state_bytes + p.tapes * work
                               + reverse_bytes)
    r = Revolve(n_steps, min(ram, n_steps))
    out["revolve"] = make(r, r.slots, r.slots[RAM] * state_bytes - free + work + reverse_bytes)
    forced = budget.schedule == "mixed"  # auto: RAM-only budgets (Mixed keeps no disk copies)
    if forced or (budget.schedule == "auto" and "store_all" not in out and not lower):
        mixed = _mixed(n_steps, state_bytes, work, memory, forced)
        if mixed is not None and (forced or mixed.predicted.forward_advances
                                  < r.predicted.forward_advances):  # else Revolve's is it
            out["mixed"] = make(mixed, mixed.slots, mixed.peak_bytes + mixed.nbytes
                                + reverse_bytes)
    if lower:
        tiered = _tiered(n_steps, min(ram, n_steps), lower, budget, state_bytes, spare)
        out["multilevel"] = make(tiered, tiered.slots, tiered.slots[RAM] * state_bytes + work
                                 + reverse_bytes + getattr(tiered, "nbytes", 0))
    return out


def _mixed(n: int, state: int, work: int, memory: int, forced: bool) -> Mixed | None:
    """Mixed at the finest of 32, 8 or 2 units a state or tape (sizes rounded up) whose
    dynamic programme is small enough (10x larger when budget.schedule asks for it) and fits
    its tables in what the snapshots will take (a loop plans inside its budget), in what its
    choices (held while the loop runs, a few KB) leave of ``memory``."""
    if memory < state + work or (2 * work > memory and not forced):  # no tape kept: Revolve
        return None
    scale, free = 10.0 if forced else 1.0, memory - work  # free while a loop plans
    resolution = next((r for r in (32, 8, 2)
                       if mixed_feasible(n, state, work, memory, scale, r, free)), None)
    room = memory
    for _ in range(4 if resolution else 0):  # each try plans below the last one's peak
        if room < state + work:
            break
        sched = Mixed(n, state, work, room, resolution)
        if sched.peak_bytes + sched.nbytes <= memory:
            return sched
        room = memory - sched.nbytes  # its choices need room
    return None


def _online(ram: int, lower: list[Tier], budget: Budget, state: int,
            spare: int) -> Online | OnlineTiered:
    """OnlineTiered over RAM and the slowest tier, with fewer RAM slots if its segment tables
    need the room; Online in RAM alone without a tier below or without room."""
    if not lower:
        return Online(ram)
    steps = StepCosts(budget.costs.forward, budget.costs.reverse)
    sched = OnlineTiered(ram, lower[-1], steps)
    fewer = ram - -(-(sched.nbytes - spare) // state) if sched.nbytes > spare else ram
    if fewer < ram and fewer >= 1:
        sched = OnlineTiered(fewer, lower[-1], steps)  # its tables only shrink
    return sched if fewer >= 1 else Online(ram)


def _tiered(n: int, ram: int, lower: list[Tier], budget: Budget, state: int,
            spare: int) -> Optimal | Segmented | MultiLevel:
    """The fastest multi-tier plan whose tables fit in the memory as well: ``spare`` bytes
    beside ``ram`` slots, or fewer slots to make room for them, or else MultiLevel's."""
    steps = StepCosts(budget.costs.forward, budget.costs.reverse)
    best = tiered_schedule(n, [Tier(RAM, ram), *lower], steps)
    if best.nbytes <= spare:
        return best
    options = [MultiLevel(n, [Tier(RAM, ram), t], steps) for t in lower]
    need = best.nbytes
    for _ in range(2):  # fewer slots, smaller tables: estimate from the last tables' size
        fewer = ram - -(-(need - spare) // state)
        if fewer < 1:
            break
        other = tiered_schedule(n, [Tier(RAM, fewer), *lower], steps)
        if other.nbytes <= spare + (ram - fewer) * state:
            options.append(other)
        need = other.nbytes
    return min(options, key=lambda s: s.predicted.time)


def tiered_schedule(n: int, tiers: list[Tier],
                    steps: StepCosts) -> Optimal | Segmented | MultiLevel:
    """The least-time plan over ``tiers`` (RAM first): the exact one when its dynamic
    programme is small enough, else the best of Segmented (exact segments, starts in the
    slowest tier) and MultiLevel over RAM and each single tier."""
    lower = tiers[1:]
    exact = [Optimal(n, tiers, steps)] if feasible(n, tiers) else []
    segmented = Segmented.make(n, tiers, steps) if not exact else None
    options = [*exact, *(MultiLevel(n, [tiers[0], t], steps) for t in lower),
               *([segmented] if segmented else [])]
    return min(options, key=_time)  # ties: exact, then the lighter


def _time(schedule: object) -> float:
    """Predicted time, rounded so that sums in another order tie (the first option wins)."""
    return round(schedule.predicted.time, 6)


_STREAM_FIXED = 16 * 2**10  # the executor's and a schedule's own Python objects
_STREAM_PER_STEP = 64  # Revolve's templates: up to ~55 B/step measured (n=2000, 14 slots)
_STREAM_CAP = 3 * 2**20  # templates are capped at 2**16 actions (~40 B each) per stream


def stream_bytes(n_steps: int | None) -> int:
    """An upper bound on the Python objects of a running schedule and its executor (action
    streams, Revolve's templates), which a loop's working set must include: tracemalloc
    sees ~100 KB for Revolve(2000, 5) and ~800 KB for Revolve(20000, 100). For an unknown
    step count (a while loop) only the fixed part is known."""
    return min(_STREAM_CAP, _STREAM_FIXED + _STREAM_PER_STEP * (n_steps or 0))


def _periodic_every(n: int, state: int, work: int, memory: int) -> int | None:
    """The fitting segment length ``k`` of least predicted time, if any.

    Periodic runs ``n + q k`` advances with ``q = (n - 1) // k`` states held and peaks at
    ``q state + k work``. Both grow with ``k`` while ``q`` stays, so only the first ``k`` of
    each run of equal ``q`` can be best: ``O(sqrt n)`` candidates (ties: the smaller peak).
    """
    best, k = None, 1
    while k <= n:
        q = (n - 1) // k
        peak = q * state + k * work
        if peak <= memory and (best is None or (q * k, peak) < best[0]):
            best = ((q * k, peak), k)
        if q == 0:
            break
        k = (n - 1) // q + 1
    return None if best is None else best[1]


class _Maker:
    """Builds a ``Plan`` from a schedule: counts, bytes and time from the schedule's prediction."""

    def __init__(self, n: int | None, state: int, work: int, budget: Budget,
                 lower: list[Tier]) -> None:
        self.n, self.state, self.work, self.budget = n, state, work, budget
        self.lower = lower

    def __call__(self, schedule: object, slots: dict[str, int], peak: int) -> Plan:
        c, n = self.budget.costs, self.n
        pred = getattr(schedule, "predicted", None)
        if n is None or pred is None:
            return Plan(schedule, n, dict(slots), None, None, peak, 0, 0, None, None, self.budget)
        w, r = getattr(pred, "writes", {}), getattr(pred, "reads", {})
        writes = sum(w.get(t.name, 0) for t in self.lower)
        reads = sum(r.get(t.name, 0) for t in self.lower)
        time = (c.forward * pred.forward_advances + c.reverse * n
                + sum(t.write * w.get(t.name, 0) + t.read * r.get(t.name, 0) for t in self.lower))
        return Plan(schedule, n, dict(slots), pred.forward_advances, pred.recomputation_factor,
                    peak, writes * self.state, reads * self.state, time,
                    time / ((c.forward + c.reverse) * n), self.budget)
