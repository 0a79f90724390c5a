"""Faults around a run: SIGTERM during a disk-tier loop, run directories of killed processes,
broken plugins (installed or registered at run time), plugins disabled by name."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
import diffkit.plugins as plugins
from diffkit.checkpoint import cleanup
from diffkit.core.registry import Registry
from diffkit.errors import MissingKernelError, RegistryError
from diffkit.extend import elementwise, hookimpl, uniform
from diffkit.testing import to_numpy

# -- SIGTERM and stale run directories -----------------------------------------------------

CHILD = """
import os, signal, sys, time
import numpy as np
import diffkit as dk
import diffkit.numpy as dnp

path, n, handler, kill_at = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
got = []
if handler == "exit":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(3))
elif handler == "flag":
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
before = signal.getsignal(signal.SIGTERM)

def step(u, i):
    if i == kill_at and not got:
        files = [f for d in os.listdir(path) for f in os.listdir(os.path.join(path, d))]
        print("snapshot files before SIGTERM:", len(files), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.0005)
    return 0.5 * dnp.sin(u) + 0.5 * u

def J(budget):
    return lambda u: dnp.sum(dk.checkpoint.loop(step, u, n, budget=budget))

memory = n * 1000 + 2**20  # room for an eighth of the 8 kB states: most go to disk
disk = {"budget": {"memory": memory, "disk": {"path": path, "size": "1GiB"}},
        "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}
u0 = np.linspace(0, 1, 1000)
g = dk.grad(J(disk))(u0)
assert dk.checkpoint.last_report().peak_snapshots["disk"] > 0
got.append(0)  # no second SIGTERM in the store-all run
g_all = dk.grad(J({"budget": {"memory": "64MiB"}, "schedule": "store_all"}))(u0)
print("finished", got, float(np.max(np.abs(g - g_all))), signal.getsignal(signal.SIGTERM) is before)
"""


def _child(tmp_path, n, handler="default", kill_at=-1):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(n), handler,
                             str(kill_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _snapshot_files(path) -> list[str]:
    """The snapshot files under `path` now (a run directory the child removes while this
    lists it counts as empty)."""
    found = []
    for d in os.listdir(path):
        try:
            found += [f for f in os.listdir(os.path.join(path, d)) if f.startswith("state_")]
        except FileNotFoundError:
            continue
    return found


def test_sigterm_during_a_disk_tier_loop_removes_its_directory_and_kills(tmp_path):
    child = _child(tmp_path, n=20000)  # ~10 s of steps: SIGTERM arrives well before the end
    try:
        deadline = time.monotonic() + 30
        while not _snapshot_files(tmp_path):
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM  # died by the signal, as the scheduler expects
    assert os.listdir(tmp_path) == []


def test_sigterm_with_a_raising_handler_cleans_up_and_runs_it(tmp_path):
    child = _child(tmp_path, n=20000, handler="exit", kill_at=300)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, err
    assert "snapshot files before SIGTERM:" in out and "files before SIGTERM: 0" not in out
    assert os.listdir(tmp_path) == []


def test_sigterm_with_a_handler_that_returns_keeps_the_run_going(tmp_path):
    child = _child(tmp_path, n=600, handler="flag", kill_at=300)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    flag, max_diff, restored = out.splitlines()[-1].split(" ", 1)[1].rsplit(" ", 2)
    assert flag == "[15, 0]" and float(max_diff) < 1e-12 and restored == "True"
    assert os.listdir(tmp_path) == []


def _disk_budget(path):
    return {"budget": {"memory": "256KiB", "disk": {"path": str(path), "size": "1GiB"}},
            "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}


def _disk_grad(path, seen=None, n=200):
    def step(u, i):
        if seen is not None and i == n // 2:
            seen.append(signal.getsignal(signal.SIGTERM))
        return 0.5 * dnp.sin(u) + 0.5 * u

    g = dk.grad(lambda u: dnp.sum(dk.checkpoint.loop(step, u, n, budget=_disk_budget(path))))(
        np.linspace(0, 1, 1000))  # 8 kB states: most go to disk
    assert dk.checkpoint.last_report().peak_snapshots["disk"] > 0
    return g


def test_the_handler_is_installed_while_a_run_directory_is_open_then_restored(tmp_path):
    before, seen = signal.getsignal(signal.SIGTERM), []
    _disk_grad(tmp_path, seen)
    assert seen and set(seen) == {cleanup._on_sigterm}
    assert signal.getsignal(signal.SIGTERM) is before
    assert os.listdir(tmp_path) == []


def test_an_ignored_sigterm_stays_ignored(tmp_path):
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        seen = []
        _disk_grad(tmp_path, seen)
        assert set(seen) == {signal.SIG_IGN} and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_disk_tier_loop_in_a_thread_runs_without_a_handler(tmp_path):
    before, seen, errors = signal.getsignal(signal.SIGTERM), [], []
    thread = threading.Thread(target=lambda: _guard(errors, _disk_grad, tmp_path, seen))
    thread.start()
    thread.join(60)
    assert not errors and set(seen) == {before} and os.listdir(tmp_path) == []


def _guard(errors, fn, *args):
    try:
        fn(*args)
    except Exception as e:  # re-raised in the test's thread by the assertion
        errors.append(e)


def _run_dir(base: Path, pid: int, host: str | None = None, files: int = 3) -> Path:
    d = base / f"{cleanup.PREFIX}{pid}x"
    d.mkdir(parents=True)
    (d / "owner").write_text(f"{host or socket.gethostname()} {pid}\n")
    for k in range(files):
        (d / f"state_{k}.npz").write_bytes(b"\0" * 64)
    return d


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_stale_run_directories_of_dead_processes_are_removed_on_the_next_start(tmp_path):
    stale = _run_dir(tmp_path, _dead_pid())
    _disk_grad(tmp_path)
    assert not stale.exists() and os.listdir(tmp_path) == []


def test_only_directories_of_dead_processes_on_this_host_are_swept(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = _run_dir(tmp_path, _dead_pid())
        alive = _run_dir(tmp_path, sleeper.pid)
        other_host = _run_dir(tmp_path, _dead_pid(), host="some-other-node")
        previous_self = _run_dir(tmp_path, os.getpid())  # an earlier process with our id
        unmarked = tmp_path / f"{cleanup.PREFIX}unmarked"
        unmarked.mkdir()
        not_ours = tmp_path / "results"
        not_ours.mkdir()
        assert sorted(cleanup.sweep_stale(str(tmp_path))) == sorted([str(dead),
                                                                     str(previous_self)])
        assert alive.exists() and other_host.exists() and unmarked.exists()
        assert not_ours.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_directory_of_this_process_is_never_swept(tmp_path):
    path = cleanup.make_run_directory(f"{tmp_path}/./")  # another spelling of the same path
    try:
        assert cleanup.sweep_stale(str(tmp_path)) == [] and os.path.isdir(path)
        assert (Path(path) / "owner").read_text().split() == [socket.gethostname(),
                                                              str(os.getpid())]
    finally:
        cleanup.release_run_directory(path)
    assert os.listdir(tmp_path) == []


# -- broken plugins -------------------------------------------------------------------------

GOOD = """
import numpy as np
from diffkit.extend import elementwise, hookimpl, uniform
cube3 = elementwise("cube3", lambda ans, x: 3 * x * x, sample=uniform())

@hookimpl
def diffkit_primitives():
    return [cube3]

@hookimpl
def diffkit_kernels(backend):
    return {"cube3": lambda x: x ** 3} if backend == "numpy" else None
"""

BROKEN = {
    "dk_badimport": "import diffkit_no_such_dependency\n",
    "dk_badprims": "from diffkit.extend import hookimpl\n\n@hookimpl\ndef diffkit_primitives():\n"
                   "    raise RuntimeError('primitives exploded')\n",
    "dk_badkernels": "from diffkit.extend import hookimpl\n\n@hookimpl\n"
                     "def diffkit_kernels(backend):\n    raise RuntimeError('kernels exploded')\n",
    "dk_badsig": "from diffkit.extend import hookimpl\n\n@hookimpl\n"
                 "def diffkit_kernels(backend, device):\n    return {}\n",
}

PROBE = """
import json, warnings
from diffkit.plugins import PluginWarning
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import diffkit.numpy as dnp
    import diffkit.plugins as plugins
    from diffkit.cli import main
    sin = float(dnp.sin(1.0)) + float(dnp.cos(dnp.asarray([0.0]))[0])
    prims = plugins.registry().primitives
    cube = float(prims["cube3"].bind(2.0)) if "cube3" in prims else None
main(["plugins"])
print(json.dumps({"sin": sin, "cube": cube, "broken": sorted(plugins.broken_plugins()),
                  "warnings": [str(w.message) for w in caught
                               if issubclass(w.category, PluginWarning)]}))
"""


def _install(site: Path) -> Path:
    """A temporary environment: plugin modules and one dist-info declaring their entry points."""
    site.mkdir()
    (site / "dk_good.py").write_text(GOOD)
    for module, source in BROKEN.items():
        (site / f"{module}.py").write_text(source)
    info = site / "diffkit_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: diffkit-test-plugins\n"
                                   "Version: 0.1\n")
    names = ["good", *(m.removeprefix("dk_") for m in BROKEN)]
    (info / "entry_points.txt").write_text(
        "[diffkit]\n" + "".join(f"{n} = dk_{n}\n" for n in names))
    return site


def _probe(site: Path, **env) -> tuple[dict, str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DIFFKIT_DISABLE_PLUGINS", "DIFFKIT_CONFIG")}
    environ.update(PYTHONPATH=str(site), **env)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    *listing, last = done.stdout.splitlines()
    return json.loads(last), "\n".join(listing)


def test_broken_installed_plugins_are_reported_once_and_left_out(tmp_path):
    result, listing = _probe(_install(tmp_path / "site"))
    assert result["sin"] == pytest.approx(np.sin(1.0) + 1.0) and result["cube"] == 8.0
    assert result["broken"] == ["badimport", "badkernels", "badprims", "badsig"]
    warned = sorted(result["warnings"])
    assert len(warned) == 4, warned  # once each, though the registry was used many times
    for text, name, why in zip(warned, result["broken"], [
            r"importing dk_badimport raised ModuleNotFoundError: No module named "
            r"'diffkit_no_such_dependency'",
            r"its diffkit_kernels\(\) raised RuntimeError: kernels exploded",
            r"its diffkit_primitives\(\) raised RuntimeError: primitives exploded",
            r"pluggy refused it: .*diffkit_kernels"], strict=True):
        assert re.match(
            rf"diffkit plugin '{name}' is broken and was left out \({why}.*\); the other "
            rf"plugins work. Fix or uninstall it, or disable it with "
            rf"DIFFKIT_DISABLE_PLUGINS={name}", text), text
    assert "broken plugins, left out (4):" in listing
    assert "badprims                 its diffkit_primitives() raised RuntimeError" in listing
    assert "primitives from plugin good (1):" in listing


def test_plugins_disabled_by_environment_and_configuration_file_are_not_loaded(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("plugins:\n  disable: [good]\n")
    result, listing = _probe(_install(tmp_path / "site"), DIFFKIT_CONFIG=str(config),
                             DIFFKIT_DISABLE_PLUGINS="badimport, badprims,badkernels,dk_badsig,"
                                                     "torch")
    assert result == {"sin": pytest.approx(np.sin(1.0) + 1.0), "cube": None, "broken": [],
                      "warnings": []}
    assert ("disabled plugins (DIFFKIT_DISABLE_PLUGINS or the user configuration file): "
            "badimport, badkernels, badprims, dk_badsig, good, torch") in listing
    assert "from plugin torch" not in listing


@pytest.mark.parametrize("text,match", [
    ("plugins: [stencil]\n", r"config.yaml: plugins = \['stencil'\] is not understood; write "
                             r"'plugins: \{disable: \[name, ...\]\}'"),
    ("plugins: {disable: stencil}\n", r"config.yaml: plugins.disable = 'stencil' is not a list "
                                      r"of plugin names"),
    ("plugins: {disable: [numpy]}\n", r"plugins numpy cannot be disabled"),
    ("plugins: {disable: &a [x]}\nother: *a\n", r"config.yaml: line 2: YAML aliases"),
    ("- 1\n", r"config.yaml: the top level must be a mapping"),
])
def test_a_bad_configuration_file_is_an_error_naming_it(tmp_path, monkeypatch, text, match):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    monkeypatch.setenv("DIFFKIT_CONFIG", str(config))
    with pytest.raises(RegistryError, match=match):
        plugins.disabled_plugins()


def test_the_core_plugins_cannot_be_disabled(monkeypatch):
    monkeypatch.setenv("DIFFKIT_DISABLE_PLUGINS", "stencil,core")
    monkeypatch.delenv("DIFFKIT_CONFIG", raising=False)
    with pytest.raises(RegistryError, match=r"plugins core cannot be disabled"):
        plugins.disabled_plugins()


class Kaboom:
    """A runtime plugin with a working primitive whose kernels hook raises on `fail_on`."""

    def __init__(self, fail_on):
        self.fail_on = fail_on
        self.prim = elementwise("kaboom_cube", lambda ans, x: 3 * x * x, sample=uniform())

    @hookimpl
    def diffkit_primitives(self):
        return [self.prim]

    @hookimpl
    def diffkit_kernels(self, backend):
        if backend == self.fail_on:
            raise RuntimeError(f"no kernels for {backend} today")
        return {"kaboom_cube": lambda x: x ** 3}


def test_a_runtime_plugin_whose_kernels_raise_is_refused(backend, to_backend):
    x = to_backend(np.array([0.5, 1.0]))
    dnp.sin(x)  # the backend is in use: a new plugin's kernels for it are collected at once
    name = "torch" if backend.startswith("torch") else "numpy"
    with pytest.raises(RegistryError, match=rf"plugin 'kaboom' was not registered: its "
                                            rf"diffkit_kernels\(\) raised RuntimeError: no "
                                            rf"kernels for {name} today; fix that hook"):
        plugins.register(Kaboom(fail_on=name), name="kaboom")
    assert plugins.plugin_manager().get_plugin("kaboom") is None
    np.testing.assert_allclose(to_numpy(dnp.sin(x)), np.sin([0.5, 1.0]))
    assert "kaboom_cube" not in plugins.registry().primitives


def test_a_runtime_plugin_whose_primitives_hook_raises_is_refused():
    class Bad:
        @hookimpl
        def diffkit_primitives(self):
            raise ValueError("bad table")

    with pytest.raises(RegistryError, match=r"plugin 'bad' was not registered: its "
                                            r"diffkit_primitives\(\) raised ValueError: bad "
                                            r"table"):
        plugins.register(Bad(), name="bad")
    assert float(dnp.sin(0.5)) == pytest.approx(np.sin(0.5))


def test_a_runtime_plugin_with_a_wrong_hook_signature_is_refused():
    class Wrong:
        @hookimpl
        def diffkit_kernels(self, backend, device):
            return {}

    with pytest.raises(RegistryError, match=r"plugin 'wrong' was not registered: pluggy "
                                            r"refused it: .*diffkit_kernels"):
        plugins.register(Wrong(), name="wrong")
    assert float(dnp.sin(0.5)) == pytest.approx(np.sin(0.5))


def test_a_disabled_name_cannot_be_registered(monkeypatch):
    monkeypatch.setenv("DIFFKIT_DISABLE_PLUGINS", "kaboom")
    with pytest.raises(RegistryError, match=r"plugin 'kaboom' is disabled \("
                                            r"DIFFKIT_DISABLE_PLUGINS or the user"):
        plugins.register(Kaboom(fail_on=None), name="kaboom")


def test_a_lenient_registry_leaves_out_kernels_that_raise_and_says_so():
    pm = plugins.make_plugin_manager()
    plugin = Kaboom(fail_on="numpy")
    pm.register(plugin, name="kaboom")
    told = []
    with plugins.use_registry(Registry(pm, on_broken=lambda *a: told.append(a[:2]))):
        assert float(dnp.sin(0.5)) == pytest.approx(np.sin(0.5))
        with pytest.raises(MissingKernelError, match=r"'kaboom_cube' has no kernel on backend "
                                                     r"'numpy' \(plugin 'kaboom' was left out: "
                                                     r"its diffkit_kernels\(\) raised "
                                                     r"RuntimeError: no kernels for numpy"):
            plugin.prim.bind(np.ones(2))
    assert told == [("kaboom", "diffkit_kernels")]


def test_a_strict_registry_names_the_plugin_whose_hook_raises():
    pm = plugins.make_plugin_manager()
    pm.register(Kaboom(fail_on="numpy"), name="kaboom")
    with pytest.raises(RegistryError, match=r"plugin 'kaboom' is broken: its diffkit_kernels"
                                            r"\(\) raised RuntimeError: no kernels for numpy"):
        Registry(pm).kernels("numpy")
