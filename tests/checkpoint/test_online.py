"""Online checkpointing: exact offline optimum for n <= C(s+2, 2), valid streams beyond."""

from __future__ import annotations

from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import Online, Reverse, Save, predict, validate
from diffkit.errors import ScheduleError


@pytest.mark.parametrize("s", [1, 2, 3, 5, 8, 13, 21, 30])
def test_offline_optimum_for_repetition_two(s):
    sched = Online(s)
    for n in range(1, comb(s + 2, 2) + 1):
        assert sched.count(n) == predict(n, s).forward_advances, n


@settings(max_examples=50, deadline=None)
@given(s=st.integers(1, 10), n=st.integers(1, 700))
def test_stream_is_valid_and_counted(s, n):
    summary = validate(Online(s), n)
    assert summary.forward_advances == Online(s).count(n)
    assert summary.peak.get("ram", 0) <= s


def test_live_protocol_matches_the_replay_stream():
    sched, n = Online(4), 40
    live = [a for i in range(n) for a in sched.forward_step(i)]
    live += list(sched.reverse(n))
    replay = [a for a in Online(4).actions(n) if type(a).__name__ != "Advance"]
    assert [a for a in live if type(a).__name__ != "Advance"] == replay
    assert live[0] == Save(0) and Reverse(n - 1) in live


def test_protocol_misuse():
    sched = Online(3)
    sched.forward_step(0)
    with pytest.raises(ScheduleError, match=r"forward_step\(2\) called out of order: expected "
                                            r"step 1"):
        sched.forward_step(2)
    with pytest.raises(ScheduleError, match=r"Online.reverse\(5\) after 1 forward steps"):
        list(sched.reverse(5))
    with pytest.raises(ScheduleError, match="Online needs snapshots >= 1"):
        Online(0)
