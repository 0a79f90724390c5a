"""OnlineTiered writes state 0 to disk only when it is needed (when the first segment closes,
or when the reverse sweep reverses the first segment from disk): a short while_loop with a
disk tier writes nothing, and the schedule's counts are otherwise those of writing it at
step 1."""

from __future__ import annotations

import os

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import Tier, validate
from diffkit.checkpoint.actions import Load, Save
from diffkit.checkpoint.online_tiers import OnlineTiered
from diffkit.testing import to_numpy


def _disk_saves(sched, n):
    return [a.step for a in sched.actions(n) if type(a) is Save and a.tier == "disk"]


@pytest.mark.parametrize("ram,w,r", [(2, 4.0, 0.3), (3, 0.5, 0.5), (4, 0.01, 0.01)])
def test_state_0_is_written_only_when_the_first_segment_closes_or_is_reversed_from_disk(
        ram, w, r):
    sched = OnlineTiered(ram, Tier("disk", 100, w, r))
    for n in range(1, 3 * sched.first):
        saves, s = _disk_saves(sched, n), validate(sched, n)
        closes = n > sched.first + 1  # forward_step(first + 1) closes the first segment
        assert (0 in saves) == (closes or s.loads.get("disk", 0) > 0), n  # needed: written
        assert saves.count(0) <= 1 and s.peak.get("ram", 0) <= ram
        if closes:  # before the first segment's end is written, from its RAM slot
            assert saves[:2] == [0, sched.first]


def test_with_one_ram_slot_state_0_is_written_at_step_1():
    sched = OnlineTiered(1, Tier("disk", 100, 0.5, 0.5))
    sched.forward_step(0)
    assert sched.forward_step(1) == (Save(0, "disk"), Save(0, "ram"))
    assert _disk_saves(sched, 2) == [0]


def _cond(state, i, tol):
    return dnp.max(dnp.abs(state)) > tol


def _step(state, i, tol):
    return state * 0.97 - 0.001 * dnp.sin(state)


def _budget(path):
    return {"budget": {"memory": "2MiB", "disk": {"path": str(path), "size": "16MiB"}},
            "costs": {"disk_write": 0.01, "disk_read": 0.01}}


def test_a_short_while_loop_with_a_disk_tier_writes_nothing(tmp_path, to_backend):
    def J(x0):
        return dnp.sum(dk.checkpoint.while_loop(_cond, _step, x0, (0.5,), _budget(tmp_path))
                       ** 2)

    def unrolled(x):
        while _cond(x, 0, 0.5):
            x = _step(x, 0, 0.5)
        return dnp.sum(x ** 2)

    x0 = to_backend(np.linspace(-0.8, 0.8, 4096))  # 32 KiB states: ~50 RAM slots
    g = dk.grad(J)(x0)
    rep = dk.checkpoint.last_report()
    sched = rep.plan.schedule
    assert isinstance(sched, OnlineTiered) and 1 < rep.n_steps <= sched.first
    assert rep.disk_written == rep.disk_read == 0 and os.listdir(tmp_path) == []
    np.testing.assert_allclose(to_numpy(g), to_numpy(dk.grad(unrolled)(x0)), rtol=1e-12)


def test_writing_state_0_late_keeps_the_generators_of_a_random_step(tmp_path, backend,
                                                                    to_backend):
    """The first close loads state 0 and the loop's state back from RAM in the forward sweep;
    the generators (preserve_rng_state) must go on from where the step left them."""
    if backend == "torch-cuda":
        pytest.skip("the CUDA generator is exercised by the CPU test's code path")
    if backend == "numpy":
        draw = lambda n: np.random.standard_normal(n)  # noqa: E731
    else:
        import torch

        draw = lambda n: torch.randn(n, dtype=torch.float64)  # noqa: E731

    def step(state, i, tol):
        return _step(state, i, tol) + 1e-5 * draw(state.shape[0])

    def seed():
        np.random.seed(7)
        if backend != "numpy":
            import torch

            torch.manual_seed(7)

    def J(x0):
        return dnp.sum(dk.checkpoint.while_loop(_cond, step, x0, (1e-2,), _budget(tmp_path),
                                                preserve_rng_state=True, compile=False) ** 2)

    def unrolled(x):
        while _cond(x, 0, 1e-2):
            x = step(x, 0, 1e-2)
        return dnp.sum(x ** 2)

    x0 = to_backend(np.linspace(-0.8, 0.8, 4096))
    seed()
    value, g = dk.value_and_grad(J)(x0)
    rep = dk.checkpoint.last_report()
    sched = rep.plan.schedule
    assert sched.zero_written and rep.n_steps > sched.first + 1 and rep.disk_written > 0
    assert Load(0, "ram") in list(sched.actions(rep.n_steps))  # the late write ran
    seed()
    value_ref, g_ref = dk.value_and_grad(unrolled)(x0)
    assert float(to_numpy(value)) == float(to_numpy(value_ref))
    np.testing.assert_allclose(to_numpy(g), to_numpy(g_ref), rtol=1e-12)
    assert os.listdir(tmp_path) == []
