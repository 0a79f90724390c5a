"""Lifetime of the disk tier's run directories: made with an owner marker, removed on SIGTERM,
and swept when their process is gone.

HPC schedulers end a job at its walltime with SIGTERM (then SIGKILL after a grace period).
Python's default SIGTERM action kills the process without running ``finally`` blocks or
``weakref.finalize``, which left a run's snapshots behind. While a disk-tier run directory is
open, the main thread's SIGTERM handler removes every open run directory and then does what
the previous handler would have done: the default action (the process still dies by SIGTERM,
as the scheduler expects), or the previous Python handler, removing the directories only if
that handler raises (one that returns lets the run go on, so its snapshots are kept). A
SIGTERM that was ignored stays ignored. The previous handler is restored when the last run
directory closes.

SIGKILL cannot be caught: each run directory holds an ``owner`` file (host and process id), and
`make_run_directory` first removes the run directories in the same path whose process on this
host is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading

__all__ = ["PREFIX", "make_run_directory", "release_run_directory", "sweep_stale"]

PREFIX = "diffkit-snapshots-"
_OWNER = "owner"

_lock = threading.RLock()
_open: dict[str, object] = {}  # run directories of this process not yet released -> on_signal
_previous = None  # the SIGTERM handler ours replaced, while ours is installed


def make_run_directory(base: str, on_signal=None) -> str:
    """A fresh run directory under `base` (created if needed), marked as this process's, after
    removing the stale ones left there by dead processes. `on_signal()` is called before
    SIGTERM removes it."""
    base = os.path.realpath(base)  # one spelling per directory, for `_open`
    os.makedirs(base, exist_ok=True)
    sweep_stale(base)
    path = tempfile.mkdtemp(prefix=PREFIX, dir=base)
    with _lock:
        _open[path] = on_signal  # before the marker: a sweep must never see it as stale
        _install_handler()
    with open(os.path.join(path, _OWNER), "w") as fh:
        fh.write(f"{socket.gethostname()} {os.getpid()}\n")
    return path


def release_run_directory(path: str) -> None:
    """Remove a run directory (idempotent); restore the previous SIGTERM handler when it was
    the last one open."""
    shutil.rmtree(path, ignore_errors=True)
    with _lock:
        _open.pop(path, None)
        if not _open:
            _restore_handler()


def sweep_stale(base: str) -> list[str]:
    """Remove the run directories under `base` whose owner process on this host is gone; those
    of other hosts (a shared file system) and those without a marker are left alone.
    Returns the removed paths."""
    base = os.path.realpath(base)
    try:
        names = os.listdir(base)
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(base, name)
        if name.startswith(PREFIX) and _is_stale(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _is_stale(path: str) -> bool:
    try:
        with open(os.path.join(path, _OWNER)) as fh:
            host, pid = fh.read().split()
        pid = int(pid)
    except (OSError, ValueError):
        return False  # not ours to judge: being created, or not a diffkit run directory
    if host != socket.gethostname():
        return False
    if pid == os.getpid():  # a previous process with our id (containers reuse them)
        with _lock:
            return path not in _open
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


# -- the SIGTERM handler ----------------------------------------------------------------------
def _install_handler() -> None:
    """Put ours in front of the current SIGTERM handler, from the main thread only (the only
    one that may set handlers) and never over an ignored SIGTERM."""
    global _previous
    if _previous is not None or threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current in (signal.SIG_IGN, None):  # None: set outside Python; leave it alone
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _previous = current


def _restore_handler() -> None:
    """Put the previous handler back, unless someone replaced ours meanwhile."""
    global _previous
    if _previous is None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, _previous)
    _previous = None


def _remove_open() -> None:
    with _lock:
        paths = list(_open.items())
    for path, on_signal in paths:
        if on_signal is not None:
            with contextlib.suppress(Exception):  # the process is going: remove the files
                on_signal()
        release_run_directory(path)


def _on_sigterm(signum, frame) -> None:
    previous = _previous
    if callable(previous):
        try:
            previous(signum, frame)
        except BaseException:
            _remove_open()
            raise
        return
    _remove_open()  # the default action: clean up, then die by SIGTERM as before
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
