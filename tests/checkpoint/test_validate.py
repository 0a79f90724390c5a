"""The replay validator accepts valid streams and names the broken rule of invalid ones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import (
    Advance,
    Discard,
    Forward,
    Load,
    Periodic,
    Reverse,
    Save,
    StoreAll,
    validate,
)
from diffkit.errors import ScheduleError

GOOD = [Save(0), Advance(0, 2), Reverse(2), Load(0), Advance(0, 1), Reverse(1), Load(0),
        Reverse(0), Discard(0)]


def test_plain_iterable_summary():
    s = validate(GOOD, 3, slots={"ram": 1})
    assert (s.forward_advances, s.tapings, s.saves, s.loads, s.peak) == (
        6, 3, {"ram": 1}, {"ram": 2}, {"ram": 1})


@pytest.mark.parametrize("stream,n,match", [
    (GOOD[:-1], 3, r"ended still holding states \{'ram': \[0\]\}"),
    (GOOD[:4], 3, r"steps 1..0 not reversed \(expected Reverse\(1\)\)"),
    ([Reverse(0)], 2, r"action #0 Reverse\(0\): .* expected Reverse\(1\)"),
    ([Advance(1, 2)], 2, r"action #0 Advance\(1, 2\): the current state must be 1, but it is 0"),
    ([Advance(0, 3)], 2, r"needs start < stop <= n_steps=2"),
    ([Load(0)], 1, r"action #0 Load\(0, ram\): state 0 is not saved in tier 'ram'"),
    ([Discard(0, "disk")], 1, r"state 0 is not saved in tier 'disk' \(it holds \[\]\)"),
    ([Save(0), Save(0)], 1, r"action #1 Save\(0, ram\): state 0 is already saved"),
    ([Save(0), Advance(0, 1), Save(1)], 3, r"#2 .* already holds 1 states \[0\], its slot limit"),
    ([Save(0, "ssd")], 1, r"tier 'ssd' is not one of the schedule's tiers \['ram'\]"),
    ([Advance(0, 1), Reverse(1), Reverse(0)], 2,
     r"#2 Reverse\(0\): the current state must be 0, but it is no defined state"),
    ([Forward(0), Forward(0)], 2, r"#1 Forward\(0\): the current state must be 0, but it is 1"),
    (["jump"], 1, r"action #0 'jump' is not a checkpoint action"),
])
def test_each_rule_has_its_own_message(stream, n, match):
    with pytest.raises(ScheduleError, match=match):
        validate(stream, n, slots={"ram": 1})


def test_tape_limit_and_schedule_length_mismatch():
    with pytest.raises(ScheduleError, match="3 tapes held, more than the schedule's 2"):
        validate([Forward(0), Forward(1), Forward(2)], 3, tapes=2)
    with pytest.raises(ScheduleError, match=r"plans 5 steps, validate was asked for 4"):
        validate(StoreAll(5), 4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 40))
def test_baselines_are_valid_and_predicted(n, k):
    for sched in (StoreAll(n), Periodic(n, k)):
        s = validate(sched, n)
        assert s.forward_advances == sched.predicted.forward_advances
        assert s.peak.get("ram", 0) <= sched.slots["ram"]
        assert s.peak_tapes == sched.tapes
