"""`dk.tree`: flatten, unflatten and map over pytrees (see `diffkit.core.pytree`)."""

from diffkit.core.pytree import (  # noqa: F401
    MAX_DEPTH,
    TreeDef,
    flatten,
    leaves,
    map,
    register_pytree_node,
    structure,
    unflatten,
)

__all__ = ["flatten", "unflatten", "map", "leaves", "structure", "register_pytree_node",
           "TreeDef", "MAX_DEPTH"]
