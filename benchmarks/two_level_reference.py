"""Optimal two-level (RAM + disk) checkpointing cost by dynamic programming: the reference
that ``MultiLevel`` is compared with in ``bench_schedules.py``.

Model (that of Disk-Revolve, Aupy, Herrmann, Hovland & Robert 2016, "Optimal multistage
algorithm for adjoint computation", SIAM J. Sci. Comput. 38(3), the two-level case of H-Revolve,
Herrmann & Pallez 2020, ACM TOMS 46(2)): ``c_m`` RAM slots, free to write and read; disk slots
(unlimited, or ``c_d``), ``w_d`` to write one state and ``r_d`` to read one; a forward step
costs ``u_f``, a step's VJP ``u_b``.

Cost convention: diffkit's (:mod:`diffkit.checkpoint.planner`, ``MultiLevel.predicted.time``)::

    time = u_f * forward_advances + u_b * n + w_d * disk writes + r_d * disk reads

where ``forward_advances`` counts *every* single-step forward run, the taping of the step being
reversed included (a tape-less ``Reverse(i)`` is one advance plus one ``u_b``). State 0 is the
current state at the start and is stored nowhere; storing it on disk costs one write. RAM
slots count every RAM-held state, segment starts included (as in Revolve's ``s``). In the
papers' convention a backward step includes its taping forward step, so their
``u_b`` is ``u_f + u_b`` here; that is the only conversion.

Recurrences (derived from the papers' decomposition, written for this model; nothing copied):
to reverse ``l`` steps from a stored start that is current, either ``l = 1`` (tape and reverse
it: ``u_f``), or advance ``j`` steps, store state ``j`` (RAM or disk; the right part of one
step needs no store), reverse the right part ``[j, l)`` with what is left, restore the start
and reverse ``[0, j)`` with the same resources. Three tables (``d`` = disk slots available, the
start's own included when it is on disk; ``c`` = RAM slots):

* ``M[d, c, l]``: the start is in RAM (it uses one of the ``c``);
  ``min_j (j u_f + R[d, c-1, l-j] + M[d, c, j])`` or write it to disk and drop the RAM copy,
  ``w_d + D[d, c, l]``.
* ``D[d, c, l]``: the start is on disk (all ``c`` RAM slots free): keep it on disk only,
  ``min_j (j u_f + R[d-1, c, l-j] + r_d + D[d, c, j])``, or copy it into RAM (free: it is
  current) for this restore, ``min_j (j u_f + R[d-1, c-1, l-j] + D[d, c, j])`` -- restoring
  from RAM is free, and the left part may keep or drop the RAM copy, which ``D`` covers.
* ``R[d, k, m]``: right part of ``m`` steps whose start is current: ``u_f`` if ``m = 1``,
  else ``min(M[d, k, m], w_d + D[d, k, m])``.

The answer is ``min(M[c_d, c_m, n], w_d + D[c_d, c_m, n]) + u_b n``. These schedules include
Disk-Revolve's (disk writes in the first sweep, 1D-Revolve segments re-reading their disk
start) and MultiLevel's (disk starts copied into RAM for a whole segment), and also allow disk
writes during the reverse sweep, so ``MultiLevel / reference >= 1``. :func:`schedule` traces
an optimal schedule back as diffkit actions, so tests can replay it with ``validate``.

Cost: O(n^2 c_m) for unlimited disk, numpy-vectorized over ``j`` and ``c`` and filled
bottom-up (no recursion): n = 1,000 with ``c_m = 20`` in ~0.07 s, n = 2,000 in ~0.4 s;
O(n^2 c_m c_d) with a disk limit (n = 1,000, ``c_m = 20``, ``c_d = 10``: ~0.7 s). The tests
check it against an exhaustive search over all schedules on tiny chains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import isclose

import numpy as np

from diffkit.checkpoint import DISK, RAM, Action, Advance, Discard, Load, Reverse, Save

__all__ = ["TwoLevelTables", "tables", "optimal_time", "schedule"]


@dataclass(frozen=True)
class TwoLevelTables:
    """The filled tables (without the ``u_b n`` term) for every ``l <= n`` and ``c <= c_m``.

    Index 0 of the ``d`` axis is "no disk slot" with a limit; without one the axis has a
    single entry meaning "unlimited".
    """

    n: int
    c_m: int
    c_d: int | None
    w_d: float
    r_d: float
    u_f: float
    M: np.ndarray
    D: np.ndarray
    R: np.ndarray

    def _d(self, c_d: int | None) -> int:
        if self.c_d is None:
            return 0
        return min(self.c_d if c_d is None else c_d, self.c_d)

    def time(self, n: int, c_m: int, u_b: float, c_d: int | None = None) -> float:
        """Least predicted time of reversing ``n`` steps with ``c_m`` RAM and ``c_d`` disk slots."""
        if n == 1:
            return self.u_f + u_b
        d = self._d(c_d)
        best = min(self.M[d, c_m, n], self.w_d + self.D[d, c_m, n])
        return float(best) + u_b * n


def tables(n: int, c_m: int, w_d: float, r_d: float, u_f: float = 1.0,
           c_d: int | None = None) -> TwoLevelTables:
    """Fill ``M``, ``D``, ``R`` for every ``l <= n``, ``c <= c_m`` (and ``d <= c_d``)."""
    if n < 1 or c_m < 1:
        raise ValueError(f"need n >= 1 and c_m >= 1, got n={n}, c_m={c_m}")
    nd = 1 if c_d is None else c_d + 1
    inf = np.inf
    M = np.full((nd, c_m + 1, n + 1), inf)
    D = np.full((nd, c_m + 1, n + 1), inf)
    R = np.full((nd, c_m + 1, n + 1), inf)
    disk_ok = slice(None) if c_d is None else slice(1, None)  # D needs a disk slot
    M[:, 1:, 1] = u_f
    D[disk_ok, :, 1] = u_f
    R[:, :, 1] = u_f

    def down(x: np.ndarray) -> np.ndarray:  # x[d - 1] at d: the start holds one disk slot
        if c_d is None:
            return x
        return np.concatenate([np.full_like(x[:1], inf), x[:-1]])

    for l in range(2, n + 1):
        adv = u_f * np.arange(1, l)                       # j u_f, j = 1 .. l-1
        right, right_d = R[:, :, l - 1:0:-1], down(R)[:, :, l - 1:0:-1]  # m = l - j
        dj, mj = D[:, :, 1:l], M[:, :, 1:l]
        d_keep = (adv + right_d + r_d + dj).min(axis=2)
        d_copy = np.full_like(d_keep, inf)
        d_copy[:, 1:] = (adv + right_d[:, :-1] + dj[:, 1:]).min(axis=2)
        D[disk_ok, :, l] = np.minimum(d_keep, d_copy)[disk_ok]
        m_split = (adv + right[:, :-1] + mj[:, 1:]).min(axis=2)
        M[:, 1:, l] = np.minimum(m_split, w_d + D[:, 1:, l])
        R[:, :, l] = np.minimum(M[:, :, l], w_d + D[:, :, l])
    return TwoLevelTables(n, c_m, c_d, w_d, r_d, u_f, M, D, R)


def optimal_time(n: int, c_m: int, w_d: float, r_d: float, u_f: float = 1.0,
                 u_b: float = 2.0, c_d: int | None = None) -> float:
    """The optimal predicted time (diffkit's convention, see the module docstring)."""
    return tables(n, c_m, w_d, r_d, u_f, c_d).time(n, c_m, u_b, c_d)


def schedule(t: TwoLevelTables, n: int | None = None, c_m: int | None = None,
             c_d: int | None = None) -> Iterator[Action]:
    """An optimal schedule traced back from the tables, as diffkit actions (small ``n``).

    Recursive (depth up to ``n``): for tests, which replay it with ``validate`` and compare
    its counts with the table's cost.
    """
    n, c = t.n if n is None else n, t.c_m if c_m is None else c_m
    if n == 1:
        return iter((Reverse(0),))
    return _right(t, 0, n, t._d(c_d), c)


def _eq(x: float, y: float) -> bool:
    return isclose(x, y, rel_tol=1e-12, abs_tol=1e-9)


def _right(t: TwoLevelTables, a: int, m: int, d: int, k: int) -> Iterator[Action]:
    """``R[d, k, m]``: reverse ``[a, a + m)`` from current state ``a``, stored nowhere yet."""
    if m == 1:
        yield Reverse(a)
    elif k >= 1 and _eq(t.R[d, k, m], t.M[d, k, m]):
        yield Save(a, RAM)
        yield from _ram(t, a, m, d, k)
    else:
        yield Save(a, DISK)
        yield from _disk(t, a, m, d, k)


def _ram(t: TwoLevelTables, a: int, l: int, d: int, c: int) -> Iterator[Action]:
    """``M[d, c, l]``: state ``a`` is in RAM and current; ends by discarding it."""
    if l == 1:
        yield Reverse(a)
        yield Discard(a, RAM)
        return
    if _eq(t.M[d, c, l], t.w_d + t.D[d, c, l]):  # move the start to disk
        yield Save(a, DISK)
        yield Discard(a, RAM)
        yield from _disk(t, a, l, d, c)
        return
    for j in range(1, l):
        if _eq(t.M[d, c, l], j * t.u_f + t.R[d, c - 1, l - j] + t.M[d, c, j]):
            yield Advance(a, a + j)
            yield from _right(t, a + j, l - j, d, c - 1)
            yield Load(a, RAM)
            yield from _ram(t, a, j, d, c)
            return
    raise AssertionError("no split reaches M")


def _disk(t: TwoLevelTables, a: int, l: int, d: int, c: int) -> Iterator[Action]:
    """``D[d, c, l]``: state ``a`` is on disk and current; ends by discarding it."""
    if l == 1:
        yield Reverse(a)
        yield Discard(a, DISK)
        return
    dd = d if t.c_d is None else d - 1
    for j in range(1, l):
        base = j * t.u_f + t.D[d, c, j]
        if _eq(t.D[d, c, l], base + t.R[dd, c, l - j] + t.r_d):
            yield Advance(a, a + j)
            yield from _right(t, a + j, l - j, dd, c)
            yield Load(a, DISK)
            yield from _disk(t, a, j, d, c)
            return
        if c >= 1 and _eq(t.D[d, c, l], base + t.R[dd, c - 1, l - j]):
            yield Save(a, RAM)  # a copy in RAM for this restore (free: a is current)
            yield Advance(a, a + j)
            yield from _right(t, a + j, l - j, dd, c - 1)
            yield Load(a, RAM)
            yield Discard(a, RAM)
            yield from _disk(t, a, j, d, c)
            return
    raise AssertionError("no split reaches D")
