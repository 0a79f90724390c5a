"""A value whose shape its inputs' values decide (`u[u > c]`, `nonzero`, `unique`) is guarded
in a program: replaying it on values that give another shape traces a new program instead of
running the old one on a shape it was not made for."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.errors import CompileError
from diffkit.testing import to_numpy

U0 = np.linspace(-1.0, 1.0, 64)


def masked_sum(u):
    m = u > 0.3
    return dnp.sum(u[m] * u[m])


def nonzero_sum(u):
    return dnp.sum(u[dnp.nonzero(u > 0.3)] ** 3)


def flat_sum(u):
    return dnp.sum(dnp.take(u, dnp.flatnonzero(u < -0.2)))


READS = {"u[mask]": masked_sum, "nonzero": nonzero_sum, "flatnonzero": flat_sum}


@pytest.mark.parametrize("read", READS)
def test_a_loop_whose_mask_count_changes_gets_the_eager_gradient(read, to_backend):
    """The count of u > 0.3 changes over the steps: every count gets its program."""
    f = READS[read]

    def step(u, i):
        return u * 0.97 + 0.001 * f(u) - 0.3 * dnp.sin(3 * u + i)

    def grad(compile):
        def loss(u0):
            return dnp.sum(dk.checkpoint.loop(step, u0, 30, compile=compile) ** 2)
        return to_numpy(dk.grad(loss)(to_backend(U0)))

    eager = grad(False)
    compiled = grad("auto")
    report = dk.checkpoint.last_report().compiled
    assert report.startswith("compiled") and "1 program set" not in report, report
    np.testing.assert_allclose(compiled, eager, rtol=1e-12, atol=1e-14)


def test_a_program_replayed_on_another_count_refuses():
    program = dk.make_program(masked_sum)(U0)
    assert "guard shape of dynamic_getitem" in str(program)
    np.testing.assert_allclose(program(U0 * 1.0), masked_sum(U0))
    with pytest.raises(CompileError, match="shape of dynamic_getitem"):
        program(U0 * 0.5)


def test_an_integer_index_is_not_guarded():
    """obs[i] has one shape whatever i is: no guard, one program for every i."""
    program = dk.make_program(lambda u, i: u[i] * 2.0)(U0, np.asarray(3))
    assert "guard" not in str(program)


def test_unique_is_guarded():
    program = dk.make_program(lambda u: dnp.unique(dnp.round(u * 3)))(U0)
    assert "guard shape of unique" in str(program)
