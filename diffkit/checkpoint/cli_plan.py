"""The ``diffkit plan`` subcommand: print the plan a budget gives for a loop, before running it.

``diffkit/cli.py`` calls :func:`add_plan_parser` on its subparsers and :func:`run_plan` with the
parsed arguments::

    diffkit plan --config laptop --steps 100000 --state-bytes 8MiB --tape-bytes 16MiB
    diffkit plan --config laptop --steps 1000 --state-bytes 8MiB --schedule periodic --json
"""

from __future__ import annotations

import argparse
import json
import sys

from diffkit.checkpoint.budget import load_budget, parse_bytes
from diffkit.checkpoint.planner import Plan, budget_label, candidates, human_bytes, plan
from diffkit.checkpoint.report import plan_dict, schedule_name
from diffkit.errors import BudgetError, DiffkitError

__all__ = ["add_plan_parser", "run_plan", "SCHEDULES"]

SCHEDULES = ("store_all", "periodic", "revolve", "mixed", "online", "multilevel")


def add_plan_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``plan`` subcommand (with its options) to an argparse subparsers object."""
    p = subparsers.add_parser("plan", help="print the checkpoint plan for a loop and a budget")
    p.add_argument("--config", default=None, metavar="BUDGET",
                   help="a preset name (see `diffkit budgets`), a memory size such as 512MiB, "
                        "or a YAML budget file (default: the preset 'default')")
    p.add_argument("--steps", type=int, default=None, help="number of steps (omit: unknown)")
    p.add_argument("--state-bytes", required=True, help="bytes of one state, e.g. 8MiB")
    p.add_argument("--tape-bytes", default="0", help="bytes of one step's tape, e.g. 16MiB")
    p.add_argument("--compare", action="store_true", help="all schedules that fit, side by side")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw the schedule to a file")
    p.add_argument("--schedule", default=None, choices=SCHEDULES, metavar="NAME",
                   help=f"force one schedule ({', '.join(SCHEDULES)}) instead of the fastest")
    p.add_argument("--json", action="store_true", help="print the plan(s) as JSON")
    p.set_defaults(func=run_plan)
    return p


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan (or the comparison), as text or JSON; return a process exit code (0 ok,
    2 bad budget or a forced schedule that does not fit)."""
    try:
        budget = load_budget(args.config)
        state = parse_bytes(args.state_bytes, "--state-bytes")
        tape = parse_bytes(args.tape_bytes, "--tape-bytes")
        options = candidates(args.steps, state, budget, tape)
        chosen = _forced(args.schedule, options, budget) if args.schedule else \
            plan(args.steps, state, budget, tape)
        print(_json(options, chosen, args.compare) if args.json
              else _compare(options, chosen) if args.compare else chosen)
        if args.plot:
            from diffkit.checkpoint.plot import plot_schedule

            plot_schedule(chosen.schedule, args.plot, n_steps=args.steps)
            print(f"schedule drawn to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    except DiffkitError as exc:
        print(json.dumps({"error": str(exc)}) if args.json else f"diffkit plan: error: {exc}")
        return 2
    return 0


def _forced(name: str, options: dict[str, Plan], budget) -> Plan:
    """The plan of schedule `name`, or an error naming the schedules that fit."""
    if name not in options:
        raise BudgetError(f"--schedule {name!r} does not fit the budget {budget_label(budget)} "
                          f"for this loop; the schedules that fit: {', '.join(options)}")
    return options[name]


def _json(options: dict[str, Plan], chosen: Plan, compare: bool) -> str:
    if not compare:
        return json.dumps(plan_dict(chosen), indent=2)
    return json.dumps({"chosen": schedule_name(chosen.schedule),
                       "candidates": {k: plan_dict(p) for k, p in options.items()}}, indent=2)


def _compare(options: dict, chosen: Plan) -> str:
    head = (f"{'schedule':<12} {'advances':>14} {'recompute':>9} {'peak memory':>12} "
            f"{'time vs store-all':>17}")
    lines = [head, "-" * len(head)]
    for name, p in options.items():
        mark = " <- chosen" if repr(p.schedule) == repr(chosen.schedule) else ""
        adv = "n/a" if p.forward_advances is None else f"{p.forward_advances:,}"
        rec = "n/a" if p.recomputation_factor is None else f"{p.recomputation_factor:.3f}"
        t = "n/a" if p.relative_time is None else f"{p.relative_time:.3f}x"
        lines.append(f"{name:<12} {adv:>14} {rec:>9} {human_bytes(p.peak_bytes):>12} "
                     f"{t:>17}{mark}")
    return "\n".join(lines)
