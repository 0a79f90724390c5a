"""The `diffkit_*` hooks a plugin implements (pluggy; pytest's hookspec.py is the model).

A plugin is any object or module with functions marked `@diffkit.extend.hookimpl`. It is
found through the `diffkit` entry-point group, or registered at run time with
`diffkit.plugins.register(obj)`. Built-in backends load exactly like third-party ones.
Hooks are called when the registry is built, never on the dispatch hot path.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("diffkit")


@hookspec
def diffkit_backends():
    """Return the array backends this plugin provides.

    :return: a list of `diffkit.extend.Backend`, each naming the array types it owns.
    Called once per registry build; results of all plugins are concatenated. Two plugins
    providing a backend of the same name is an error naming both.

    Example::

        @hookimpl
        def diffkit_backends():
            return [Backend("numpy", recognizes=lambda t: issubclass(t, np.ndarray), ...)]
    """


@hookspec
def diffkit_primitives():
    """Return the primitives (with their rules) this plugin declares.

    :return: a list of `diffkit.extend.Primitive`.
    Every primitive must have both a JVP and a VJP rule unless declared `nondiff=True`;
    names must be unique across all plugins. Violations are errors naming the plugin.
    """


@hookspec
def diffkit_kernels(backend):
    """Return this plugin's kernels for `backend` (a backend name such as "numpy").

    :param str backend: the backend whose kernels are being collected.
    :return: a dict mapping primitive name to a kernel `kernel(*raw_args, **params)`
        taking and returning raw arrays of that backend, or `Unsupported("why")` to
        declare the primitive deliberately absent there; None or {} when the plugin has
        nothing for this backend.
    Called lazily, the first time a backend's arrays reach a primitive, so a plugin may
    import its array library inside the hook. A kernel for a primitive no plugin
    declares, or two plugins giving the same kernel, is an error naming the plugins.
    """


@hookspec
def diffkit_communicators():
    """Return the communicators (transports for `diffkit.distributed`) this plugin provides.

    :return: a dict mapping a name to a factory `factory(timeout_s=None)` called by
        `dkd.init(communicator=name)` after the processes have joined, returning a
        `diffkit.distributed.comm.Communicator` (raw arrays in, raw arrays of the same
        type out: all_reduce, all_gather, reduce_scatter, broadcast, reduce, shift).
    Called when `dkd.init` runs; results of all plugins are merged, and a name two plugins
    provide is an error naming both. diffkit's own are "torch" (torch.distributed) and
    "local" (one rank).

    Example::

        @hookimpl
        def diffkit_communicators():
            return {"mpi": MPICommunicator}
    """
