"""The ``diffkit plan`` subcommand: print the plan a budget gives for a loop, before running it.

``diffkit/cli.py`` calls :func:`add_plan_parser` on its subparsers and :func:`run_plan` with the
parsed arguments::

    diffkit plan --config configs/laptop.yaml --steps 100000 --state-bytes 8MiB --tape-bytes 16MiB
"""

from __future__ import annotations

import argparse

from diffkit.checkpoint.budget import load_budget, parse_bytes
from diffkit.checkpoint.planner import Plan, candidates, plan
from diffkit.errors import DiffkitError

__all__ = ["add_plan_parser", "run_plan"]


def add_plan_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``plan`` subcommand (with its options) to an argparse subparsers object."""
    p = subparsers.add_parser("plan", help="print the checkpoint plan for a loop and a budget")
    p.add_argument("--config", default=None, help="YAML budget (default: the embedded one)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (omit: unknown)")
    p.add_argument("--state-bytes", required=True, help="bytes of one state, e.g. 8MiB")
    p.add_argument("--tape-bytes", default="0", help="bytes of one step's tape, e.g. 16MiB")
    p.add_argument("--compare", action="store_true", help="all schedules that fit, side by side")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw the schedule to a file")
    p.set_defaults(func=run_plan)
    return p


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan (or the comparison); return a process exit code (0 ok, 2 bad budget)."""
    try:
        budget = load_budget(args.config)
        state = parse_bytes(args.state_bytes, "--state-bytes")
        tape = parse_bytes(args.tape_bytes, "--tape-bytes")
        chosen = plan(args.steps, state, budget, tape)
        if args.compare:
            print(_compare(candidates(args.steps, state, budget, tape), chosen))
        else:
            print(chosen)
        if args.plot:
            from diffkit.checkpoint.plot import plot_schedule

            plot_schedule(chosen.schedule, args.plot, n_steps=args.steps)
            print(f"schedule drawn to {args.plot}")
    except DiffkitError as exc:
        print(f"diffkit plan: error: {exc}")
        return 2
    return 0


def _compare(options: dict, chosen: Plan) -> str:
    head = f"{'schedule':<12} {'advances':>14} {'recompute':>9} {'peak MiB':>10} {'time':>12}"
    lines = [head, "-" * len(head)]
    for name, p in options.items():
        mark = " <- chosen" if repr(p.schedule) == repr(chosen.schedule) else ""
        adv = "n/a" if p.forward_advances is None else f"{p.forward_advances:,}"
        rec = "n/a" if p.recomputation_factor is None else f"{p.recomputation_factor:.3f}"
        t = "n/a" if p.time is None else f"{p.time:.4g}"
        lines.append(f"{name:<12} {adv:>14} {rec:>9} {p.peak_bytes / 2**20:>10.1f} {t:>12}{mark}")
    return "\n".join(lines)
