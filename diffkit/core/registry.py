"""The frozen registry: primitives, backends and kernels collected from plugins, validated.

Built once from a pluggy PluginManager, then read-only. Kernels of a backend are collected
the first time that backend is used, so an optional library (torch) is imported only when
its arrays appear.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from diffkit.core.primitive import Primitive
from diffkit.errors import MissingKernelError, RegistryError

__all__ = ["Backend", "Unsupported", "Registry"]


@dataclass(frozen=True)
class Backend:
    """An array library diffkit can run on.

    Args:
        name: backend name ("numpy", "torch").
        recognizes: `recognizes(type) -> bool`, True for this backend's array types.
        asarray: `asarray(x, dtype=None, device=None)` converting to this backend.
        to_numpy: converts one of its arrays to a NumPy array (host copy).
        describe: short text for error messages, e.g. "torch.Tensor on cuda:0".
        explain: `explain(prim_name, args, exc) -> exception | None`, asked only after one
            of its kernels raised, for a clearer error (tensors on two devices, ...).
        inexact: `inexact(dtype) -> bool | None`: whether values of one of its dtypes carry
            derivatives (floating or complex); None for a dtype that is not its own.
        default: lists, tuples and Python numbers become arrays of this backend (diffkit's
            NumPy backend) unless `dk.default_backend` names another, and its arrays are weak
            constants: next to another backend's array they move to it; at most one backend
            is the default.
        program_buffers: `program_buffers(program, pool) -> {equation index: array}`: the
            equations of a compiled program (`core.program`) whose kernel may write into a
            preallocated output, with the arrays (taken from `pool`, which the programs of
            one loop share). None: every output is allocated by its kernel.
        lower_program: `lower_program(program, runs) -> program` computing the same values
            with other equations (NumPy's: elementwise chains fused into one numba loop,
            plugins/diffkit_numpy/fusion.py), applied to a compiled loop step's programs
            before `program_buffers` when fusion is on (`dk.checkpoint.fuse_steps`); never
            to programs run through `bind`. `runs`: how often the caller expects to run it
            (it may skip work that would not pay), None: lower fully now. None: programs
            run as traced.
        stand_in: `stand_in(x) -> array` of x's shape, dtype and device taking no memory (a
            broadcast view of one element), for tracing a compiled step by shapes only, a
            kernel's output at a time (`checkpoint.compiled`), and for a loop's tape node,
            which need not keep its outputs. None: steps are traced with their values.
    """

    name: str
    recognizes: Callable[[type], bool]
    asarray: Callable[..., Any]
    to_numpy: Callable[[Any], Any]
    describe: Callable[[Any], str] = field(default=lambda x: type(x).__name__)
    explain: Callable[..., BaseException | None] | None = None
    inexact: Callable[[Any], bool | None] | None = None
    default: bool = False
    program_buffers: Callable[..., dict] | None = None
    lower_program: Callable[[Any], Any] | None = None
    stand_in: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Unsupported:
    """A kernel deliberately absent from a backend, with the reason users will read."""

    reason: str


class Registry:
    """Primitives, backends and (lazily) kernels, validated and then read-only."""

    def __init__(self, pm, on_broken: Callable[[str, str, Exception], None] | None = None):
        """`on_broken(plugin, hook, exc)` is told of each hook that raises, and the plugin's
        result is left out; without it such a hook is a RegistryError naming the plugin."""
        self._pm, self._on_broken = pm, on_broken
        self.broken: dict[str, str] = {}  # plugin -> why its kernels were left out
        prims: dict[str, Primitive] = {}
        origin: dict[str, str] = {}
        for plugin_name, result in self._each_impl("diffkit_primitives"):
            for p in result or ():
                _check_primitive(p, plugin_name, prims, origin)
                prims[p.name] = p
                origin[p.name] = plugin_name
        backends: dict[str, Backend] = {}
        backend_origin: dict[str, str] = {}
        for plugin_name, result in self._each_impl("diffkit_backends"):
            for b in result or ():
                if b.name in backends:
                    raise RegistryError(
                        f"backend {b.name!r} is provided by both plugin "
                        f"{backend_origin[b.name]!r} and plugin {plugin_name!r}; "
                        f"uninstall or unregister one of them"
                    )
                other = next((o for o in backends.values() if o.default), None)
                if b.default and other is not None:
                    raise RegistryError(
                        f"backends {other.name!r} (plugin {backend_origin[other.name]!r}) and "
                        f"{b.name!r} (plugin {plugin_name!r}) both say they are the default; "
                        f"only diffkit's NumPy backend is"
                    )
                backends[b.name] = b
                backend_origin[b.name] = plugin_name
        self.primitives = MappingProxyType(prims)
        self.origin = MappingProxyType(origin)
        self.backends = MappingProxyType(backends)
        self.backend_origin = MappingProxyType(backend_origin)
        self._kernels: dict[str, MappingProxyType] = {}
        self._kernel_origin: dict[str, dict[str, str]] = {}
        self._type_backend: dict[type, Backend | None] = {}
        self._inexact: dict = {}  # dtype -> bool, as its backend says

    def _each_impl(self, hook_name: str, **kwargs):
        """Call every implementation of a hook separately, yielding (plugin name, result);
        a hook that raises is reported (`on_broken`) and skipped, or a RegistryError."""
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():  # registration order
            if impl.plugin_name in self.broken:
                continue
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                why = f"its {hook_name}() raised {type(exc).__name__}: {str(exc)[:300]}"
                if self._on_broken is None:
                    raise RegistryError(f"plugin {impl.plugin_name!r} is broken: {why}") from exc
                self.broken[impl.plugin_name] = why
                self._on_broken(impl.plugin_name, hook_name, exc)
                continue
            yield impl.plugin_name, result

    # -- kernels -----------------------------------------------------------------------
    def kernels(self, backend: str) -> MappingProxyType:
        """All kernels of `backend` (name -> kernel or Unsupported), collected on first use."""
        table = self._kernels.get(backend)
        if table is None:
            table = self._collect_kernels(backend)
        return table

    @property
    def collected(self) -> tuple[str, ...]:
        """The backends whose kernels have been collected (those in use)."""
        return tuple(self._kernels)

    def kernel_origin(self, backend: str) -> dict[str, str]:
        """Which plugin supplied each kernel of `backend`."""
        self.kernels(backend)
        return dict(self._kernel_origin[backend])

    def _collect_kernels(self, backend: str) -> MappingProxyType:
        table: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for plugin_name, result in self._each_impl("diffkit_kernels", backend=backend):
            for name, kernel in (result or {}).items():
                if name not in self.primitives:
                    raise RegistryError(
                        f"plugin {plugin_name!r} gives a {backend} kernel for {name!r}, "
                        f"but no plugin declares a primitive of that name; declare it in "
                        f"diffkit_primitives() or fix the name"
                    )
                if name in table:
                    raise RegistryError(
                        f"the {backend} kernel of {name!r} is given by both plugin "
                        f"{origin[name]!r} and plugin {plugin_name!r}; keep one"
                    )
                table[name] = kernel
                origin[name] = plugin_name
        frozen = MappingProxyType(table)
        self._kernels[backend] = frozen
        self._kernel_origin[backend] = origin
        return frozen

    def kernel(self, prim: Primitive, backend: str) -> Callable:
        """The kernel of `prim` on `backend`, or an error naming who has one."""
        k = self.kernels(backend).get(prim.name)
        if k is None or isinstance(k, Unsupported):
            have = [b for b in self.backends if b != backend and _has(self, b, prim.name)]
            why = f" ({k.reason})" if isinstance(k, Unsupported) else ""
            plugin = self.origin.get(prim.name)
            if k is None and plugin in self.broken:
                why = f" (plugin {plugin!r} was left out: {self.broken[plugin]})"
            raise MissingKernelError(
                f"primitive {prim.name!r} has no kernel on backend {backend!r}{why}; "
                f"backends that have it: {', '.join(have) or 'none'}. Convert the inputs "
                f"with dk.asarray(x, backend=...) or install a plugin providing it."
            )
        return k

    # -- types -------------------------------------------------------------------------
    @property
    def default_backend(self) -> Backend:
        """The backend whose arrays are weak (NumPy's); lists and numbers become its arrays
        unless `dk.default_backend` names another (`core.dispatch.default_backend`)."""
        for b in self.backends.values():
            if b.default:
                return b
        raise RegistryError(
            f"no backend is the default (of {', '.join(self.backends) or 'none'}); diffkit's "
            f"NumPy backend is (Backend(..., default=True)): reinstall diffkit"
        )

    def is_inexact(self, dtype) -> bool:
        """Whether values of `dtype` carry derivatives, as the backend owning it says."""
        try:
            return self._inexact[dtype]
        except (KeyError, TypeError):
            pass
        for b in self.backends.values():
            answer = b.inexact(dtype) if b.inexact is not None else None
            if answer is not None:
                with contextlib.suppress(TypeError):  # an unhashable dtype: not cached
                    self._inexact[dtype] = bool(answer)
                return bool(answer)
        raise RegistryError(
            f"no backend ({', '.join(self.backends)}) owns dtype {dtype!r}, so diffkit "
            f"cannot tell whether it carries derivatives; the backend of these arrays must "
            f"declare Backend(..., inexact=lambda dtype: ...)"
        )

    def backend_of(self, t: type) -> Backend | None:
        """The backend owning array type `t` (None for anything else), cached."""
        try:
            return self._type_backend[t]
        except KeyError:
            pass
        found = None
        for b in self.backends.values():
            if b.recognizes(t):
                found = b
                break
        self._type_backend[t] = found
        return found


def _has(reg: Registry, backend: str, name: str) -> bool:
    try:
        k = reg.kernels(backend).get(name)
    except Exception:  # a backend whose library is missing has nothing
        return False
    return k is not None and not isinstance(k, Unsupported)


def _check_primitive(p, plugin_name: str, prims: dict, origin: dict) -> None:
    if not isinstance(p, Primitive):
        raise RegistryError(
            f"plugin {plugin_name!r} returned {p!r} from diffkit_primitives(); "
            f"expected diffkit.extend.Primitive objects"
        )
    if p.name in prims:
        raise RegistryError(
            f"primitive {p.name!r} is declared by both plugin {origin[p.name]!r} and "
            f"plugin {plugin_name!r}; rename one of them"
        )
    if not p.nondiff and not (p.has_jvp and p.has_vjp):
        missing = " and ".join(
            n for n, has in (("JVP", p.has_jvp), ("VJP", p.has_vjp)) if not has
        )
        raise RegistryError(
            f"primitive {p.name!r} from plugin {plugin_name!r} has no {missing} rule; "
            f"declare it (jvp=..., vjp=...) or mark the primitive nondiff=True"
        )
