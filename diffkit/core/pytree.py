"""Pytrees: nested containers whose leaves are arrays (JAX's model).

Nodes: tuple, list, dict (keys in sorted order, as JAX), namedtuples, dataclasses, None
(an empty node), and user types registered with `register_pytree_node`. Everything else
is a leaf. Flattening is iterative-free recursion over container depth only (never over
array sizes or tape lengths).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["flatten", "unflatten", "map", "leaves", "structure", "register_pytree_node", "TreeDef"]

_registry: dict[type, tuple[Callable, Callable]] = {}


class TreeDef(NamedTuple):
    """The structure of a pytree: node kind, auxiliary data, and child structures."""

    kind: Any  # a type, or None for a leaf
    aux: Any
    children: tuple

    @property
    def num_leaves(self) -> int:
        if self.kind is None:
            return 1
        return sum(c.num_leaves for c in self.children)

    def __repr__(self):
        if self.kind is None:
            return "*"
        name = getattr(self.kind, "__name__", str(self.kind))
        return f"{name}({', '.join(repr(c) for c in self.children)})"


_LEAF = TreeDef(None, None, ())


def register_pytree_node(cls: type, flatten_fn: Callable, unflatten_fn: Callable) -> None:
    """Make `cls` a pytree node: `flatten_fn(x) -> (children, aux)`,
    `unflatten_fn(aux, children) -> x`. Registering the same type twice is an error."""
    if cls in _registry:
        raise ValueError(f"{cls.__name__} is already registered as a pytree node")
    _registry[cls] = (flatten_fn, unflatten_fn)


def _node_of(x):
    t = type(x)
    if t is tuple or t is list:
        return t, None, x
    if t is dict:
        keys = sorted(x)
        return t, tuple(keys), [x[k] for k in keys]
    if x is None:
        return type(None), None, ()
    custom = _registry.get(t)
    if custom is not None:
        children, aux = custom[0](x)
        return t, aux, children
    if isinstance(x, tuple) and hasattr(t, "_fields"):
        return t, None, x
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x))
        return t, names, [getattr(x, n) for n in names]
    return None


def _rebuild(kind, aux, children):
    if kind is tuple:
        return tuple(children)
    if kind is list:
        return list(children)
    if kind is dict:
        return dict(zip(aux, children, strict=True))
    if kind is type(None):
        return None
    custom = _registry.get(kind)
    if custom is not None:
        return custom[1](aux, children)
    if hasattr(kind, "_fields"):
        return kind(*children)
    return kind(**dict(zip(aux, children, strict=True)))


def flatten(tree, is_leaf: Callable | None = None) -> tuple[list, TreeDef]:
    """Leaves of `tree` in order, and its structure."""
    out: list = []
    return out, _flatten_into(tree, out, is_leaf)


def _flatten_into(x, out: list, is_leaf) -> TreeDef:
    # A module-level function, not a closure: a self-referencing closure would form a
    # reference cycle holding `out` (and so every leaf array) until the next GC pass.
    if is_leaf is not None and is_leaf(x):
        out.append(x)
        return _LEAF
    node = _node_of(x)
    if node is None:
        out.append(x)
        return _LEAF
    kind, aux, children = node
    return TreeDef(kind, aux, tuple(_flatten_into(c, out, is_leaf) for c in children))


def unflatten(treedef: TreeDef, leaves_: list | tuple):
    """Rebuild a pytree of structure `treedef` from `leaves_` (as many as it has)."""
    it = iter(leaves_)
    result = _build(treedef, it)
    if next(it, _LEAF) is not _LEAF:
        raise ValueError(f"too many leaves for tree structure {treedef!r}")
    return result


def _build(td: TreeDef, it):
    if td.kind is None:
        return next(it)
    return _rebuild(td.kind, td.aux, [_build(c, it) for c in td.children])


def leaves(tree) -> list:
    """The leaves of `tree`, in flattening order."""
    return flatten(tree)[0]


def structure(tree) -> TreeDef:
    """The structure of `tree`."""
    return flatten(tree)[1]


def map(f: Callable, tree, *rest, is_leaf: Callable | None = None):  # noqa: A001 (JAX's name)
    """Apply `f` to the leaves of `tree` (and matching leaves of `rest`), keeping the structure."""
    flat, td = flatten(tree, is_leaf)
    others = []
    for r in rest:
        rflat, rtd = flatten(r, is_leaf)
        if rtd != td:
            raise ValueError(f"tree structures differ: {td!r} and {rtd!r}")
        others.append(rflat)
    return unflatten(td, [f(*xs) for xs in zip(flat, *others, strict=True)])
