"""Revolve reaches the closed-form binomial optimum and replays validly."""

from __future__ import annotations

from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.checkpoint import Revolve, predict, revolve, validate
from diffkit.checkpoint.revolve import (
    _reference_actions,
    count_advances,
    repetitions,
    reverse_segment,
)
from diffkit.errors import ScheduleError


def closed_form(n: int, s: int) -> int:
    r = 0
    while comb(s + r, s) < n:
        r += 1
    return n + r * n - (comb(s + r, r - 1) if r else 0)


@pytest.mark.slow
def test_counting_path_matches_closed_form_for_every_n_and_s():
    # count_advances(n, s) follows the generator's own splits; rows for s-1 feed s.
    for s in range(1, 65):
        row = count_advances(2000, s)
        assert all(row[n] == closed_form(n, s) for n in range(1, 2001)), s


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), s=st.integers(1, 12))
def test_replay_matches_counting_path_and_prediction(n, s):
    summary = validate(Revolve(n, s), n)
    assert summary.forward_advances == count_advances(n, s)[n] == closed_form(n, s)
    assert summary.peak.get("ram", 0) == predict(n, s).peak_snapshots <= s


@pytest.mark.parametrize("n,s", [(2000, 64), (2000, 2), (1999, 7), (1, 1), (2, 1), (64, 64)])
def test_replay_edge_cases(n, s):
    assert validate(Revolve(n, s), n).forward_advances == closed_form(n, s)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 1500), s=st.integers(1, 30), start=st.integers(0, 10**6),
       loaded=st.booleans(), tier=st.sampled_from(["ram", "disk"]))
def test_bulk_built_stream_equals_the_reference_generator(n, s, start, loaded, tier):
    # reverse_segment builds sub-segments from templates without __init__: same values, types
    got = list(reverse_segment(start, start + n, s, tier, start if loaded else -1))
    want = list(_reference_actions(start, start + n, s, tier, start if loaded else -1))
    assert got == want
    assert [type(a) for a in got] == [type(a) for a in want]
    assert [str(a) for a in got] == [str(a) for a in want]
    assert {hash(a) for a in got} == {hash(a) for a in want}


def test_templates_are_compiled_for_long_streams_and_change_nothing(monkeypatch):
    built = []

    class Spy(revolve._Template):
        __slots__ = ()

        def __init__(self, *key):
            built.append(key)
            super().__init__(*key)

    monkeypatch.setattr(revolve, "_Template", Spy)
    args = (123, 123 + 30_000, 6, "disk", 123)
    assert list(reverse_segment(*args)) == list(_reference_actions(*args))
    assert len(built) > 10


def test_predict_is_exact_for_huge_n():
    p = predict(10**9, 20)
    assert p.repetitions == repetitions(10**9, 20) == 14
    assert comb(20 + 13, 20) < 10**9 <= comb(20 + 14, 20)
    assert p.forward_advances == 10**9 * 15 - comb(34, 13)
    assert predict(10**9, 1).forward_advances == 10**9 * (10**9 + 1) // 2


def test_generator_is_lazy():
    gen = Revolve(10**9, 30).actions()
    first = [next(gen) for _ in range(3)]
    assert [type(a).__name__ for a in first] == ["Save", "Advance", "Save"]


@pytest.mark.parametrize("args", [(0, 3), (10, 0), (10.0, 3)])
def test_bad_arguments(args):
    with pytest.raises(ScheduleError, match="Revolve needs"):
        Revolve(*args)
