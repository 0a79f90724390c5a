"""Products: values equal NumPy's (1-D promotion, batching, einsum forms), gradients against
finite differences, JAX's complex convention, and the error messages."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads

RNG = np.random.default_rng(1)


def normal(*shape):
    return RNG.normal(size=shape)


MATMUL_SHAPES = [
    ((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((3, 4), (4, 2)), ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 2)),
]


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES)
def test_matmul_shapes_and_gradients(sa, sb):
    a, b = normal(*sa), normal(*sb)
    np.testing.assert_allclose(dnp.matmul(a, b), a @ b)
    assert np.shape(dnp.matmul(a, b)) == np.shape(a @ b)
    check_grads(dnp.matmul, (a, b), order=2)
    check_grads(lambda a, b: a @ b, (a, b), order=1)


def test_matmul_complex_is_plain_transpose():
    a = normal(2, 3) + 1j * normal(2, 3)
    b = normal(3, 2) + 1j * normal(3, 2)
    g = normal(2, 2) + 1j * normal(2, 2)
    _, pullback = dk.vjp(dnp.matmul, a, b)
    ct_a, ct_b = pullback(g)
    np.testing.assert_allclose(ct_a, g @ b.T)  # no conjugation (JAX's convention)
    np.testing.assert_allclose(ct_b, a.T @ g)


EINSUMS = [
    ("ii->", [(3, 3)]), ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("ij->ji", [(2, 3)]),
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("i,i", [(3,), (3,)]),
    ("i,j->ij", [(2,), (3,)]), ("ijk->", [(2, 3, 2)]), ("ij->i", [(2, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("...ii->...", [(2, 3, 3)]),
    ("i...,i...", [(3, 2), (3, 4, 1)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("abc,cd,b->ad", [(2, 3, 4), (4, 2), (3,)]), ("bii,i->b", [(2, 3, 3), (3,)]),
    ("Ba,aC", [(2, 3), (3, 4)]), ("i,i->i", [(1,), (3,)]), ("ij,ij->", [(2, 3), (2, 3)]),
]


@pytest.mark.parametrize(("spec", "shapes"), EINSUMS)
def test_einsum(spec, shapes):
    ops = [normal(*s) for s in shapes]
    want = np.einsum(spec, *ops)
    got = dnp.einsum(spec, *ops)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.shape(got) == np.shape(want)
    check_grads(lambda *ops: dnp.einsum(spec, *ops), ops, order=2)


def test_einsum_gradient_only_for_traced_operand():
    a, b = normal(2, 3), normal(3, 4)
    g = dk.grad(lambda a: dnp.sum(dnp.einsum("ij,jk->ik", a, b)))(a)
    np.testing.assert_allclose(g, np.broadcast_to(b.sum(1), (2, 3)))


@pytest.mark.parametrize(("sa", "sb"), [((), (3,)), ((3,), (3,)), ((2, 3), (3, 4)),
                                        ((2, 3), (3,)), ((3,), (3, 2)), ((2, 2, 3), (4, 3, 2)),
                                        ((2, 3, 4), (4,))])
def test_dot_inner(sa, sb):
    a, b = normal(*sa), normal(*sb)
    np.testing.assert_allclose(dnp.dot(a, b), np.dot(a, b))
    check_grads(dnp.dot, (a, b), order=2)
    b2 = normal(*(sb[:-2] + sb[-1:] if len(sb) > 1 else sb))
    if sa and b2.shape[-1:] == sa[-1:]:
        np.testing.assert_allclose(dnp.inner(a, b2), np.inner(a, b2))
        check_grads(dnp.inner, (a, b2), order=1)


def test_vdot_outer_kron():
    a = normal(2, 3) + 1j * normal(2, 3)
    b = normal(3, 2) + 1j * normal(3, 2)
    np.testing.assert_allclose(dnp.vdot(a, b), np.vdot(a, b))
    x, y = normal(2, 3), normal(3, 2)
    check_grads(dnp.vdot, (x, y), order=2)
    np.testing.assert_allclose(dnp.outer(x, y), np.outer(x, y))
    check_grads(dnp.outer, (x, y), order=2)
    for sa, sb in [((2, 3), (2, 2)), ((3,), (2, 2)), ((2, 1, 2), (3, 2)), ((), (3,))]:
        p, q = normal(*sa), normal(*sb)
        np.testing.assert_allclose(dnp.kron(p, q), np.kron(p, q))
        check_grads(dnp.kron, (p, q), order=1)


@pytest.mark.parametrize(("sa", "sb", "axes"), [
    ((3, 2), (4, 5), 0), ((3, 2, 4), (4, 5), 1), ((3, 2, 4), (2, 4, 5), 2),
    ((3, 2, 4), (2, 3, 5), ([1, 0], [0, 1])), ((3, 2, 4), (5, 4, 2), ([2], [1])),
    ((3, 2, 4), (4, 2), (-1, 0)),
])
def test_tensordot(sa, sb, axes):
    a, b = normal(*sa), normal(*sb)
    np.testing.assert_allclose(dnp.tensordot(a, b, axes), np.tensordot(a, b, axes))
    check_grads(lambda a, b: dnp.tensordot(a, b, axes), (a, b), order=1)


@pytest.mark.parametrize(("shape", "offset", "axis1", "axis2"), [
    ((3, 3), 0, 0, 1), ((3, 4), 1, 0, 1), ((4, 3), -2, 0, 1), ((2, 3, 4), 0, 1, 2),
    ((2, 3, 4), 1, 2, 0), ((3, 3), 5, 0, 1),
])
def test_trace(shape, offset, axis1, axis2):
    a = normal(*shape)
    np.testing.assert_allclose(dnp.trace(a, offset, axis1, axis2),
                               np.trace(a, offset, axis1, axis2))
    check_grads(lambda a: dnp.trace(a, offset, axis1, axis2), (a,), order=2)
    np.testing.assert_array_equal(dk.grad(lambda a: dnp.sum(a.trace(offset, axis1, axis2)))(a),
                                  np.ones(shape) * _diag_mask(shape, offset, axis1, axis2))


def _diag_mask(shape, offset, axis1, axis2):
    i = np.arange(shape[axis1]).reshape([-1 if k == axis1 else 1 for k in range(len(shape))])
    j = np.arange(shape[axis2]).reshape([-1 if k == axis2 else 1 for k in range(len(shape))])
    return (j - i == offset).astype(float)


def test_errors():
    with pytest.raises(ValueError, match="not aligned"):
        dnp.matmul(normal(2, 3), normal(2, 3))
    with pytest.raises(ValueError, match="enough dimensions"):
        dnp.matmul(normal(), normal(3))
    with pytest.raises(ValueError, match="name 2 operand"):
        dnp.einsum("ij,jk", normal(2, 2))
    with pytest.raises(ValueError, match="do not match an operand of shape"):
        dnp.einsum("ijk", normal(2, 2))
    with pytest.raises(ValueError, match="no '...' ellipsis"):
        dnp.einsum("...i->i", normal(2, 3))
    with pytest.raises(ValueError, match="shape-mismatch for sum"):
        dnp.tensordot(normal(2, 3), normal(2, 3), 1)
    with pytest.raises(ValueError, match="same size"):
        dnp.vdot(normal(2), normal(3))
    with pytest.raises(ValueError, match="cannot be the same"):
        dnp.trace(normal(3, 3), axis1=1, axis2=-1)


def test_tracer_methods_and_second_order():
    a, b = normal(3, 3), normal(3, 2)

    def f(a):
        return dnp.sum((a @ b) ** 2) + a.dot(a).trace() + dnp.einsum("ij,ij", a, a)

    check_grads(f, (a,), order=2)
    h = dk.hessian(lambda x: x @ a @ x)(normal(3))
    np.testing.assert_allclose(h, a + a.T)


SUBLISTS = [  # einsum(op0, sublist0, op1, sublist1, ..., [sublist_out])
    ((0, 1), (1, 2)),
    ((0, 1), (1, 2), (2, 0)),
    ((Ellipsis, 1), (1, Ellipsis)),
    ((30, 51), (51,)),
]


@pytest.mark.parametrize("subs", SUBLISTS, ids=[str(s) for s in SUBLISTS])
def test_einsum_sublist_form(subs, backend, to_backend):
    ops = (normal(2, 3), normal(3, 4))[: 2 if len(subs) > 2 or subs[0] == (0, 1) else 1]
    args = [x for op, sub in zip(ops, subs, strict=False) for x in (op, list(sub))]
    args += [list(s) for s in subs[len(ops):]]
    want = np.einsum(*args)
    got = dnp.einsum(*[to_backend(a) if isinstance(a, np.ndarray) else a for a in args])
    np.testing.assert_allclose(dk.asarray(got, backend="numpy"), want, atol=1e-12)
    check_grads(lambda *o: dnp.einsum(*[x for op, s in zip(o, args[1::2], strict=False)
                                        for x in (op, s)], *args[2 * len(ops):]),
                to_backend(ops), order=1)


def test_einsum_sublist_error():
    with pytest.raises(ValueError, match=r"sublist holds integers in \[0, 52\)"):
        dnp.einsum(normal(2, 2), [0, "a"])
