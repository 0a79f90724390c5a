"""Snapshot checksums of the disk tiers (issue 17 item 6 follow-up): CRC-32 on every write and
every load, a corrupted file (a flipped byte in its data or header, cut short, grown) an error
naming the file and the step, a tampered snapshot of a resumable run refused however often it
is rerun, and a resume journal of version 1 (SHA-256) still verified, with SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
import zlib

import numpy as np
import pytest

import diffkit as dk
import diffkit.numpy as dnp
from diffkit.checkpoint import storage
from diffkit.checkpoint.executor import Executor
from diffkit.checkpoint.resume import PREFIX
from diffkit.checkpoint.storage import Checksum
from diffkit.errors import CheckpointStorageError, ResumeError


def _budget(path):
    return {"budget": {"memory": 2**20, "disk": {"path": str(path), "size": "1GiB"}},
            "schedule": "multilevel", "costs": {"disk_write": 0.01, "disk_read": 0.01}}


class Crash(Exception):
    pass


def _step(u, i, a):
    if i == _step.crash_at:
        raise Crash(i)
    return 0.5 * dnp.sin(u) * a + 0.5 * u


def _grad(path, u0, resume=False, crash_at=-1, n=300):
    _step.crash_at = crash_at
    J = lambda u, a: dnp.sum(dk.checkpoint.loop(_step, u, n, (a,), _budget(path),
                                                resume=resume))
    return dk.grad(J, argnums=(0, 1))(u0, 1.5)


def test_the_checksum_is_crc32_of_the_leaves_in_c_order():
    a = np.arange(12.0).reshape(3, 4)
    b = np.arange(5, dtype=np.int32)
    c = Checksum()
    for x in (a.T, b):  # a transposed view: its elements in C order, as the file holds them
        c.update(x)
    want = zlib.crc32(b.tobytes(), zlib.crc32(np.ascontiguousarray(a.T).tobytes()))
    assert c.text() == f"crc32:{want:08x}"
    old = Checksum("sha256")
    old.update(a)
    assert old.text() == "sha256:" + hashlib.sha256(a.tobytes()).hexdigest()
    with pytest.raises(CheckpointStorageError, match=r"unknown snapshot checksum 'md5': this "
                                                     r"diffkit checks crc32 and sha256"):
        Checksum("md5")


def _damage(how, path):
    """Corrupt a snapshot file: a byte flipped in the data or the header, cut, or grown."""
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        if how == "truncated":
            fh.truncate(size - 8)
            return
        if how == "grown":
            fh.seek(0, os.SEEK_END)
            fh.write(b"\x00")
            return
        at = size // 2 if how == "data" else fh.read(128).index(b"(") + 1  # the shape's digit
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ (0x01 if how == "data" else 0x02)]))


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("how", ["data", "header", "truncated", "grown"])
def test_a_corrupted_snapshot_is_an_error_naming_the_file_and_step(tmp_path, to_backend,
                                                                   monkeypatch, how, overlap):
    real_write, hit = storage.Storage._write, []

    def write_then_damage(self, key, state):
        real_write(self, key, state)
        if not hit:
            hit.append(key[1])
            _damage(how, self.files[key].path)

    monkeypatch.setattr(storage.Storage, "_write", write_then_damage)
    monkeypatch.setattr(Executor, "overlap_io", overlap)
    with pytest.raises(CheckpointStorageError) as err:
        _grad(tmp_path, to_backend(np.linspace(0, 1, 1000)))
    (step,) = hit
    assert err.match(rf"snapshot \S+state_{step}\.npy is corrupted: the state saved at step "
                     rf"{step} in the disk tier no longer matches the CRC-32 checksum, shapes "
                     rf"and dtypes recorded when it was written, so the gradient cannot be "
                     rf"trusted\. Check the disk, or use a memory-only budget")
    assert os.listdir(tmp_path) == []


def _crashed_run(path, u0):
    with pytest.raises(Crash):
        _grad(path, u0, resume="t", crash_at=200)
    home = path / (PREFIX + "t")
    lines = [json.loads(x) for x in (home / "journal.jsonl").read_text().splitlines()]
    return home, lines


def _point_file(lines):
    """The snapshot file the resume point loads first."""
    point = [r for r in lines if "point" in r][-1]
    return next(r["path"] for r in lines if r.get("save") == point["step"])


def test_a_resumed_run_with_a_tampered_snapshot_is_refused_until_deleted(tmp_path):
    u0 = np.linspace(0, 1, 1000)
    g_full = _grad(tmp_path, u0)
    home, lines = _crashed_run(tmp_path, u0)
    assert all(r["checksum"].startswith("crc32:") for r in lines if "save" in r)
    _damage("data", _point_file(lines))
    for _ in range(2):  # refused on every rerun, never used unverified
        with pytest.raises(CheckpointStorageError, match=rf"is corrupted: the state saved at "
                           rf".*CRC-32 checksum.*to start the run over, delete its directory "
                           rf"\(rm -r {os.path.realpath(home)}\)"):
            _grad(tmp_path, u0, resume="t")
    for f in os.listdir(home):
        os.remove(home / f)
    os.rmdir(home)
    g = _grad(tmp_path, u0, resume="t")
    assert dk.checkpoint.last_report().resumed_from is None
    assert all(np.array_equal(a, b) for a, b in zip(g, g_full, strict=True))


def _as_version_1(home, lines):
    """Rewrite a run's manifest and journal as diffkit wrote them before CRC-32: version 1,
    each snapshot's SHA-256 of its leaves under "sha256"."""
    manifest = json.loads((home / "manifest.json").read_text())
    (home / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    out = []
    for rec in lines:
        if "save" in rec:
            digest = hashlib.sha256()
            with open(rec["path"], "rb") as fh:
                for _ in rec["layout"]:
                    digest.update(np.lib.format.read_array(fh).tobytes())
            rec = {k: v for k, v in rec.items() if k != "checksum"}
            rec["sha256"] = digest.hexdigest()
        out.append(json.dumps(rec) + "\n")
    (home / "journal.jsonl").write_text("".join(out))


def test_a_run_of_manifest_version_1_resumes_verified_with_sha256(tmp_path):
    u0 = np.linspace(0, 1, 1000)
    g_full = _grad(tmp_path, u0)
    home, lines = _crashed_run(tmp_path, u0)
    _as_version_1(home, lines)
    with pytest.raises(Crash):  # resumed, then killed again: the manifest is version 2 now
        _grad(tmp_path, u0, resume="t", crash_at=250)
    assert json.loads((home / "manifest.json").read_text())["version"] == 2
    g = _grad(tmp_path, u0, resume="t")
    assert 150 < dk.checkpoint.last_report().resumed_from <= 250  # through the SHA-256 records
    assert all(np.array_equal(a, b) for a, b in zip(g, g_full, strict=True))


def test_a_tampered_snapshot_of_a_version_1_run_is_refused_by_its_sha256(tmp_path):
    u0 = np.linspace(0, 1, 1000)
    home, lines = _crashed_run(tmp_path, u0)
    _as_version_1(home, lines)
    _damage("data", _point_file(lines))
    with pytest.raises(CheckpointStorageError, match=r"is corrupted: .*no longer matches the "
                                                     r"SHA-256 checksum"):
        _grad(tmp_path, u0, resume="t")


def test_a_journal_without_checksums_is_refused(tmp_path):
    u0 = np.linspace(0, 1, 1000)
    home, lines = _crashed_run(tmp_path, u0)
    bare = [{k: v for k, v in r.items() if k != "checksum"} for r in lines]
    (home / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bare))
    with pytest.raises(ResumeError, match=r"run 't': the journal records no checksum for "
                                          r"\S+state_\d+\.npy, so it cannot be verified"):
        _grad(tmp_path, u0, resume="t")
