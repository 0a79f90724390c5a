"""The package's layers point one way: each imports only the layers below it (issue 11).

The import graph is read statically from the source: every `import` / `from ... import` of a
diffkit module, at any indentation (a function-level import is still a dependency).
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import diffkit.plugins as plugins
from diffkit.core.registry import Backend, Registry
from diffkit.errors import RegistryError
from diffkit.plugins import hookimpl

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "diffkit"

# Bottom to top; a module belongs to the first layer one of whose prefixes it starts with.
LAYERS = (
    ("errors", ("diffkit.errors",)),
    ("core", ("diffkit.core",)),
    ("plugins", ("diffkit.config", "diffkit.hookspecs", "diffkit.plugins")),
    ("primitives", ("diffkit.primitives",)),
    ("namespace", ("diffkit.numpy", "diffkit.scipy")),
    ("top", ("diffkit",)),  # transforms, custom rules, checkpointing, CLI, extend, ...
)


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = f
    return mods


def _resolve(name: str, mods) -> str | None:
    """The module `name` names, or the longest prefix of it that is one."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports(tree: ast.AST, mods) -> set[str]:
    """The diffkit modules a module's source imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name, mods) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from diffkit import numpy` imports diffkit.numpy
                full = f"{node.module}.{a.name}"
                found.add(full if full in mods else _resolve(node.module, mods))
    return {m for m in found if m is not None}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(ast.parse(f.read_text()), mods) for m, f in mods.items()}


def layer(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in graph[v]:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle_and_a_self_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d"]]


def test_the_graph_sees_function_level_and_from_package_imports():
    graph = import_graph()
    assert "diffkit.plugins" in graph["diffkit.primitives"]  # `from diffkit import plugins`
    assert "diffkit.plugins" in graph["diffkit.cli"]  # imported inside functions only


def test_the_core_imports_only_the_standard_library_errors_and_itself():
    mods = _modules()
    wrong = []
    for m, f in mods.items():
        if layer(m) != 1:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top == "diffkit":
                    if layer(_resolve(name, mods)) > 1:
                        wrong.append(f"{m} imports {name}")
                elif top not in sys.stdlib_module_names and top != "__future__":
                    wrong.append(f"{m} imports {name} (not the standard library)")
    assert not wrong, "\n".join(wrong)


def test_the_core_is_in_no_import_cycle():
    core_cycles = [c for c in cycles(import_graph()) if any(layer(m) <= 1 for m in c)]
    assert not core_cycles, core_cycles


def test_each_layer_imports_only_the_layers_below_it():
    names = [n for n, _ in LAYERS]
    wrong = sorted(
        f"{m} ({names[layer(m)]}) imports {d} ({names[layer(d)]})"
        for m, deps in import_graph().items() for d in deps
        if layer(d) > layer(m)
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_anywhere_in_the_package():
    """Inside a layer too: the namespace's modules form a one-way chain (_core < _elementwise
    < _shape < _creation < _indexing < ...; the package re-exports, _methods installs)."""
    assert not cycles(import_graph())


@pytest.mark.parametrize("module", ["diffkit.core.reverse", "diffkit.core.forward",
                                    "diffkit.core.primitive", "diffkit.core.registry"])
def test_importing_the_core_loads_no_namespace_and_no_plugin(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.startswith('diffkit')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    loaded = eval(out)
    assert module in loaded
    assert not [m for m in loaded if layer(m) > 1 and m != "diffkit"]  # the package itself


@pytest.mark.parametrize("module", ["diffkit.primitives.plugin", "diffkit.primitives.linalg"])
def test_importing_the_primitives_loads_no_namespace(module):
    """Rules call primitives, not diffkit.numpy: the primitives layer loads without it (and
    runs; the plugins it then loads import what they like)."""
    code = (f"import sys, {module}; from diffkit.primitives import elementwise as ew; "
            "print(sorted(m for m in sys.modules if m.startswith('diffkit.'))); "
            "import numpy as np; print(float(ew.sin(np.float64(0.5))))")  # plugins load here
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.splitlines()
    assert abs(float(out[1]) - 0.479425538604203) < 1e-12
    names = [n for n, _ in LAYERS]
    loaded = eval(out[0])
    assert not [m for m in loaded
                if names[layer(m)] not in ("errors", "core", "plugins", "primitives")]


def test_no_import_in_the_core_waits_for_the_end_of_its_module():
    late = [f"{f.relative_to(ROOT)}:{i}" for f in (PACKAGE / "core").rglob("*.py")
            for i, line in enumerate(f.read_text().splitlines(), 1)
            if re.search(r"noqa:.*E402", line)]
    assert not late, late


# -- what the layers above install into the core ------------------------------------------
def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)


def test_the_core_alone_has_no_registry_and_says_what_builds_it():
    out = _run("import diffkit.core.dispatch as d; d.registry()")
    assert out.returncode != 0
    assert re.search(r"RegistryError: no registry: diffkit.plugins.*import diffkit.primitives",
                     out.stderr), out.stderr


def test_the_core_alone_has_no_array_math_and_says_what_fills_it():
    out = _run("from diffkit.core.zeros import Zero, instantiate; instantiate(Zero(None))")
    assert out.returncode != 0
    assert re.search(r"InternalError: diffkit.core.ops is empty: the primitives layer",
                     out.stderr), out.stderr


def test_the_namespace_installs_the_tracer_operators_and_methods():
    code = ("from diffkit.core.tracer import Tracer\n"
            "names = ('__add__', '__mul__', '__getitem__', '__eq__', 'sum', 'reshape', 'T')\n"
            "before = [n for n in names if n in vars(Tracer)]\n"
            "import diffkit.numpy\n"
            "print(before, [n for n in names if n not in vars(Tracer)])\n"
            "assert hash(Tracer.__new__(Tracer)) is not None  # __eq__ kept it hashable\n")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "[]"]


def _fake_backend(name, **fields):
    return Backend(name=name, recognizes=lambda t: False, asarray=lambda x, **kw: x,
                   to_numpy=lambda x: x, **fields)


class _BackendPlugin:
    def __init__(self, *backends):
        self.backends = backends

    @hookimpl
    def diffkit_backends(self):
        return list(self.backends)


def test_only_one_backend_may_be_the_default():
    pm = plugins.make_plugin_manager()
    pm.register(_BackendPlugin(_fake_backend("mine", default=True)), name="mine")
    with pytest.raises(RegistryError, match=r"backends 'numpy' \(plugin 'numpy'\) and 'mine' "
                                            r"\(plugin 'mine'\) both say they are the default"):
        Registry(pm)


def test_the_default_backend_and_inexact_dtypes_are_the_backends_word():
    pm = plugins.make_plugin_manager()
    told = []
    pm.register(_BackendPlugin(_fake_backend(
        "mine", inexact=lambda dt: told.append(dt) or (dt == "real32" if isinstance(dt, str)
                                                       else None))), name="mine")
    reg = Registry(pm)
    assert reg.default_backend.name == "numpy"
    assert reg.is_inexact(np.dtype("float32")) and not reg.is_inexact(np.dtype("int8"))
    assert reg.is_inexact("real32") and not reg.is_inexact("int32")
    assert reg.is_inexact("real32") and told.count("real32") == 1  # cached
    with pytest.raises(RegistryError, match=r"no backend \(numpy, .*\) owns dtype <class "
                                            r"'object'>, so diffkit cannot tell"):
        reg.is_inexact(object)


def test_a_registry_without_a_default_backend_names_the_fix():
    pm = plugins.make_plugin_manager(entry_points=False)
    pm.register(_BackendPlugin(_fake_backend("mine")), name="mine")
    with pytest.raises(RegistryError, match=r"no backend is the default \(of mine\); "
                                            r"diffkit's NumPy backend is"):
        assert Registry(pm).default_backend is None  # not reached: it raises
