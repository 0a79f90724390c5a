"""Binomial checkpointing: Revolve (Griewank & Walther 2000, ACM TOMS 26(1), 19-45).

With ``s`` snapshot slots (the one holding the initial state included) and ``n`` steps, the
fewest single-step forward advances any schedule can make -- first sweep, recomputations and
the ``n`` taping advances of the reverse sweep together -- is

    t(n, s) = n + r*n - C(s + r, r - 1),   r = min{r >= 0 : C(s + r, s) >= n}

(``r`` is the *repetition number*: no step is advanced more than ``r + 1`` times). Revolve
reaches it by recursive bisection: from checkpoint ``a`` with ``s`` slots, advance to ``m``,
save ``m``, reverse ``[m, b)`` with ``s - 1`` slots, free ``m``, then reverse ``[a, m)`` with
``s``. The split ``m`` is the closed-form choice of the original ``revolve`` code (its
``numforw``), so no search is needed, and :func:`count_advances` follows the very same splits
without emitting actions (the fast path the tests compare with the closed form).

The generator is iterative (an explicit stack, at most ``s`` frames deep: each pushed frame has
one slot fewer), so a million-step loop neither recurses deeply nor builds a list; consecutive
steps become one ``Advance(a, b)``; repeated ``Load`` actions of one checkpoint are one
shared (immutable) object.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from itertools import chain, repeat
from math import comb
from operator import itemgetter

from diffkit.checkpoint.actions import RAM, Action, Advance, Discard, Load, Reverse, Save
from diffkit.errors import ScheduleError

__all__ = ["Revolve", "Prediction", "predict", "repetitions", "count_advances"]


def repetitions(n: int, snapshots: int) -> int:
    """The repetition number ``r``: the smallest ``r >= 0`` with ``C(s + r, s) >= n``.

    Exponential then binary search over ``r``, so O(log n) binomials of Python ints: exact for
    any ``n`` (``n = 10**9`` with ``s = 1`` gives ``r = 10**9 - 1`` in microseconds).
    """
    s = snapshots
    if n <= 1:
        return 0
    hi = 1
    while comb(s + hi, s) < n:
        hi *= 2
    lo = hi // 2  # C(s + lo, s) < n unless lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if comb(s + mid, s) >= n:
            hi = mid
        else:
            lo = mid
    return hi if comb(s + lo, s) < n else lo


@dataclass(frozen=True, slots=True)
class Prediction:
    """Exact cost of ``Revolve(n, snapshots)`` from the closed form (no actions generated)."""

    n_steps: int
    snapshots: int
    repetitions: int
    forward_advances: int
    peak_snapshots: int

    @property
    def recomputation_factor(self) -> float:
        """Forward advances per step (1.0 would be store-all)."""
        return self.forward_advances / self.n_steps if self.n_steps else 0.0


def predict(n: int, snapshots: int) -> Prediction:
    """Forward advances, repetition number and peak slots of binomial checkpointing, in O(log n).

    >>> predict(10**9, 20).forward_advances
    14072016240
    """
    _check_args(n, snapshots)
    r = repetitions(n, snapshots)
    advances = n + r * n - (comb(snapshots + r, r - 1) if r >= 1 else 0)
    peak = min(snapshots, n - 1) if n >= 2 else 0
    return Prediction(n, snapshots, r, advances, peak)


def _profile(n: int, snapshots: int) -> tuple[int, int, int]:
    """``(r, x, y)``: how often Revolve's splits advance each step untaped, in closed form.

    ``C(a + s - 1, s - 1)`` steps are advanced exactly ``a`` times for every ``a <= r - 2``,
    ``x`` steps ``r - 1`` times and ``y`` steps ``r`` times (``r = repetitions(n, s)``). The
    binomial levels are those of ``n = C(s + r, s)``; ``x`` and ``y`` follow from the step count
    and the advance total ``r n - C(s + r, r - 1)`` (tested against the streams).
    """
    s, r = snapshots, repetitions(n, snapshots)
    if r <= 1:
        return r, r, n - r  # one step (0 times) or, with r = 1, one step 0 times, n-1 once
    below = comb(r - 2 + s, s)  # steps advanced at most r - 2 times, and their advances:
    below_advances = s * comb(r - 2 + s, s + 1)
    top = r * n - comb(s + r, r - 1) - below_advances - (r - 1) * (n - below)
    return r, n - below - top, top


def _save_count(n: int, snapshots: int) -> int:
    """``Save`` actions of ``reverse_segment`` over ``n`` steps from a saved, current start
    (state 0's own save not counted), in closed form: the count at ``n = C(s + r - 1, s)``,
    plus one per step among the last ``C(s + r - 2, r)`` of the repetition level (tested
    against the streams). Its loads are ``n - 1``: one per step but the last."""
    s = snapshots
    if s == 1 or n <= 2:
        return 0
    r = repetitions(n, s)
    return comb(s + r - 2, r - 1) - 1 + max(0, n - comb(s + r, s) + comb(s + r - 2, r))


def _check_args(n: int, snapshots: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ScheduleError(f"Revolve needs n_steps >= 1 (an int), got {n!r}")
    if not isinstance(snapshots, int) or snapshots < 1:
        raise ScheduleError(
            f"Revolve needs snapshots >= 1 (the slot holding the initial state), got {snapshots!r}"
        )


def _split(steps: int, snaps: int) -> int:
    """How many steps to advance before the next save: revolve's ``numforw`` rule.

    ``steps >= 2`` steps remain from a saved state with ``snaps >= 2`` slots (that state's
    included). The three cases pick a split inside the optimal range; the binomials are the
    ``bino1..bino5`` of the original code, computed as exact Python ints.
    """
    r = repetitions(steps, snaps)
    full = comb(snaps + r, snaps)
    bino1 = full * r // (snaps + r)
    bino2 = bino1 * snaps // (snaps + r - 1) if snaps > 1 else 1
    bino3 = 0 if snaps == 1 else (bino2 * (snaps - 1) // (snaps + r - 2) if snaps > 2 else 1)
    bino4 = bino2 * (r - 1) // snaps
    bino5 = 0 if snaps < 3 else (bino3 * (snaps - 2) // r if snaps > 3 else 1)
    if steps <= bino1 + bino3:
        m = bino4
    elif steps >= full - bino5:
        m = bino1
    else:
        m = steps - bino2 - bino3
    return max(m, 1)


def count_advances(n: int, snapshots: int) -> list[int]:
    """Forward advances of Revolve for every ``1 <= l <= n`` with ``snapshots`` slots.

    Follows exactly the splits the generator takes (``cost[l]`` with ``s`` slots is
    ``m + cost_s[m] + cost_{s-1}[l - m]``), computed bottom-up over ``s`` in O(n * s) -- the fast
    path that checks the closed form for every ``n <= 2000, s <= 64``. Index 0 is unused.
    """
    prev = [0] + [l * (l + 1) // 2 for l in range(1, n + 1)]  # one slot: quadratic
    for s in range(2, snapshots + 1):
        cur = [0, 1]
        for l in range(2, n + 1):
            m = _split(l, s)
            cur.append(m + cur[m] + prev[l - m])
        prev = cur
    return prev


class Revolve:
    """Binomial checkpointing for ``n_steps`` steps with ``snapshots`` slots in one ``tier``.

    ``snapshots`` counts the slot that holds state 0. ``predicted`` gives the exact counts
    before anything runs.

    >>> from diffkit.checkpoint import validate
    >>> validate(Revolve(1000, 10), 1000).forward_advances == predict(1000, 10).forward_advances
    True
    """

    def __init__(self, n_steps: int, snapshots: int, tier: str = RAM) -> None:
        _check_args(n_steps, snapshots)
        self.n_steps = n_steps
        self.snapshots = snapshots
        self.tier = tier
        self.predicted = predict(n_steps, snapshots)
        self.slots = {tier: self.predicted.peak_snapshots}
        self.tapes = 0

    def __repr__(self) -> str:
        return f"Revolve(n_steps={self.n_steps}, snapshots={self.snapshots}, tier={self.tier!r})"

    def __iter__(self) -> Iterator[Action]:
        return self.actions()

    def actions(self) -> Iterator[Action]:
        """All actions, lazily: ``Save(0)``, the sweeps, ending with ``Discard(0)``."""
        if self.n_steps == 1:
            return iter((Reverse(0),))
        # chain (C) rather than `yield from`: one generator frame less per action, ~10% faster
        return chain(
            (Save(0, self.tier),),
            reverse_segment(0, self.n_steps, self.snapshots, self.tier, current=0),
            (Discard(0, self.tier),),
        )


def reverse_segment(
    a: int, b: int, snaps: int, tier: str = RAM, current: int = -1
) -> Iterator[Action]:
    """Reverse steps ``b - 1 .. a`` when state ``a`` is saved in ``tier`` (not discarded here).

    ``snaps`` slots are available, the one holding ``a`` included; ``current`` is the index of
    the executor's current state (-1: unknown), which saves a redundant ``Load``. Also used by
    ``Online`` and ``MultiLevel`` between their own checkpoints. The same actions as
    :func:`_reference_actions`, produced in chunks: the outer levels of the bisection one by
    one, every sub-segment of at most ``_TEMPLATE_STEPS`` steps as one :class:`_Template`
    instance (where ~98% of the actions are).
    """
    return chain.from_iterable(_chunks(a, b, snaps, tier, current))


_TEMPLATE_STEPS = 160  # sub-segments up to this length become templates (~700 actions at most)
_TEMPLATE_ACTIONS = 1 << 16  # per stream, all templates together: bounded memory whatever n is


def _chunks(a: int, b: int, snaps: int, tier: str, current: int) -> Iterator[Iterable[Action]]:
    """The bisection of :func:`_reference_actions`, yielding iterables of actions.

    A sub-segment is compiled into a template the second time its (length, slots, loaded) key
    comes up, so short streams (and loops tight on memory) build none.
    """
    templates: dict[tuple[int, int, bool], _Template | None] = {}
    room = _TEMPLATE_ACTIONS
    splits: dict[tuple[int, int], int] = {}
    stack: list = [(a, b, snaps)]
    while stack:
        item = stack.pop()
        if type(item) is int:
            yield (Discard(item, tier),)
            continue
        a, b, s = item
        while True:
            steps = b - a
            if steps <= _TEMPLATE_STEPS:
                key = (steps, s, current == a)
                template = templates.get(key)
                if template is None:
                    if key in templates and room > 0:
                        template = templates[key] = _Template(*key)
                        room -= template.actions
                    else:
                        templates.setdefault(key, None)
                        yield _reference_actions(a, b, s, tier, current)
                        break
                yield template.at(a, tier)
                break
            if s == 1:  # long one-slot segments cost O(steps^2) advances anyway
                yield _reference_actions(a, b, 1, tier, current)
                break
            key2 = (steps, s)
            m = splits.get(key2)
            if m is None:
                m = splits[key2] = _split(steps, s)
            m += a
            head = [] if current == a else [Load(a, tier)]
            head.append(Advance(a, m))
            if b - m == 1:  # one step right of m: tape it now, no need to save m
                head.append(Reverse(m))
                yield head
                current, b = -1, m
                continue
            head.append(Save(m, tier))
            yield head
            stack.append((a, m, s))
            stack.append(m)
            a, s, current = m, s - 1, m
        current = -1


_new = object.__new__
_consume = deque(maxlen=0).extend
_set_reverse = Reverse.step.__set__


def _picker(indices: list[int]) -> Callable[[list], Sequence]:
    """``f(seq)`` -> the items of ``seq`` at ``indices``, in C (one index: a 1-item slice)."""
    if len(indices) == 1:
        return itemgetter(slice(indices[0], indices[0] + 1))
    return itemgetter(*indices)


class _Template:
    """The actions reversing ``steps`` steps with ``snaps`` slots, relative to their start.

    Actions are immutable values, so the stream of a sub-segment starting at ``a`` is the
    stream starting at 0 with every step index shifted by ``a``. ``at(a, tier)`` builds those
    values in bulk -- ``object.__new__`` and the dataclass slots' own setters mapped over
    lists, in C -- instead of one dataclass ``__init__`` per action (~4x cheaper); the objects
    are complete frozen instances, equal to the ones ``__init__`` makes. ``loaded`` says that
    the segment's first state is already current (no leading ``Load``).
    """

    __slots__ = ("steps", "groups", "order", "actions")

    def __init__(self, steps: int, snaps: int, loaded: bool) -> None:
        actions = list(_reference_actions(0, steps, snaps, RAM, 0 if loaded else -1))
        # built values: Reverse(steps-1) .. Reverse(0) first, then each class's distinct ones
        index: dict[Action, int] = {Reverse(i): steps - 1 - i for i in range(steps)}
        self.groups = []
        for cls in (Advance, Save, Load, Discard):
            distinct = list(dict.fromkeys(x for x in actions if type(x) is cls))
            if not distinct:
                continue
            index.update({x: k for k, x in enumerate(distinct, len(index))})
            names = [f.name for f in fields(cls)]
            setters = tuple((getattr(cls, name).__set__,
                             _picker([getattr(x, name) for x in distinct]))
                            for name in names if name != "tier")
            tier = cls.tier.__set__ if "tier" in names else None
            self.groups.append((cls, len(distinct), setters, tier))
        self.steps = steps
        self.order = _picker([index[x] for x in actions])
        self.actions = len(actions)

    def at(self, start: int, tier: str) -> Sequence[Action]:
        """The actions for the sub-segment starting at state ``start``, in ``tier``."""
        steps = list(range(start, start + self.steps))  # every step index, as shared ints
        built = list(map(_new, repeat(Reverse, self.steps)))
        _consume(map(_set_reverse, built, reversed(steps)))
        for cls, count, setters, set_tier in self.groups:
            objs = list(map(_new, repeat(cls, count)))
            for set_field, pick in setters:
                _consume(map(set_field, objs, pick(steps)))
            if set_tier is not None:
                _consume(map(set_tier, objs, repeat(tier, count)))
            built += objs
        return self.order(built)


def _reference_actions(
    a: int, b: int, snaps: int, tier: str = RAM, current: int = -1
) -> Iterator[Action]:
    """The schedule action by action, as :func:`reverse_segment` documents it.

    The definition the templates are compiled from. Stack frames are ``(a, b, s, load_a)``; a
    bare int is a checkpoint to discard once its right part is done.
    """
    splits: dict[tuple[int, int], int] = {}
    stack: list = [(a, b, snaps, Load(a, tier))]
    while stack:
        item = stack.pop()
        if type(item) is int:
            yield Discard(item, tier)
            continue
        a, b, s, load = item
        while b - a > 1:
            if s == 1:  # no slot to spare: re-advance from a for every step, last first
                for i in range(b - 1, a, -1):
                    if current != a:
                        yield load
                    yield Advance(a, i)
                    yield Reverse(i)
                    current = -1
                break
            key = (b - a, s)
            m = splits.get(key)
            if m is None:
                m = splits[key] = _split(b - a, s)
            m += a
            if current != a:
                yield load
            yield Advance(a, m)
            if b - m == 1:  # one step right of m: tape it now, no need to save m
                yield Reverse(m)
                current, b = -1, m
                continue
            yield Save(m, tier)
            stack.append((a, m, s, load))
            stack.append(m)
            a, s, current, load = m, s - 1, m, Load(m, tier)
        if current != a:
            yield load
        yield Reverse(a)
        current = -1
