"""Declared residuals: a tape node keeps what its VJP rules' parameter names say they read.

The poison test runs every built-in VJP rule, for every pattern of traced arguments, with
each value the tape does not keep replaced by an object that refuses any use: a rule that
reads what it did not declare fails here instead of reading None on the tape.
"""

from __future__ import annotations

import sys
from itertools import combinations
from pathlib import Path

import diffkit_stencil.primitives as stencil
import numpy as np
import pytest

import diffkit.numpy as dnp
from diffkit.core.primitive import Primitive
from diffkit.core.residuals import keep_plan, pass_cotangent, passes_through, rule_reads
from diffkit.core.reverse import _NODE_BYTES, _TAPE_BYTES, VJPTrace
from diffkit.core.rules import elementwise
from diffkit.primitives.plugin import FAMILIES
from diffkit.testing import to_numpy

PRIMITIVES = [p for family in FAMILIES for p in family.PRIMITIVES] + list(stencil.PRIMITIVES)
DIFFERENTIABLE = [p for p in PRIMITIVES if p.has_vjp and not p.nondiff and p.sample]


class Unkept(Exception):
    """A rule used a value its parameter names said it does not read."""


def _refuse(self, *args, **kwargs):
    raise Unkept(f"the rule read {object.__getattribute__(self, 'what')}, declared unread")


class Poison:
    """Stands for a value the tape did not keep: any use of it raises `Unkept`."""

    def __init__(self, what: str):
        object.__setattr__(self, "what", what)

    __getattr__ = __setattr__ = __getitem__ = __len__ = __iter__ = __bool__ = _refuse
    __array__ = __array_ufunc__ = __array_function__ = __float__ = __int__ = _refuse
    __complex__ = __index__ = __contains__ = __neg__ = __pos__ = __abs__ = __invert__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = object.__hash__
    for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and",
                "or", "xor"):
        locals()[f"__{_op}__"] = locals()[f"__r{_op}__"] = _refuse
    del _op

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise Unkept(f"the rule passed a value declared unread to torch.{func.__name__}")


def _masks(positions: list[int]):
    """Every non-empty subset of the differentiable positions (singletons and all of them
    when there are many)."""
    if len(positions) > 4:
        subsets = [(i,) for i in positions] + [tuple(positions)]
    else:
        subsets = [c for k in range(1, len(positions) + 1) for c in combinations(positions, k)]
    return [sum(1 << i for i in s) for s in subsets]


def _call_rules(prim, g, ans, args, params, mask):
    """The cotangents the backward walk would compute for the traced arguments in `mask`."""
    if prim.vjp_args is None:
        return [prim.vjp_all(g, ans, *args, **params)]
    return [rule(g, ans, *args, **params) for i, rule in enumerate(prim.vjp_args)
            if rule is not None and mask >> i & 1]


def _same(a, b) -> bool:
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None or not hasattr(a, "shape"):
        return a is b or type(a) is type(b)
    return np.array_equal(to_numpy(a), to_numpy(b), equal_nan=True)


def _poisoned_cases(prim, to_backend):
    """(args, params, mask, ans) per sampled case and traced-argument pattern whose rules run
    on the values themselves (patterns a rule cannot take, such as a traced None, left out)."""
    for raw, params in prim.sample(np.random.default_rng(0)):
        args = tuple(to_backend(a) if isinstance(a, np.ndarray | np.generic) else a for a in raw)
        ans = prim.bind(*args, **params)
        positions = [i for i, a in enumerate(args) if hasattr(a, "dtype")
                     and (prim.vjp_args is None or prim.vjp_args[i] is not None)]
        for mask in _masks(positions):
            yield args, params, mask, ans


@pytest.mark.parametrize("prim", DIFFERENTIABLE, ids=lambda p: p.name)
def test_rules_read_only_what_they_declare(prim, to_backend):
    checked = 0
    for args, params, mask, ans in _poisoned_cases(prim, to_backend):
        g = ans
        try:
            want = _call_rules(prim, g, ans, args, params, mask)
        except Exception:  # noqa: BLE001 (a pattern the rules do not take: no claim to check)
            continue
        keep_args, keep_ans = prim.keep.get(mask) or keep_plan(prim, mask, len(args))
        kept = [keep_args if isinstance(keep_args, bool) else keep_args[i]
                for i in range(len(args))]
        poisoned = tuple(a if k else Poison(f"argument {i}")
                         for i, (a, k) in enumerate(zip(args, kept, strict=True)))
        try:
            got = _call_rules(prim, g, ans if keep_ans else Poison("the output"), poisoned,
                              params, mask)
        except Unkept as e:
            pytest.fail(f"{prim.name}, traced arguments {mask:b}: {e}")
        assert _same(got, want), f"{prim.name}, traced arguments {mask:b}"
        checked += 1
    assert checked, f"{prim.name}: no sampled case ran its VJP rules"


def test_the_poison_catches_a_rule_that_reads_what_it_did_not_declare(to_backend):
    lying = Primitive("lying", vjp=(lambda g, _ans, _x: g * _x,))
    x = to_backend(np.ones(3))
    keep_args, keep_ans = keep_plan(lying, 1, 1)
    assert (keep_args, keep_ans) == (False, False)
    with pytest.raises(Unkept, match="declared unread"):
        lying.vjp_args[0](x, Poison("the output"), Poison("argument 0"))


@pytest.mark.parametrize(("rule", "nargs", "reads"), [
    (lambda g, _ans, x, _y: g * x, 2, (False, (True, False))),
    (lambda g, ans, *_rest: g * ans, 3, (True, (False, False, False))),
    (lambda g, ans, *args: g, 2, (True, (True, True))),
    (lambda g, _ans, x, axis=None, keepdims=False: g, 1, (False, (True,))),
    (lambda g, _ans, x, *, axis: g, 1, (False, (True,))),
    (pass_cotangent, 2, (False, (False, False))),
], ids=["names", "unread-varargs", "read-varargs", "params-after", "keyword-only", "pass"])
def test_rule_reads_what_its_parameter_names_declare(rule, nargs, reads):
    assert rule_reads(rule, nargs) == reads


@pytest.mark.parametrize("rule", [
    lambda g, ans: g,  # fewer positions than arguments
    lambda g, ans, x, **params: g,
    max,  # a builtin: no signature to read
], ids=["too-few", "params-too-soon", "builtin"])
def test_a_rule_that_declares_nothing_specific_keeps_everything(rule):
    assert rule_reads(rule, 2) is None
    prim = Primitive("undeclared", vjp=(rule, None))
    assert keep_plan(prim, 1, 2) == (True, True)


def test_an_elementwise_rule_declares_through_its_derivative():
    prim = elementwise("d_declared", lambda _ans, x, _y: 2 * x, lambda ans, _x, _y: ans)
    assert keep_plan(prim, 0b01, 2) == ((True, False), False)
    assert keep_plan(prim, 0b10, 2) == (False, True)
    assert keep_plan(prim, 0b11, 2) == ((True, False), True)


def test_only_the_declared_pass_through_rule_counts_as_allocation_free():
    assert passes_through(pass_cotangent)
    assert not passes_through(lambda g, _ans, _x: g)


def _bench_loops():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_loops
    finally:
        sys.path.pop(0)
    return bench_loops


@pytest.mark.parametrize(("problem", "arrays"), [(0, 0), (1, 3)], ids=["heat", "burgers"])
def test_store_all_tape_of_a_benchmark_step_keeps_only_what_its_products_read(
        problem, arrays, to_backend):
    """One taped step of bench_loops' heat (linear: no array kept) and Burgers (u, u+ - u-
    and the second difference, what its products read; nu's 8 bytes)."""
    p = _bench_loops().problems(1.0)[problem]
    trace = VJPTrace()
    u = trace.leaf(to_backend(p.u0))
    args = [trace.leaf(to_backend(np.float64(a))) for a in p.args]
    p.make_step(dnp)(u, 0, *args)
    nodes = sum(1 for n in trace.nodes if n[0] is not None)
    data = arrays * p.u0.nbytes + 8 * len(args)
    assert trace.nbytes() == _TAPE_BYTES + nodes * _NODE_BYTES + data
