"""The best online RAM schedule for small s: a search over every configuration sequence.

``python benchmarks/online_search.py`` prints, for each ``s`` of ``diffkit.checkpoint.online.
TABLE_RANGE``, the least worst-case ratio (forward advances over Revolve's offline optimum)
any online schedule of Online's protocol reaches on ``n <= N``, keeping the offline optimum
for every ``n <= C(s + 2, 2)``, and the moves that reach it (the string stored in
``online.TABLES``). Online's protocol: before step ``i`` runs, keep the configuration or
drop one checkpoint (not state 0) and save state ``i - 1``; the cost of stopping after
``n`` steps is ``n`` plus Revolve's count of every segment with the slots left to it.

The search is a bottleneck shortest path over (step, configuration): the value of a
configuration is the least worst ratio of any path to it; configurations above ``bound``
are pruned. s = 5 with n <= 56 takes ~2 s with bound 1.03, s = 6 with n <= 84 ~45 s with
bound 1.02 (``python benchmarks/online_search.py 1.02``).
"""

from __future__ import annotations

import sys
import time
from functools import cache
from math import comb

from diffkit.checkpoint.revolve import predict


@cache
def _advances(steps: int, slots: int) -> int:
    return predict(steps, slots).forward_advances if steps > 0 else 0


def stop_cost(points: tuple[int, ...], i: int, s: int) -> int:
    """Forward advances of stopping after ``i + 1`` steps holding ``points``."""
    ends = (*points[1:], i)
    return i + 1 + sum(_advances(b - a, s - j)
                       for j, (a, b) in enumerate(zip(points, ends, strict=True)) if b > a)


def search(s: int, n_max: int, bound: float = 1.2) -> tuple[float, str]:
    """The least worst ratio on ``n <= n_max`` and its moves: one digit per step from
    ``s + 1`` (0 keeps, ``j`` drops checkpoint ``j`` and saves the previous state)."""
    exact_until = comb(s + 2, 2)
    front: dict[tuple[int, ...], float] = {(): 1.0}
    parents = []
    for i in range(1, n_max):
        new, par = {}, {}
        opt = _advances(i + 1, s)
        for points, value in front.items():
            kids = ([(*points, i - 1)] if len(points) < s else
                    [points, *((*points[:j], *points[j + 1:], i - 1) for j in range(1, s))])
            for kid in kids:
                ratio = stop_cost(kid, i, s) / opt
                if i + 1 <= exact_until and ratio > 1:
                    continue
                v = max(value, ratio)
                if v <= bound and v < new.get(kid, float("inf")):
                    new[kid], par[kid] = v, points
        front, parents = new, [*parents, par]
    points = min(front, key=lambda p: (front[p], p))
    worst, path = front[points], [points]
    for par in reversed(parents[1:]):
        path.append(par[path[-1]])
    path.reverse()  # the configuration after forward_step(i), i = 1 .. n_max - 1
    moves = []
    for i in range(s + 1, n_max):
        before, after = path[i - 2], path[i - 1]
        moves.append("0" if before == after else
                     str(next(j for j in range(1, s) if before[j] not in after)))
    return worst, "".join(moves)


def main() -> None:
    from diffkit.checkpoint.online import TABLE_RANGE

    for s, n_max in TABLE_RANGE.items():
        t = time.perf_counter()
        worst, moves = search(s, n_max, float(sys.argv[1]) if len(sys.argv) > 1 else 1.2)
        print(f"s={s} n<={n_max}: best online ratio {worst:.6f} ({time.perf_counter() - t:.1f} s)"
              f"\n    {s}: \"{moves}\",", flush=True)


if __name__ == "__main__":
    main()
