"""Pytrees: nested containers whose leaves are arrays (JAX's model).

Nodes: tuple, list, dict (keys in sorted order, as JAX; keys of different types that do
not compare, such as 1 and "a", by type name first), namedtuples, dataclasses, None (an
empty node), and user types registered with `register_pytree_node`. Everything else is a
leaf. Flattening and rebuilding are loops; nesting deeper than `MAX_DEPTH` is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from diffkit.errors import PytreeError

__all__ = ["flatten", "unflatten", "map", "leaves", "structure", "register_pytree_node", "TreeDef",
           "LEAF"]

# TreeDef equality and hashing are tuple operations that recurse in C, taking about two of
# the interpreter's 1,000 recursion levels per tree level (a 1,000-deep TreeDef fails to
# compare, a 100,000-deep one crashes hashing): 256 levels leave room for the caller's stack.
MAX_DEPTH = 256

_registry: dict[type, tuple[Callable, Callable]] = {}


class TreeDef(NamedTuple):
    """The structure of a pytree: node kind, auxiliary data, and child structures."""

    kind: Any  # a type, or None for a leaf
    aux: Any
    children: tuple

    @property
    def num_leaves(self) -> int:
        n, todo = 0, [self]
        while todo:
            td = todo.pop()
            if td.kind is None:
                n += 1
            else:
                todo.extend(td.children)
        return n

    def __repr__(self):
        parts, todo = [], [self]  # todo: TreeDefs still to write, and literal text
        while todo:
            td = todo.pop()
            if isinstance(td, str):
                parts.append(td)
            elif td.kind is None:
                parts.append("*")
            else:
                parts.append(f"{getattr(td.kind, '__name__', td.kind)}(")
                todo.append(")")
                for i, c in enumerate(reversed(td.children)):
                    todo.extend((", ", c) if i else (c,))
        return "".join(parts)


_LEAF = TreeDef(None, None, ())
LEAF = _LEAF  # the structure of a single leaf (`flatten(x)[1] is LEAF` for an array)


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
        keys = _sorted_keys(x)
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


def _sorted_keys(d: dict) -> list:
    """The keys of `d` in their flattening order: sorted, or (keys of several types that do
    not compare) sorted by type name, then key; an error where even that fails."""
    try:
        return sorted(d)
    except TypeError:
        pass
    try:
        return sorted(d, key=lambda k: (type(k).__module__, type(k).__qualname__, k))
    except TypeError:
        shown = ", ".join(repr(k) for k in list(d)[:8]) + (", ..." if len(d) > 8 else "")
        raise PytreeError(
            f"the keys of a dict in a pytree cannot be put in one order ({shown}): pytrees "
            f"sort dict keys, so keys of one type must compare with each other. Use str "
            f"keys, or a list instead of the dict."
        ) from None


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


_END = object()  # what next() gives for an exhausted iterator


def flatten(tree, is_leaf: Callable | None = None) -> tuple[list, TreeDef]:
    """Leaves of `tree` in order, and its structure."""
    node = None if is_leaf is not None and is_leaf(tree) else _node_of(tree)
    if node is None:
        return [tree], _LEAF
    out: list = []
    open_nodes = [(node[0], node[1], iter(node[2]), [])]  # (kind, aux, children left, done)
    while True:
        kind, aux, rest, done = open_nodes[-1]
        for c in rest:
            node = None if is_leaf is not None and is_leaf(c) else _node_of(c)
            if node is None:
                out.append(c)
                done.append(_LEAF)
            else:
                if len(open_nodes) == MAX_DEPTH:
                    raise _too_deep(open_nodes)
                open_nodes.append((node[0], node[1], iter(node[2]), []))
                break
        else:  # every child done: close this node
            open_nodes.pop()
            td = TreeDef(kind, aux, tuple(done))
            if not open_nodes:
                return out, td
            open_nodes[-1][3].append(td)


def _too_deep(open_nodes) -> PytreeError:
    path = " > ".join(getattr(n[0], "__name__", str(n[0])) for n in open_nodes[:4])
    return PytreeError(
        f"a pytree is nested more than {MAX_DEPTH} levels deep ({path} > ...): diffkit's "
        f"pytree functions take up to {MAX_DEPTH} levels. Keep the arrays in a flat list, "
        f"tuple or dict, or stack them into one array."
    )


def unflatten(treedef: TreeDef, leaves_: list | tuple):
    """Rebuild a pytree of structure `treedef` from `leaves_` (as many as it has)."""
    it = iter(leaves_)
    if treedef.kind is None:
        result = next(it, _END)
        if result is _END:
            raise ValueError(f"too few leaves for tree structure {treedef!r}")
    else:
        open_nodes = [(treedef, iter(treedef.children), [])]  # (node, children left, built)
        while True:
            node, rest, built = open_nodes[-1]
            for td in rest:
                if td.kind is not None:
                    open_nodes.append((td, iter(td.children), []))
                    break
                leaf = next(it, _END)
                if leaf is _END:
                    raise ValueError(f"too few leaves for tree structure {treedef!r}")
                built.append(leaf)
            else:  # every child built: rebuild this node
                open_nodes.pop()
                value = _rebuild(node.kind, node.aux, built)
                if not open_nodes:
                    result = value
                    break
                open_nodes[-1][2].append(value)
    if next(it, _END) is not _END:
        raise ValueError(f"too many leaves for tree structure {treedef!r}")
    return result


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
