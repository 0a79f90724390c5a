"""Reports as data (dict, JSON, one per loop of a gradient), their units, the progress bars
(one per sweep, never counting backwards), the ``diffkit`` logger, and ``diffkit plan``'s
``--json`` and ``--schedule``."""

from __future__ import annotations

import argparse
import io
import json
import logging
import re

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import plan, report
from diffkit.checkpoint.cli_plan import add_plan_parser, run_plan
from diffkit.errors import DiffkitError

N, STEPS = 64, 40
TIGHT = {"budget": {"memory": "40KiB"}}  # Revolve with recomputation for a 64-float state


def step(u, i, c):
    return u + c * dnp.sin(u)


def loss(budget=TIGHT, progress=False, n=STEPS):
    def J(u0):
        u = dk.checkpoint.loop(step, u0, n, (0.1,), budget=budget, progress=progress)
        return dnp.sum(u * u)

    return J


class FakeTerminal(io.StringIO):
    """stderr as a terminal would be, for the progress bars."""

    def isatty(self) -> bool:
        return True


def _frames(text: str, phase: str, pattern: str) -> list[int]:
    """The counts shown for `phase` in every redraw (frames split at \\r and newlines)."""
    out = []
    for frame in re.split(r"[\r\n]", text):
        m = re.search(rf"checkpoint: {phase}\b.*?{pattern}", frame)
        if m:
            out.append(int(m.group(1)))
    return out


def _run_on_terminal(monkeypatch, to_backend, tqdm: bool) -> str:
    if not tqdm:
        monkeypatch.setattr(report, "_has_tqdm", lambda: False)
    monkeypatch.setattr(report._PlainBar, "to", _every_step(report._PlainBar.to))
    term = FakeTerminal()
    monkeypatch.setattr("sys.stderr", term)
    dk.grad(loss(progress=True))(to_backend(np.linspace(0.1, 1, N)))
    assert dk.checkpoint.last_report().advances > STEPS  # the reverse sweep recomputed
    return term.getvalue()


def _every_step(to):
    """The plain bar redraws at most every 0.2 s; draw every step to see every count."""
    def draw(self, done):
        self.shown = -1.0
        to(self, done)
    return draw


def test_plain_bars_never_go_backwards_and_tell_rate_and_eta(monkeypatch, to_backend):
    text = _run_on_terminal(monkeypatch, to_backend, tqdm=False)
    fwd = _frames(text, "forward", r"(\d+)/40 steps")
    rev = _frames(text, "reverse", r"(\d+)/40 steps")
    assert fwd == sorted(fwd) and fwd[-1] == STEPS  # recomputations never count as forward
    assert rev == sorted(rev) and rev[-1] == STEPS
    assert text.index("checkpoint: reverse") > text.rindex("checkpoint: forward")
    assert "steps/s, ETA" in text and "recomputed" in text and "\r" in text


def test_tqdm_bars_never_go_backwards(monkeypatch, to_backend):
    pytest.importorskip("tqdm")
    text = _run_on_terminal(monkeypatch, to_backend, tqdm=True)
    fwd = _frames(text, "forward", r"\| *(\d+)/40 \[")
    rev = _frames(text, "reverse", r"\| *(\d+)/40 \[")
    assert fwd and fwd == sorted(fwd) and fwd[-1] == STEPS
    assert rev and rev == sorted(rev) and rev[-1] == STEPS
    assert "step/s" in text and text.index("checkpoint: reverse") > text.rindex("forward:")


def test_progress_on_a_pipe_is_a_few_lines_when_forced_and_silent_on_auto(monkeypatch,
                                                                          to_backend):
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    u0 = to_backend(np.linspace(0.1, 1, N))
    dk.grad(loss(progress="auto"))(u0)
    assert pipe.getvalue() == ""
    dk.grad(loss(progress=True))(u0)
    lines = pipe.getvalue().splitlines()
    assert "\r" not in pipe.getvalue() and 2 <= len(lines) <= 8
    assert lines[-1].startswith("diffkit checkpoint: reverse 40/40 steps")


def test_progress_refuses_a_value_that_is_not_a_choice():
    with pytest.raises(DiffkitError, match=r"progress='yes'\): use True, False or 'auto'"):
        dk.grad(loss(progress="yes"))(np.ones(N))


def test_report_to_dict_and_json_round_trip(to_backend):
    dk.grad(loss())(to_backend(np.linspace(0.1, 1, N)))
    rep = dk.checkpoint.last_report()
    d = rep.to_dict()
    assert json.loads(rep.to_json()) == d
    assert d["plan"]["schedule"] == "revolve" and d["plan"]["n_steps"] == STEPS
    assert d["plan"]["budget"] == {"source": "<dict>", "memory_bytes": 40 * 2**10,
                                   "schedule": "auto", "disk_bytes": None}
    assert d["done"]["advances"] == rep.advances == d["plan"]["forward_advances"]
    assert d["done"]["peak_bytes"] == rep.peak_bytes <= 40 * 2**10


def test_last_reports_holds_every_loop_of_the_last_gradient(to_backend):
    def J(u0):
        u = dk.checkpoint.loop(step, u0, 5, (0.1,), budget=TIGHT)
        u = dk.checkpoint.loop(step, u, 7, (0.2,), budget=TIGHT)
        return dnp.sum(u)

    u0 = to_backend(np.linspace(0.1, 1, N))
    dk.grad(J)(u0)
    reps = dk.checkpoint.last_reports()
    assert [r.n_steps for r in reps] == [7, 5]  # in the order their reverse sweeps ended
    assert dk.checkpoint.last_report() is reps[-1]
    dk.grad(loss())(u0)  # a new gradient starts a new list
    assert [r.n_steps for r in dk.checkpoint.last_reports()] == [STEPS]


def test_last_reports_of_nested_loops_put_inner_loops_first(to_backend):
    def inner(u, i):
        return dk.checkpoint.loop(step, u, 3, (0.1,), budget=TIGHT)

    def J(u0):
        return dnp.sum(dk.checkpoint.loop(inner, u0, 4, budget=TIGHT))

    dk.grad(J)(to_backend(np.linspace(0.1, 1, N)))
    assert [r.n_steps for r in dk.checkpoint.last_reports()] == [3, 3, 3, 3, 4]


def test_report_and_plan_text_use_one_set_of_units(to_backend):
    dk.grad(loss())(to_backend(np.linspace(0.1, 1, N)))
    text = str(dk.checkpoint.last_report())
    assert "<dict>" not in text and "from a dict (memory 40.00 KiB)" in text
    assert re.search(r"peak memory +\d+\.\d\d KiB +\d+\.\d\d KiB", text)
    assert not re.search(r"\d{1,3},\d{3}", text.split("snapshots + tapes")[1])  # no raw bytes
    assert re.search(r"time +\d\.\d{3}x store-all +\d+\.\d{3} s \(", text)
    p = str(plan(30_000, 2**20, {"budget": {"memory": "64MiB"}}, step_tape_bytes=4 * 2**20))
    assert "budget                from a dict (memory 64.00 MiB)" in p
    assert "e+" not in p and re.search(r"predicted time +\d\.\d{3}x store-all's \([\d,]+ ", p)


def test_the_diffkit_logger_tells_the_plan_at_info(caplog):
    with caplog.at_level(logging.INFO, logger="diffkit"):
        dk.grad(loss())(np.linspace(0.1, 1, N))
    msg = [r.getMessage() for r in caplog.records if r.name == "diffkit"]
    assert len(msg) == 1 and msg[0].startswith("checkpoint plan: Revolve(n_steps=40")
    assert "(least predicted time of those that fit: revolve 1.500x)" in msg[0]
    assert "recomputation factor 2.500" in msg[0] and "memory 40.00 KiB" in msg[0]


@pytest.fixture
def plan_args(tmp_path) -> list[str]:
    """`diffkit plan` options for a loop where Periodic and Revolve fit but store-all not."""
    (tmp_path / "b.yaml").write_text("budget:\n  memory: 512MiB\n")
    return ["--config", str(tmp_path / "b.yaml"), "--steps", "1000", "--state-bytes", "1MiB",
            "--tape-bytes", "1MiB"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_plan_parser(parser.add_subparsers())
    return run_plan(parser.parse_args(["plan", *argv]))


def test_cli_plan_json_and_schedule(capsys, plan_args):
    assert _cli([*plan_args, "--json"]) == 0
    auto = json.loads(capsys.readouterr().out)
    assert auto["schedule"] == "periodic" and auto["peak_bytes"] <= 512 * 2**20
    assert _cli([*plan_args, "--schedule", "revolve", "--json"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["schedule"] == "revolve" and forced["n_steps"] == 1000
    assert _cli([*plan_args, "--schedule", "revolve", "--compare"]) == 0
    assert re.search(r"revolve .* <- chosen", capsys.readouterr().out)
    assert _cli([*plan_args, "--compare", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["chosen"] == "periodic" and set(both["candidates"]) == {"periodic", "revolve"}


def test_cli_plan_schedule_that_does_not_fit_names_those_that_do(capsys, plan_args):
    assert _cli([*plan_args, "--schedule", "store_all"]) == 2
    assert re.search(r"--schedule 'store_all' does not fit the budget .*512\.00 MiB.*; the "
                     r"schedules that fit: periodic, revolve", capsys.readouterr().out)
    assert _cli([*plan_args, "--schedule", "multilevel", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err.endswith("the schedules that fit: periodic, revolve")
    with pytest.raises(SystemExit):
        _cli([*plan_args, "--schedule", "fastest"])
    assert "invalid choice: 'fastest'" in capsys.readouterr().err


def test_a_re_plan_is_logged_and_its_forward_bar_does_not_restart(monkeypatch, caplog,
                                                                     to_backend):
    """A step tape outgrowing step 0's restarts the forward sweep with a new plan: the
    logger says so, and the one forward bar keeps its count while the new sweep catches up."""
    x0 = to_backend(np.linspace(0.5, 1.0, 4096))

    def grow(x, i, a):
        return a * (x * 0.5 if i == 0 else x * x)

    def J(x, budget, progress=False):  # eager: the tapes of a compiled step are its programs'
        return dnp.sum(dk.checkpoint.loop(grow, x, 30, (1.0,), budget=budget, progress=progress,
                                          compile=False))

    dk.grad(J)(x0, {"budget": {"memory": "1GiB"}})
    need = dk.checkpoint.last_report().plan.peak_bytes  # store-all with step 0's small tapes
    monkeypatch.setattr(report, "_has_tqdm", lambda: False)
    monkeypatch.setattr(report._PlainBar, "to", _every_step(report._PlainBar.to))
    monkeypatch.setattr("sys.stderr", term := FakeTerminal())
    with caplog.at_level(logging.INFO, logger="diffkit"):
        dk.grad(J)(x0, {"budget": {"memory": need}}, True)
    assert dk.checkpoint.last_report().replans == 1
    msg = [r.getMessage() for r in caplog.records if r.name == "diffkit"]
    assert re.match(r"checkpoint re-plan 1: step \d+'s tape keeps [\d.]+ KiB, more than step "
                    r"0's; planning again", msg[1])
    assert msg[0].startswith("checkpoint plan: StoreAll") and len(msg) == 3
    fwd = _frames(term.getvalue(), "forward", r"(\d+)/30 steps")
    assert fwd == sorted(fwd) and fwd[-1] == 30 and term.getvalue().count("\n") == 2
