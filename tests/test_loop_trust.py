"""Checkpointed loops refuse what would silently break a gradient: steps that write into
their state in place, steps that do not reproduce themselves when recomputed; they replay
global random generators on request, count every step call, and take NumPy step counts."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint.stepcheck import Fingerprints
from diffkit.errors import TransformError
from diffkit.testing import to_numpy

N, STEPS = 128, 60
BIG = {"budget": {"memory": "1GiB"}}


@pytest.fixture(autouse=True)
def eager_steps():
    """These checks are of the eager path (the step's Python runs at every step);
    tests/test_compiled_steps.py makes the same attacks on compiled steps."""
    with dk.checkpoint.compile_steps(False):
        yield


def heat(u, i, k):
    """One explicit step of a nonlinear heat equation, written functionally."""
    return u + k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)) - 0.01 * u * u


def heat_in_place(u, i, k):
    """The same step, updating its input in place (the NumPy/torch habit)."""
    u += k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)) - 0.01 * u * u
    return u


def initial(n=N):
    return np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False)) + 1.0


def loss(step, budget, n=STEPS, **options):
    return lambda u0: dnp.sum(dk.checkpoint.loop(step, u0, n, (0.2,), budget, **options) ** 2)


@functools.cache
def store_all_peak(n=STEPS):
    dk.grad(loss(heat, BIG, n))(initial())
    return dk.checkpoint.last_report().plan.peak_bytes


def tight(fraction=10, schedule="revolve", n=STEPS):
    """A budget of a fraction of store-all's planned peak: the schedule recomputes states.
    `schedule=None` lets the planner choose (while_loop: the online schedule)."""
    budget = {"budget": {"memory": store_all_peak(n) // fraction}}
    return budget if schedule is None else {**budget, "schedule": schedule}


def snapshot(x):
    return np.array(to_numpy(x), copy=True)


# -- item 1: in-place steps --------------------------------------------------------------
def test_an_in_place_step_is_refused_and_never_changes_the_callers_state(to_backend):
    u0 = to_backend(initial())
    before = snapshot(u0)
    with pytest.raises(TransformError, match=r"in place at step 0 \(state\).*u = u \+ du"):
        dk.checkpoint.loop(heat_in_place, u0, 5, (0.2,))
    np.testing.assert_array_equal(snapshot(u0), before)
    # under a tight budget the schedule advances untaped: the first untaped step is refused
    # (it used to overwrite the snapshots: a silently wrong gradient)
    with pytest.raises(TransformError, match=r"in place at step \d+ \(state\)"):
        dk.grad(loss(heat_in_place, tight()))(u0)
    np.testing.assert_array_equal(snapshot(u0), before)
    with pytest.raises(TransformError, match=r"in place at step 0 \(state\)"):
        dk.checkpoint.while_loop(lambda u, i, k: i < 5, heat_in_place, u0, (0.2,))
    with pytest.raises(TransformError, match=r"in place at step 1 \(state\)"):
        dk.grad(lambda u: dnp.sum(dk.checkpoint.while_loop(
            lambda u, i, k: i < STEPS, heat_in_place, u, (0.2,), tight(schedule=None))))(u0)
    np.testing.assert_array_equal(snapshot(u0), before)


def test_the_functional_step_agrees_and_copying_first_is_allowed(to_backend):
    u0 = to_backend(initial())
    g_all = to_numpy(dk.grad(loss(heat, BIG))(u0))
    g_tight = to_numpy(dk.grad(loss(heat, tight()))(u0))
    assert dk.checkpoint.last_report().plan.schedule.__class__.__name__ == "Revolve"
    np.testing.assert_allclose(g_tight, g_all, rtol=1e-12)

    def copy_then_write(u, i, k):
        u = u.clone() if hasattr(u, "clone") else u.copy()
        u += k * (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)) - 0.01 * u * u
        return u

    np.testing.assert_allclose(to_numpy(dk.grad(loss(copy_then_write, tight()))(u0)), g_all,
                               rtol=1e-12)


def test_the_error_names_the_leaf_that_was_written(to_backend):
    state0 = {"u": to_backend(initial()), "v": to_backend(np.zeros(N))}

    def step(s, i):
        s["v"][0] = i  # writes into one leaf only
        return {"u": s["u"] * 0.5, "v": s["v"]}

    # torch names the tensor exactly (its version counter moved); NumPy names the
    # read-only arrays the write may have targeted
    pattern = r"\(state\['v'\]\)" if "Tensor" in type(state0["u"]).__name__ else \
        r"\(one of state\['u'\], state\['v'\]\)"
    with pytest.raises(TransformError, match=r"in place at step 0 " + pattern):
        dk.checkpoint.loop(step, state0, 3)


def test_a_snapshot_written_into_after_it_was_saved_is_an_error(to_backend):
    held = []

    def step(u, i, k):  # writes into the array it returned two steps earlier
        if len(held) > 1 and type(held[-2]).__name__ in ("ndarray", "Tensor"):
            held[-2] *= 1.5
        out = heat(u, i, k)
        held.append(out)
        return out

    with pytest.raises(TransformError, match=r"snapshot of state \d+ (changed|was written)"):
        dk.grad(loss(step, tight()))(to_backend(initial()))


def test_forward_mode_runs_an_in_place_step_on_tracers_and_keeps_state0(to_backend):
    u0 = to_backend(initial())
    before = snapshot(u0)
    t = to_backend(np.cos(np.linspace(0, 1, N)))
    _, jv = dk.jvp(lambda u: dk.checkpoint.loop(heat_in_place, u, 8, (0.2,)), (u0,), (t,))
    _, jv_ref = dk.jvp(lambda u: dk.checkpoint.loop(heat, u, 8, (0.2,)), (u0,), (t,))
    np.testing.assert_allclose(to_numpy(jv), to_numpy(jv_ref), rtol=1e-13)
    np.testing.assert_array_equal(snapshot(u0), before)


# -- item 2: nondeterministic steps -------------------------------------------------------
def global_noise(backend):
    """A step drawing from the backend's global generator (NumPy's or torch's)."""
    if backend == "numpy":
        draw = lambda: np.random.standard_normal(N)  # noqa: E731
    else:
        import torch

        draw = lambda: torch.randn(N, dtype=torch.float64)  # noqa: E731

    def step(u, i, k):
        return heat(u, i, k) + 1e-3 * draw()

    return step


def seed(backend, s):
    np.random.seed(s)
    if backend != "numpy":
        import torch

        torch.manual_seed(s)


def test_a_random_step_is_an_error_unless_its_generator_is_replayed(backend, to_backend):
    if backend == "torch-cuda":
        pytest.skip("the CUDA generator is exercised by the CPU test's code path")
    u0 = to_backend(initial())
    step = global_noise(backend)
    with pytest.raises(TransformError, match=r"recomputing state \d+ did not reproduce.*step "
                                             r"\d+ is not deterministic.*preserve_rng_state"):
        dk.grad(loss(step, tight()))(u0)
    seed(backend, 3)
    g_all = to_numpy(dk.grad(loss(step, BIG))(u0))  # store-all: each step runs once
    after_all = float(np.random.random()) if backend == "numpy" else None
    seed(backend, 3)
    g = to_numpy(dk.grad(loss(step, tight(), preserve_rng_state=True))(u0))
    assert dk.checkpoint.last_report().advances > 2 * STEPS  # it did recompute
    np.testing.assert_allclose(g, g_all, rtol=1e-12)
    if after_all is not None:  # the generator ends where the forward sweep left it
        assert float(np.random.random()) == after_all
    # switched off, the check stays silent (and the gradient is that of another trajectory)
    g_off = to_numpy(dk.grad(loss(step, tight(), check_recompute=False))(u0))
    assert np.abs(g_off - g_all).max() > 1e-6


def test_while_loop_replays_the_generator_and_detects_a_random_step(backend, to_backend):
    if backend == "torch-cuda":
        pytest.skip("the CUDA generator is exercised by the CPU test's code path")
    step, u0 = global_noise(backend), to_backend(initial())

    def J(u, budget, **options):
        return dnp.sum(dk.checkpoint.while_loop(lambda u, i, k: i < STEPS, step, u, (0.2,),
                                                budget, **options) ** 2)

    with pytest.raises(TransformError, match=r"did not reproduce the forward sweep"):
        dk.grad(J)(u0, tight(schedule=None))
    seed(backend, 5)
    g_ref = to_numpy(dk.grad(lambda u: J(u, tight(schedule=None), check_recompute=False))(u0))
    seed(backend, 5)
    g_ref_value = to_numpy(dk.grad(loss(step, BIG))(u0))  # the same draws, store-all
    seed(backend, 5)
    g = to_numpy(dk.grad(lambda u: J(u, tight(schedule=None), preserve_rng_state=True))(u0))
    np.testing.assert_allclose(g, g_ref_value, rtol=1e-12)
    assert np.abs(g_ref - g_ref_value).max() > 1e-6


def test_jacrev_reruns_the_forward_sweep_with_the_same_draws():
    step = global_noise("numpy")

    def F(budget, **options):
        return lambda u: dk.checkpoint.loop(step, u, 30, (0.2,), budget, **options)[:3]

    np.random.seed(1)
    with pytest.raises(TransformError, match=r"recomputing state 1 .* step 0 is not det"):
        dk.jacrev(F(BIG))(initial())  # the second row reruns the whole loop
    np.random.seed(1)
    J_all = dk.jacrev(F(BIG, preserve_rng_state=True))(initial())
    np.random.seed(1)
    np.testing.assert_allclose(dk.jacrev(F(tight(), preserve_rng_state=True))(initial()), J_all,
                               rtol=1e-12)


def test_a_generator_held_by_the_step_is_an_error_naming_the_step():
    rng = np.random.default_rng(0)  # a user's own generator: no global state to replay

    def step(u, i, k):
        return heat(u, i, k) + 1e-3 * rng.standard_normal(N)

    with pytest.raises(TransformError, match=r"state (\d+) did not reproduce the forward "
                                             r"sweep: step \d+ is not deterministic.*"
                                             r"default_rng\(\[seed, i\]\)"):
        dk.grad(loss(step, tight(), preserve_rng_state=True))(initial())


def test_randomness_derived_from_the_step_index_is_reproducible():
    def step(u, i, k):
        return heat(u, i, k) + 1e-3 * np.random.default_rng([7, i]).standard_normal(N)

    g_all = dk.grad(loss(step, BIG))(initial())
    np.testing.assert_allclose(dk.grad(loss(step, tight()))(initial()), g_all, rtol=1e-12)


def test_a_deterministic_step_passes_the_check_on_every_schedule(tmp_path):
    ram = tight(20, n=200)["budget"]["memory"]
    disk = {"budget": {"memory": ram, "disk": {"path": str(tmp_path), "size": "64MiB"}},
            "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}
    g_all = dk.grad(loss(heat, BIG, n=200))(initial())
    for budget in (tight(n=200), tight(3, None, n=200), disk, tight(2, "periodic", n=200)):
        np.testing.assert_allclose(dk.grad(loss(heat, budget, n=200))(initial()), g_all,
                                   rtol=1e-12)
        assert dk.checkpoint.last_report().advances > 200  # each one recomputed states


def test_states_computed_by_a_program_are_never_compared_but_keep_the_order():
    fp = Fingerprints(state_bytes=1000)
    fp.seen(0, [np.zeros(3)])
    fp.skip(1)  # a compiled step's program made state 1: nothing recorded
    fp.seen(2, [np.ones(3)])
    fp.seen(1, [np.full(3, 7.0)])  # recomputed eagerly: not compared, not an error
    with pytest.raises(TransformError, match="recomputing state 2"):
        fp.seen(2, [np.full(3, 2.0)])


def test_fingerprints_stay_within_their_cap_and_still_check():
    fp = Fingerprints(state_bytes=1000)  # cap: 128 values
    states = [[np.full(10, float(j))] for j in range(1000)]  # flat leaf lists
    for j, leaves in enumerate(states):
        fp.seen(j, leaves)
    assert fp.nbytes == 128 * 9 and fp.every == 8  # a value and a flag: every 8th checked
    for j in range(0, 1000, 3):  # recomputing the same values passes
        fp.seen(j, states[j])
    fp.loaded(8, states[8])  # a recomputation from the snapshot of state 8
    fp.seen(9, states[9])
    fp.seen(10, [states[10][0] + 1])  # not a checked state: its value was dropped
    fp.seen(16, [states[16][0] * (1 + 1e-14)])  # within the float64 tolerance (GPU sums)
    fp.seen(17, [states[17][0] + 1])
    with pytest.raises(TransformError, match=r"recomputing state 24 .* one of steps 16\.\.23 "
                                             r"is not deterministic"):
        fp.seen(24, [states[24][0] * (1 + 1e-9)])
    with pytest.raises(TransformError, match=r"the snapshot of state 40 changed after it was "
                                             r"saved"):
        fp.loaded(40, [states[40][0] + 1])


# -- item 4: step calls are counted exactly -----------------------------------------------
@pytest.mark.parametrize("fraction", [None, 10, 3])
def test_the_report_counts_every_step_call(fraction):
    budget = BIG if fraction is None else tight(fraction, schedule=None)
    calls = [0]

    def step(u, i, k):
        calls[0] += 1
        return heat(u, i, k)

    dk.grad(loss(step, budget))(initial())
    rep = dk.checkpoint.last_report()
    assert rep.advances == calls[0] == rep.plan.forward_advances  # step 0's tape is reused
    calls[0] = 0
    dk.grad(lambda u: dnp.sum(dk.checkpoint.while_loop(lambda u, i, k: i < STEPS, step, u,
                                                       (0.2,), budget)))(initial())
    assert dk.checkpoint.last_report().advances == calls[0]


# -- issue 9 item 8: NumPy step counts ----------------------------------------------------
def test_step_count_may_be_a_numpy_or_torch_integer(to_backend):
    x0 = to_backend(np.ones(3))
    expect = to_numpy(dk.checkpoint.loop(lambda x, i: 0.5 * x, x0, 3))
    counts = [np.int64(3), np.array(3), np.uint8(3)]
    try:
        import torch

        counts.append(torch.tensor(3))
    except ImportError:
        pass
    for n in counts:
        np.testing.assert_array_equal(to_numpy(dk.checkpoint.loop(lambda x, i: 0.5 * x, x0, n)),
                                      expect)
        g = dk.grad(lambda x, n=n: dnp.sum(dk.checkpoint.loop(lambda x, i: 0.5 * x, x, n)))(x0)
        np.testing.assert_allclose(to_numpy(g), 0.125)
    bad_counts = [3.0, True, np.array([3]), -1, np.array(3.0), np.array(True)]
    if "torch" in sys.modules:
        bad_counts += [sys.modules["torch"].tensor(True), sys.modules["torch"].tensor([3])]
    for bad in bad_counts:
        with pytest.raises(TransformError, match=r"n_steps must be an integer >= 0"):
            dk.checkpoint.loop(lambda x, i: x, x0, bad)
