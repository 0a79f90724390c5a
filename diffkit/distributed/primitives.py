"""The collectives as primitives, and the plugin that declares them (entry point
`distributed`).

Each collective is linear in its input except max/min, and its transpose is another
collective, so every VJP is one communication in which every rank takes part:

    psum (sum, mean)  <->  itself          all_gather  <->  reduce_scatter
    broadcast(src)    <->  reduce(dst=src) shift(+k)   <->  shift(-k)
    exchange (a halo's two shifts at once) <-> itself

`pmax` (max/min over ranks) sends the tangent or cotangent to the ranks holding the extreme;
ties split it equally (the 0.5/0.5 of `maximum`, generalized to k ranks). Kernels are the
active communicator's methods (comm.py), the same for NumPy arrays and torch tensors. With
one rank every collective is the identity, so `check_primitive` sweeps them like any other.
"""

from __future__ import annotations

from diffkit.distributed import comm
from diffkit.extend import Primitive, cases, hookimpl, instantiate, linear
from diffkit.primitives.elementwise import where

__all__ = ["PRIMITIVES", "psum", "pmax", "all_gather", "reduce_scatter", "broadcast",
           "reduce", "shift", "exchange"]


def _normal(*shapes):
    return lambda rng: tuple(rng.standard_normal(s) for s in shapes)


psum = linear("dist_psum", lambda g, _ans, _x, mean: psum.bind(g, mean=mean),
              saves_args=False, saves_ans=False,
              sample=cases((_normal((3, 4)), {"mean": False}), (_normal((5,)), {"mean": True})),
              doc="Sum (or mean) of x over the ranks, on every rank.")


def _share(ans, x, op):
    """Each rank's share of the extreme: 1/k on the k ranks that hold it, else 0."""
    mask = where(x == ans, 1.0, 0.0)
    return mask / psum.bind(mask, mean=False)


pmax = Primitive(
    "dist_pmax",
    jvp=(lambda t, ans, x, op: psum.bind(t * _share(ans, x, op), mean=False),),
    vjp=(lambda g, ans, x, op: psum.bind(g, mean=False) * _share(ans, x, op),),
    subgradient="ties between ranks split equally",
    sample=cases((_normal((3, 4)), {"op": "max"}), (_normal((6,)), {"op": "min"})),
    doc="Elementwise max (op='max') or min (op='min') of x over the ranks.",
)

all_gather = linear("dist_all_gather", lambda g, _ans, _x, axis: reduce_scatter.bind(g, axis=axis),
                    saves_args=False, saves_ans=False,
                    sample=cases((_normal((2, 3)), {"axis": 0}), (_normal((2, 3)), {"axis": 1})),
                    doc="The ranks' blocks concatenated along `axis`, on every rank.")
reduce_scatter = linear("dist_reduce_scatter",
                        lambda g, _ans, _x, axis: all_gather.bind(g, axis=axis),
                        saves_args=False, saves_ans=False,
                        sample=cases((_normal((4, 3)), {"axis": 0}),
                                     (_normal((2, 4)), {"axis": 1})),
                        doc="This rank's block (along `axis`) of the sum of x over the ranks.")
broadcast = linear("dist_broadcast", lambda g, _ans, _x, src: reduce.bind(g, dst=src),
                   saves_args=False, saves_ans=False, sample=cases((_normal((3,)), {"src": 0})),
                   doc="Rank src's x, on every rank.")
reduce = linear("dist_reduce", lambda g, _ans, _x, dst: broadcast.bind(g, src=dst),
                saves_args=False, saves_ans=False, sample=cases((_normal((3,)), {"dst": 0})),
                doc="The sum of x over the ranks on rank dst, zeros elsewhere.")
shift = linear("dist_shift",
               lambda g, _ans, _x, offset, periodic: shift.bind(g, offset=-offset,
                                                                periodic=periodic),
               saves_args=False, saves_ans=False,
               sample=cases((_normal((3, 2)), {"offset": 1, "periodic": True}),
                            (_normal((4,)), {"offset": -1, "periodic": False})),
               doc="x of rank - offset (sent to rank + offset); zeros off a non-periodic end.")



def _exchange_jvp(tangents, _ans, a, b, periodic):
    return exchange.bind(instantiate(tangents[0], a), instantiate(tangents[1], b),
                         periodic=periodic)


def _exchange_vjp(g, ans, _a, _b, periodic):
    # exchange is its own transpose in this arrangement: the cotangent of the ghost that
    # came from the left goes back left, where it belongs to that rank's b, and so on. Both
    # are sent even when one is a symbolic zero: every rank must take part.
    return exchange.bind(instantiate(g[0], ans[0]), instantiate(g[1], ans[1]),
                         periodic=periodic)


exchange = Primitive(
    "dist_exchange", jvp=_exchange_jvp, vjp=_exchange_vjp, multiple_results=True,
    sample=cases((_normal((2, 3), (2, 3)), {"periodic": True}),
                 (_normal((1, 4), (1, 4)), {"periodic": False})),
    doc="(b of rank - 1, a of rank + 1), both sent at once: the two halves of a halo.")

PRIMITIVES = (psum, pmax, all_gather, reduce_scatter, broadcast, reduce, shift, exchange)


def _kernels() -> dict:
    a = comm.active
    return {
        "dist_psum": lambda x, mean: _mean(a().all_reduce(x, "sum"), mean),
        "dist_pmax": lambda x, op: a().all_reduce(x, op),
        "dist_all_gather": lambda x, axis: a().all_gather(x, axis),
        "dist_reduce_scatter": lambda x, axis: a().reduce_scatter(x, axis),
        "dist_broadcast": lambda x, src: a().broadcast(x, src),
        "dist_reduce": lambda x, dst: a().reduce(x, dst),
        "dist_shift": lambda x, offset, periodic: a().shift(x, offset, periodic),
        "dist_exchange": lambda x, y, periodic: a().exchange(x, y, periodic),
    }


def _mean(total, mean):
    return total / comm.active().world_size() if mean else total


# -- hooks --------------------------------------------------------------------------------
@hookimpl
def diffkit_primitives():
    return list(PRIMITIVES)


@hookimpl
def diffkit_kernels(backend):
    return _kernels() if backend in ("numpy", "torch") else None


@hookimpl
def diffkit_communicators():
    return {"torch": comm.TorchCommunicator, "local": lambda timeout_s=None: comm.Local()}
