"""Schedule speed and quality: ``python benchmarks/bench_schedules.py`` (not a timed test).

Prints: the time (``sum(1 for _ in stream)``) and the peak memory over the whole stream
(tracemalloc, a second pass) to generate every action of Revolve and
Online at 10^6 steps (and checkpoint_schedules' when installed, as ratios); the Online /
offline-optimum ratio grid; MultiLevel against equidistant two-level placement and the
partition DP; MultiLevel planning time against that O(n^2) DP at n = 1000; and MultiLevel
against the optimal two-level (Disk-Revolve model) cost of ``two_level_reference.py``, with
unlimited and with limited disk slots, next to the planner's multi-tier plan (exact DP,
Segmented or MultiLevel; target 1.000) (``--two-level``: that grid only); the planning time of
``plan`` with a disk tier up to n = 10^9 and with two and three tiers at 10^6/10^7/10^8
(``--planning``: that part only); and the online ratios next to the best achievable
(``--online``: that part only), with a disk tier too; and the overlapped-I/O saving on a
disk-bound loop whose snapshot files are fsync-ed (``--io``: that part only; the full table
with ``benchmarks/bench_disk_io.py``); Mixed (states or step tapes) against Revolve in the same
bytes (``--mixed``: that part only).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
import tracemalloc
from collections import deque
from math import comb
from pathlib import Path

from diffkit.checkpoint import MultiLevel, Online, Revolve, StepCosts, Tier, plan, predict
from diffkit.checkpoint.multilevel import _time, partition_dp
from diffkit.checkpoint.online import TABLE_RANGE
from diffkit.checkpoint.online_tiers import OnlineTiered
from diffkit.checkpoint.planner import tiered_schedule
from diffkit.checkpoint.validate import validate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_level_reference import tables  # noqa: E402


def stream(make, label):
    t = time.perf_counter()
    count = sum(1 for _ in make())
    elapsed = time.perf_counter() - t
    tracemalloc.start()  # over the whole stream: template caches included
    deque(make(), maxlen=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label:<34} {count:>10,} actions {elapsed:7.2f} s   peak {peak / 1024:7.1f} KiB")
    return elapsed


def peers(n, s, ours):
    """checkpoint_schedules' schedules on the same (n, s), when it is installed: its fastest
    (MultistageCheckpointSchedule, binomial in RAM) at the same n, and its Revolve at
    n = 1,000 (it is far slower: timed against ours at that n)."""
    try:
        from checkpoint_schedules import EndReverse, MultistageCheckpointSchedule
        from checkpoint_schedules import Revolve as CSRevolve
    except ImportError:
        print("checkpoint_schedules not installed: no peer comparison")
        return

    def drain(schedule):  # its streams go on after EndReverse: stop there
        t = time.perf_counter()
        for action in schedule:
            if isinstance(action, EndReverse):
                break
        return time.perf_counter() - t

    theirs = drain(MultistageCheckpointSchedule(n, s, 0))
    print(f"checkpoint_schedules Multistage({n}, {s}): {theirs:.2f} s, "
          f"ratio to diffkit Revolve {theirs / ours:.2f}x")
    small = 1000
    t = time.perf_counter()
    deque(Revolve(small, s).actions(), maxlen=0)
    ours_small = time.perf_counter() - t
    theirs = drain(CSRevolve(small, s))
    print(f"checkpoint_schedules Revolve({small}, {s}): {theirs:.2f} s, "
          f"ratio to diffkit Revolve {theirs / ours_small:.0f}x")


def online_costs(s, n_max, sample):
    """Forward advances of stopping after each sampled n, from one live run of Online(s)."""
    sched, out = Online(s), {}
    for i in range(n_max):
        sched.forward_step(i)
        if i + 1 in sample:
            ends = [*sched.points[1:], i]
            out[i + 1] = i + 1 + sum(predict(b - a, s - j).forward_advances
                                     for j, (a, b) in enumerate(zip(sched.points, ends)) if b > a)
    return out


def online_grid():
    print("\nOnline / offline optimum (forward advances), max over n in each range "
          "(every n up to 20,000, then ~3,000 samples per range; n capped at 300,000)")
    print(f"{'s':>4} {'n<=C(s+2,2)':>12} {'n<=C(s+3,3)':>12} {'n<=C(s+4,4)':>12}")
    for s in (2, 3, 5, 10, 20, 40, 64):
        bounds = [min(comb(s + r, r), 300_000) for r in (2, 3, 4)]
        sample = set(range(1, min(bounds[-1], 20_000) + 1))
        lo = 1
        for hi in bounds:
            sample.update(range(lo, hi + 1, max(1, (hi - lo) // 3000)), {hi})
            lo = hi + 1
        costs = online_costs(s, bounds[-1], sample)
        row, lo = [], 1
        for hi in bounds:
            row.append(max(costs[n] / predict(n, s).forward_advances
                           for n in costs if lo <= n <= hi))
            lo = hi + 1
        print(f"{s:>4} " + " ".join(f"{x:>12.4f}" for x in row), flush=True)
    print("best achievable by any online schedule of this protocol (benchmarks/online_search.py:"
          " exhaustive over configuration sequences), next to Online:")
    from online_search import search

    for s, n_max in TABLE_RANGE.items():
        t = time.perf_counter()
        best, _ = search(s, n_max, {2: 1.2, 3: 1.2, 4: 1.04, 5: 1.03}.get(s, 1.02))
        costs = online_costs(s, n_max, set(range(1, n_max + 1)))
        ours = max(costs[n] / predict(n, s).forward_advances for n in costs)
        print(f"  s={s} n<={n_max}: Online {ours:.4f}, best achievable {best:.4f} "
              f"(search {time.perf_counter() - t:.1f} s)", flush=True)


def online_disk_grid():
    """OnlineTiered (a while loop with a disk tier) against the offline two-level optimum."""
    print("\nOnlineTiered / offline two-level optimum (time, u_f=1, u_b=2, unlimited disk), "
          "max over n in each range")
    print(f"{'ram':>4} {'w':>5} {'r':>5} {'period':>6} {'first':>6} {'n<=first':>9} "
          f"{'first<n<=4first':>16} {'4first<n<=2000':>15}")
    for ram, w, r in ((1, 4.0, 0.3), (1, 50.0, 50.0), (2, 2.0, 2.0), (3, 0.5, 0.5),
                      (5, 4.0, 0.3), (5, 50.0, 50.0)):
        sched, tab = OnlineTiered(ram, Tier("disk", 10**6, w, r)), tables(2000, ram, w, r)
        ranges = [(1, sched.first), (sched.first + 1, 4 * sched.first),
                  (4 * sched.first + 1, 2000)]
        row = []
        for lo, hi in ranges:
            step = max(1, (hi - lo) // 40)
            ns = sorted({*range(lo, min(hi, lo + 60) + 1), *range(lo, hi + 1, step)})
            worst = 0.0
            for n in ns:
                v = validate(sched, n)
                cost = v.forward_advances + 2 * n + w * v.saves.get("disk", 0) + r * v.loads.get(
                    "disk", 0)
                worst = max(worst, cost / tab.time(n, ram, 2.0))
            row.append(worst)
        print(f"{ram:>4} {w:>5} {r:>5} {sched.period:>6} {sched.first:>6} {row[0]:>9.4f} "
              f"{row[1]:>16.4f} {row[2]:>15.4f}", flush=True)


def multilevel_grid():
    print("\nMultiLevel predicted time vs equidistant two-level (Stumm-Walther style) and the "
          "partition DP")
    costs = StepCosts(1.0, 2.0)
    for n, ram, disk, w in ((1000, 3, 10, 0.5), (1000, 5, 50, 2.0), (500, 2, 20, 5.0)):
        tiers = [Tier("ram", ram), Tier("disk", disk, w, w)]
        ml = MultiLevel(n, tiers, costs).predicted.time
        m = min(disk, n - 1)
        equi = [n // (m + 1) + (1 if j < n % (m + 1) else 0) for j in range(m + 1)]
        eq = _time(equi, *tiers, costs)
        dp = partition_dp(n, *tiers, costs)
        print(f"n={n} ram={ram} disk={disk} w=r={w}: {ml:.0f} vs equidistant {eq:.0f} "
              f"({eq / ml:.3f}x) vs DP {dp:.0f} ({ml / dp:.3f}x of DP)")
    tiers = [Tier("ram", 5), Tier("disk", 20, 0.5, 0.5)]
    t = time.perf_counter()
    MultiLevel(1000, tiers, costs)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    partition_dp(1000, *tiers, costs)
    dp = time.perf_counter() - t
    print(f"planning n=1000: MultiLevel {ours * 1e3:.2f} ms, O(n^2) DP {dp * 1e3:.0f} ms, "
          f"{dp / ours:.0f}x faster")


def equidistant(n, c, c_d, w, r, u_f, u_b):
    """Best time over ``m <= c_d`` equidistant disk checkpoints (first sweep), Revolve inside."""
    best = float("inf")
    for m in range(min(n - 1, n if c_d is None else c_d) + 1):
        q, extra = divmod(n, m + 1)  # extra segments of q + 1 steps, first ones first
        t = {l: predict(l, c).forward_advances for l in (q, q + 1) if l >= 1}
        last = q  # the last segment is a short one unless every segment is long
        if extra == m + 1:
            last = q + 1
        adv = n - last + extra * t.get(q + 1, 0) + (m + 1 - extra) * t.get(q, 0)
        best = min(best, u_f * adv + u_b * n + m * (w + r))
    return best


def two_level_grid():
    print("\nThe planner's two-tier plan (tiered_schedule: exact DP, Segmented or MultiLevel) and "
          "MultiLevel vs the optimal two-level cost (Disk-Revolve model, "
          "benchmarks/two_level_reference.py), u_f = 1, disk write w and read r")
    cs, costs = (1, 2, 5, 20), ((0.5, 0.5), (5.0, 5.0), (4.0, 0.3), (0.3, 4.0), (50.0, 50.0))
    for c_d in (None, 50, 10, 2):
        ns = (100, 300, 1000) if c_d is None else (100, 300)
        label = "unlimited" if c_d is None else c_d
        print(f"disk slots {label}:")
        print(f"{'n':>5} {'c_m':>4} {'w':>4} {'r':>4} {'u_b':>4} {'plan':>10} {'schedule':>10} "
              f"{'MultiLevel':>10} {'optimum':>9} {'plan/opt':>8} {'ML/opt':>7} {'equidist':>8} "
              f"{'plan ms':>7}")
        ratios, mls, equis = [], [], []
        for w, r in costs:
            t0 = time.perf_counter()
            tab = tables(max(ns), max(cs), w, r, 1.0, c_d)
            build = time.perf_counter() - t0
            for n in ns:
                for c in cs:
                    tiers = [Tier("ram", c), Tier("disk", n if c_d is None else c_d, w, r)]
                    for u_b in (1.0, 2.0):
                        t = time.perf_counter()
                        best = tiered_schedule(n, tiers, StepCosts(1.0, u_b))
                        ms = (time.perf_counter() - t) * 1e3
                        ml = MultiLevel(n, tiers, StepCosts(1.0, u_b)).predicted.time
                        opt = tab.time(n, c, u_b, c_d)
                        eq = equidistant(n, c, c_d, w, r, 1.0, u_b)
                        ratios.append((best.predicted.time / opt, n, c, w, r, u_b))
                        mls.append((ml / opt, n, c, w, r, u_b))
                        equis.append(eq / opt)
                        if u_b == 2.0:
                            print(f"{n:>5} {c:>4} {w:>4} {r:>4} {u_b:>4} "
                                  f"{best.predicted.time:>10.1f} {type(best).__name__:>10} "
                                  f"{ml:>10.1f} {opt:>9.1f} {ratios[-1][0]:>8.4f} "
                                  f"{mls[-1][0]:>7.4f} {eq / opt:>8.3f} {ms:>7.1f}")
            print(f"  (optimum tables for n <= {max(ns)}, c_m <= {max(cs)}: {build:.2f} s)")
        worst, worst_ml = max(ratios), max(mls)
        print(f"disk slots {label}: plan / optimum worst {worst[0]:.6f} (n, c_m, w, r, u_b = "
              f"{worst[1:]}), median {statistics.median(x[0] for x in ratios):.4f}; "
              f"MultiLevel / optimum worst {worst_ml[0]:.4f} ({worst_ml[1:]}); "
              f"best equidistant / optimum worst {max(equis):.4f}", flush=True)


def planning_times():
    """``plan`` with a disk tier: the issue-10 cases first (before: > 45 s, > 45 s, 20 s), then
    other shapes, then the slowest MultiLevel over a grid up to n = 10^9 (best of 3, CPU)."""
    print("\nplan() with a disk tier (CPU time, best of 3)")
    kib, mib = 2**10, 2**20
    cases = [(10**7, 8 * kib, "64KiB", "20GiB"), (10**9, 8 * mib, "64MiB", "20GiB"),
             (10**6, 200, "256MiB", "1TiB"), (10**9, 200, "64KiB", "1TiB"),
             (10**9, 8 * kib, "64KiB", "1MiB"), (10**9, 8 * mib, "32MiB", "64MiB"),
             (10**9, 1, "1TiB", "1TiB"), (10**5, 8 * mib, "512MiB", "20GiB")]
    print(f"{'n':>6} {'state':>8} {'memory':>7} {'disk':>6} {'schedule':>10} {'segments':>11} "
          f"{'ms':>7}")
    for n, state, memory, disk in cases:
        budget = {"budget": {"memory": memory, "disk": {"path": "/tmp", "size": disk}}}
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            p = plan(n, state, budget)
            best = min(best, time.process_time() - t)
        segments = len(p.schedule.lengths) if isinstance(p.schedule, MultiLevel) else "-"
        print(f"{n:>6.0e} {state:>8} {memory:>7} {disk:>6} {type(p.schedule).__name__:>10} "
              f"{segments:>11} {best * 1e3:>7.2f}")
    worst = (0.0, None)
    for n, ram, disk, w, u_b in itertools.product(
            (10**3, 10**6, 10**9), (1, 2, 3, 7, 50, 254), (1, 2, 3, 10, 2560, 2**21, 5 * 10**9),
            (0.0, 0.5, 5.0), (1.0, 2.0)):
        t = time.process_time()
        MultiLevel(n, [Tier("ram", ram), Tier("disk", disk, w, w)], StepCosts(1.0, u_b))
        worst = max(worst, (time.process_time() - t, (n, ram, disk, w, u_b)))
    print(f"slowest MultiLevel over 756 plans (n <= 1e9, ram 1-254, disk 1-5e9 slots): "
          f"{worst[0] * 1e3:.1f} ms at (n, ram, disk, w, u_b) = {worst[1]}")
    print("plan() with tiers (CPU time of one plan; Segmented's tables are cached by length, "
          "so the first plan of each row pays for them; with 64 KiB of memory they do not fit)")
    tier_budgets = {
        "disk (w 4, r 0.3)": [{"name": "disk", "path": "/tmp", "size": "100TiB", "write": 4.0,
                               "read": 0.3}],
        "host + disk": [{"name": "host", "path": "/tmp", "size": "1GiB", "write": 0.1,
                         "read": 0.1},
                        {"name": "disk", "path": "/tmp", "size": "100TiB", "write": 4.0,
                         "read": 0.3}]}
    for label, tiers in tier_budgets.items():
        for memory, state in (("64KiB", 8 * kib), ("64MiB", 8 * mib), ("1GiB", 8 * mib)):
            budget = {"budget": {"memory": memory, "tiers": tiers}}
            for n in (10**6, 10**7, 10**8):
                t = time.process_time()
                p = plan(n, state, budget)
                print(f"  {label:<18} {state:>7} B states, memory {memory:>5} n={n:.0e}: "
                      f"{type(p.schedule).__name__:>10}"
                      f" {(time.process_time() - t) * 1e3:7.1f} ms, {p.relative_time:.3f}x "
                      "store-all", flush=True)


def overlapped_io():
    """Overlapped disk I/O against the I/O in the loop's thread on a disk-bound loop:
    bench_disk_io's run (8 MiB states fsync-ed to the temp dir, a step about one write)."""
    from argparse import Namespace

    import bench_disk_io

    args = Namespace(state_mb=8.0, steps=40, rounds=3, path=None, sync=True, cold=False, work=2)
    print("\nOverlapped disk I/O (writes in a background thread, reads ahead) on a disk-bound "
          "loop, wall time and time the loop's thread waited on disk calls", flush=True)
    out, times, same = bench_disk_io.measure(**vars(args))
    args.path = "the temp dir"
    bench_disk_io.report(out, times, same, args)


def mixed_grid(n=1000):
    """Mixed (tapes or states) against Revolve in the same bytes: forward advances for tapes
    of 0.5-3 states and 4-32 states of memory (Revolve: one tape beside its slots)."""
    from diffkit.checkpoint.mixed import Mixed, _solve

    print(f"\nMixed (keep a state or a step's tape) vs Revolve, same bytes, n={n}: forward "
          "advances (ratio), DP time")
    print(f"{'tape/state':>10} " + " ".join(f"{f'{c} states':>29}" for c in (4, 8, 16, 32)))
    state = 64
    for ratio in (0.5, 1, 2, 3):
        tape, cells = int(ratio * state), []
        for c in (4, 8, 16, 32):
            memory = c * state
            _solve.cache_clear()
            t0 = time.perf_counter()
            mixed = Mixed(n, state, tape, memory).predicted.forward_advances
            dt = time.perf_counter() - t0
            rev = Revolve(n, (memory - tape) // state).predicted.forward_advances
            cells.append(f"{mixed:>7,} / {rev:>7,} ({mixed / rev:.3f}) {dt * 1e3:4.0f} ms")
        print(f"{ratio:>10} " + " ".join(f"{x:>29}" for x in cells))


def main():
    if "--io" in sys.argv[1:]:  # only the overlapped-I/O saving
        overlapped_io()
        return
    if "--two-level" in sys.argv[1:]:  # only the MultiLevel vs optimum grid
        two_level_grid()
        return
    if "--planning" in sys.argv[1:]:  # only the planning times
        planning_times()
        return
    if "--mixed" in sys.argv[1:]:  # only Mixed against Revolve
        mixed_grid()
        return
    if "--online" in sys.argv[1:]:  # only the online ratios
        online_grid()
        online_disk_grid()
        return
    n = 10**6
    r20 = stream(lambda: Revolve(n, 20).actions(), "Revolve(10**6, 20)")
    stream(lambda: Revolve(n, 100).actions(), "Revolve(10**6, 100)")
    stream(lambda: Online(100).actions(n), "Online(100), 10**6 steps")
    peers(n, 20, r20)
    online_grid()
    online_disk_grid()
    multilevel_grid()
    planning_times()
    two_level_grid()
    mixed_grid()
    overlapped_io()


if __name__ == "__main__":
    main()
