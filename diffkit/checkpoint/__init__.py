"""Checkpoint schedules, YAML memory budgets and the planner.

Schedules are lazy generators of typed actions (:mod:`diffkit.checkpoint.actions`) that an
executor runs; they know nothing of arrays. ``plan`` turns a budget and a state size into a
schedule with its predicted cost; ``validate`` replays any schedule symbolically.
"""

from __future__ import annotations

from diffkit.checkpoint.actions import (
    DISK,
    RAM,
    Action,
    Advance,
    Discard,
    Forward,
    Load,
    Reverse,
    Save,
)
from diffkit.checkpoint.baselines import Periodic, StoreAll
from diffkit.checkpoint.budget import Budget, Costs, Disk, load_budget, parse_bytes
from diffkit.checkpoint.compiled import compile_steps
from diffkit.checkpoint.compiled_forward import ForwardReport, last_forward_report
from diffkit.checkpoint.fuse import fuse_steps
from diffkit.checkpoint.loop import loop, while_loop
from diffkit.checkpoint.multilevel import MultiLevel, StepCosts, Tier
from diffkit.checkpoint.online import Online
from diffkit.checkpoint.online_tiers import OnlineTiered
from diffkit.checkpoint.optimal import Optimal
from diffkit.checkpoint.planner import Plan, plan
from diffkit.checkpoint.rematerialize import remat
from diffkit.checkpoint.report import Report, last_report, last_reports
from diffkit.checkpoint.revolve import Prediction, Revolve, predict
from diffkit.checkpoint.scan import scan
from diffkit.checkpoint.segmented import Segmented
from diffkit.checkpoint.validate import Summary, validate

__all__ = [
    # checkpointed loops
    "loop", "while_loop", "scan", "last_report", "last_reports", "Report", "compile_steps",
    "fuse_steps",
    "last_forward_report", "ForwardReport",
    # recomputation of one function (jax.checkpoint / jax.remat)
    "remat",
    # actions
    "Action", "Advance", "Save", "Load", "Discard", "Forward", "Reverse", "RAM", "DISK",
    # schedules
    "StoreAll", "Periodic", "Revolve", "Online", "MultiLevel", "Tier", "StepCosts",
    "Optimal", "Segmented", "OnlineTiered",
    "predict", "Prediction",
    # planning
    "plan", "Plan",
    # validation
    "validate", "Summary",
    # budgets
    "Budget", "Costs", "Disk", "load_budget", "parse_bytes",
]
