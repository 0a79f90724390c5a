"""Shape functions: results equal NumPy's, gradients agree with finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.testing import check_grads, to_numpy

rng = np.random.default_rng(0)
A = rng.normal(size=(2, 3, 4))
M = rng.normal(size=(3, 4))
V = rng.normal(size=(5,))

# (name, diffkit function, numpy function, args): each applied to the same inputs.
CASES = [
    ("reshape-1", lambda x: dnp.reshape(x, (4, -1)), lambda x: np.reshape(x, (4, -1)), (A,)),
    ("reshapeF", lambda x: dnp.reshape(x, (6, 4), order="F"),
     lambda x: np.reshape(x, (6, 4), order="F"), (A,)),
    ("ravel", dnp.ravel, np.ravel, (A,)),
    ("transpose", dnp.transpose, np.transpose, (A,)),
    ("transpose-axes", lambda x: dnp.transpose(x, (1, -1, 0)),
     lambda x: np.transpose(x, (1, -1, 0)), (A,)),
    ("moveaxis", lambda x: dnp.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1), (A,)),
    ("moveaxis2", lambda x: dnp.moveaxis(x, (0, 1), (2, 0)),
     lambda x: np.moveaxis(x, (0, 1), (2, 0)), (A,)),
    ("swapaxes", lambda x: dnp.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2), (A,)),
    ("squeeze", dnp.squeeze, np.squeeze, (A[:1, :, None],)),
    ("squeeze-axis", lambda x: dnp.squeeze(x, (0, 2)), lambda x: np.squeeze(x, (0, 2)),
     (A[:1, :, None],)),
    ("expand_dims", lambda x: dnp.expand_dims(x, (0, -1)),
     lambda x: np.expand_dims(x, (0, -1)), (M,)),
    ("broadcast_to", lambda x: dnp.broadcast_to(x, (2, 3, 4)),
     lambda x: np.broadcast_to(x, (2, 3, 4)), (M,)),
    ("atleast_2d", dnp.atleast_2d, np.atleast_2d, (V,)),
    ("atleast_3d-1d", dnp.atleast_3d, np.atleast_3d, (V,)),
    ("atleast_3d-2d", dnp.atleast_3d, np.atleast_3d, (M,)),
    ("concatenate", lambda x, y: dnp.concatenate([x, y], 1),
     lambda x, y: np.concatenate([x, y], 1), (M, M[:, :2])),
    ("concatenate-None", lambda x, y: dnp.concatenate((x, y), axis=None),
     lambda x, y: np.concatenate((x, y), axis=None), (M, V)),
    ("stack", lambda x, y: dnp.stack([x, y], -1), lambda x, y: np.stack([x, y], -1), (M, M)),
    ("hstack-1d", lambda x, y: dnp.hstack([x, y]), lambda x, y: np.hstack([x, y]), (V, V)),
    ("hstack", lambda x, y: dnp.hstack([x, y]), lambda x, y: np.hstack([x, y]), (M, M)),
    ("vstack", lambda x, y: dnp.vstack([x, y]), lambda x, y: np.vstack([x, y]), (V, V)),
    ("dstack", lambda x, y: dnp.dstack([x, y]), lambda x, y: np.dstack([x, y]), (M, M)),
    ("column_stack", lambda x, y: dnp.column_stack([x, y]),
     lambda x, y: np.column_stack([x, y]), (V, V)),
    ("flip", dnp.flip, np.flip, (A,)),
    ("flip-axis", lambda x: dnp.flip(x, (0, -1)), lambda x: np.flip(x, (0, -1)), (A,)),
    ("fliplr", dnp.fliplr, np.fliplr, (M,)),
    ("flipud", dnp.flipud, np.flipud, (M,)),
    ("roll", lambda x: dnp.roll(x, 3), lambda x: np.roll(x, 3), (M,)),
    ("roll-axes", lambda x: dnp.roll(x, (1, -2), (0, 2)),
     lambda x: np.roll(x, (1, -2), (0, 2)), (A,)),
    ("rot90", dnp.rot90, np.rot90, (M,)),
    ("rot90-3", lambda x: dnp.rot90(x, 3, (2, 0)), lambda x: np.rot90(x, 3, (2, 0)), (A,)),
    ("rot90-2", lambda x: dnp.rot90(x, -2), lambda x: np.rot90(x, -2), (M,)),
    ("tile", lambda x: dnp.tile(x, (2, 1, 3)), lambda x: np.tile(x, (2, 1, 3)), (M,)),
    ("tile-int", lambda x: dnp.tile(x, 2), lambda x: np.tile(x, 2), (M,)),
    ("repeat", lambda x: dnp.repeat(x, 2), lambda x: np.repeat(x, 2), (M,)),
    ("repeat-axis", lambda x: dnp.repeat(x, 3, axis=1), lambda x: np.repeat(x, 3, axis=1),
     (M,)),
    ("repeat-array", lambda x: dnp.repeat(x, [1, 0, 2], axis=0),
     lambda x: np.repeat(x, [1, 0, 2], axis=0), (M,)),
    ("pad-constant", lambda x: dnp.pad(x, ((1, 2), (0, 1)), constant_values=((1.5, 2), (3, 4))),
     lambda x: np.pad(x, ((1, 2), (0, 1)), constant_values=((1.5, 2), (3, 4))), (M,)),
    ("pad-int", lambda x: dnp.pad(x, 2), lambda x: np.pad(x, 2), (M,)),
    ("pad-edge", lambda x: dnp.pad(x, (1, 3), mode="edge"),
     lambda x: np.pad(x, (1, 3), mode="edge"), (M,)),
    ("pad-reflect", lambda x: dnp.pad(x, ((2,), (5,)), mode="reflect"),
     lambda x: np.pad(x, ((2,), (5,)), mode="reflect"), (M,)),
    ("pad-symmetric", lambda x: dnp.pad(x, 2, mode="symmetric"),
     lambda x: np.pad(x, 2, mode="symmetric"), (V,)),
    ("pad-wrap", lambda x: dnp.pad(x, ((1, 0), (2, 6)), mode="wrap"),
     lambda x: np.pad(x, ((1, 0), (2, 6)), mode="wrap"), (M,)),
    ("diff", dnp.diff, np.diff, (M,)),
    ("diff-n2-axis0", lambda x: dnp.diff(x, 2, axis=0), lambda x: np.diff(x, 2, axis=0), (A,)),
    ("diff-prepend", lambda x: dnp.diff(x, prepend=0.0, append=[[1.0], [2.0], [3.0]]),
     lambda x: np.diff(x, prepend=0.0, append=[[1.0], [2.0], [3.0]]), (M,)),
    ("tril", dnp.tril, np.tril, (M,)),
    ("tril-k", lambda x: dnp.tril(x, -1), lambda x: np.tril(x, -1), (A,)),
    ("triu-k", lambda x: dnp.triu(x, 1), lambda x: np.triu(x, 1), (M,)),
    ("triu-1d", dnp.triu, np.triu, (V,)),
    ("copy", dnp.copy, np.copy, (M,)),
    ("split", lambda x: dnp.split(x, 2, axis=-1), lambda x: np.split(x, 2, axis=-1), (M,)),
    ("split-indices", lambda x: dnp.split(x, [1, 4, 9]), lambda x: np.split(x, [1, 4, 9]),
     (V,)),
    ("array_split", lambda x: dnp.array_split(x, 3, axis=2),
     lambda x: np.array_split(x, 3, axis=2), (A,)),
    ("broadcast_arrays", dnp.broadcast_arrays, np.broadcast_arrays, (M, V[:4])),
    ("meshgrid-xy", lambda x, y: dnp.meshgrid(x, y), lambda x, y: np.meshgrid(x, y), (V, M[0])),
    ("meshgrid-ij3", lambda x, y: dnp.meshgrid(x, y, x, indexing="ij"),
     lambda x, y: np.meshgrid(x, y, x, indexing="ij"), (V, M[0])),
    ("meshgrid-sparse", lambda x, y: dnp.meshgrid(x, y, sparse=True),
     lambda x, y: np.meshgrid(x, y, sparse=True), (V, M[0])),
    ("block", lambda x, y: dnp.block([[x, y], [y, x]]),
     lambda x, y: np.block([[x, y], [y, x]]), (M, M)),
    ("block-mixed", lambda x, y: dnp.block([[x], [y]]), lambda x, y: np.block([[x], [y]]),
     (M, M[0])),
    ("block-1d", lambda x, y: dnp.block([x, y]), lambda x, y: np.block([x, y]), (V, M[0])),
]


@pytest.mark.parametrize("name,f,ref,args", CASES, ids=[c[0] for c in CASES])
def test_matches_numpy(name, f, ref, args):
    got, want = f(*args), ref(*args)
    if isinstance(want, list | tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    else:
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name,f,ref,args", CASES, ids=[c[0] for c in CASES])
def test_gradients(name, f, ref, args):
    check_grads(f, args, order=1)


@pytest.mark.parametrize("name,f,ref,args", CASES, ids=[c[0] for c in CASES])
def test_torch_agrees(name, f, ref, args):
    torch = pytest.importorskip("torch")
    targs = tuple(torch.tensor(a) for a in args)
    got, want = f(*targs), ref(*args)
    for g, w in zip(*(([x] if hasattr(x, "shape") else x) for x in (got, want)), strict=True):
        assert isinstance(g, torch.Tensor)
        np.testing.assert_array_equal(to_numpy(g), w)
    check_grads(f, targs, order=1)


def test_second_order_through_shape_ops():
    def f(x):
        y = dnp.pad(dnp.roll(x, 1, 0), 1, mode="reflect")
        return dnp.sum(dnp.sin(dnp.concatenate([y, dnp.flip(y)], 1)) ** 2)

    check_grads(f, (M,), order=2)


def test_stack_of_traced_scalars():
    def f(x):
        return dnp.sum(dnp.stack([x[0] * x[1], 2.0, x[2]]) * np.array([1.0, 10.0, 3.0]))

    np.testing.assert_allclose(dk.grad(f)(np.array([2.0, 3.0, 4.0])), [3.0, 2.0, 3.0])
    out = dk.jacfwd(lambda x: dnp.array([x[0] ** 2, x[1] * x[0]]))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(out, [[2.0, 0.0], [2.0, 1.0]])


def test_plain_arrays_stay_plain():
    assert isinstance(dnp.concatenate([M, M]), np.ndarray)
    assert dnp.stack([1.0, 2.0]).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("call,match", [
    (lambda: dnp.transpose(A, (0, 1, 5)), r"dnp\.transpose: axis 5 is out of bounds"),
    (lambda: dnp.moveaxis(A, 3, 0), r"dnp\.moveaxis: axis 3 .* dimension 3"),
    (lambda: dnp.squeeze(A, 1), r"dnp\.squeeze: cannot squeeze axis 1"),
    (lambda: dnp.concatenate([M, A]), r"dnp\.concatenate: shapes \(3, 4\) and \(2, 3, 4\)"),
    (lambda: dnp.concatenate([M, M], axis=-3), r"dnp\.concatenate: axis -3"),
    (lambda: dnp.stack([M, V]), r"dnp\.stack: all input arrays must have the same shape"),
    (lambda: dnp.reshape(M, (5, -1)), r"dnp\.reshape: cannot reshape .* size 12"),
    (lambda: dnp.split(V, 2), r"dnp\.split: .* length 5 does not split into 2"),
    (lambda: dnp.pad(M, 1, mode="mode"), r"dnp\.pad: mode 'mode' is not supported"),
    (lambda: dnp.broadcast_to(M, (4, 3)), r"dnp\.broadcast_to: cannot broadcast"),
    (lambda: dnp.roll(M, 1, axis=2), r"dnp\.roll: axis 2"),
    (lambda: dnp.flip(M, 2), r"dnp\.flip: axis 2"),
    (lambda: dnp.block([[M], M]), r"dnp\.block: list depths are mismatched"),
])
def test_errors(call, match):
    with pytest.raises((ValueError, IndexError, NotImplementedError), match=match):
        call()


def test_axis_error_is_a_diffkit_error():
    from diffkit.errors import DiffkitError

    with pytest.raises(DiffkitError):
        dnp.swapaxes(M, 0, 2)
