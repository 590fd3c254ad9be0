"""Racily clean files on a file system whose clock is not this machine's (fsclock.py).

A network file system stamps files with its server's clock. Here the server is made to run
a minute behind by moving this machine's clock a minute ahead (time.time_ns): the files
then get real times from the file system, which this machine calls a minute old. Each
cache that remembers files by their stat must still see an edit made just now as racy;
the "machine clock only" cases show that, judged by this machine's clock alone (the
file system's clock not read), the same edit would be trusted."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from reproflake import _proc, digests, fsclock
from reproflake.commands import _noop, _plan_record
from tests.unit.planned_project import FakeNix
from tests.unit.test_plan_delta import DELTA, RECORD, planned
from tests.unit.test_plan_record import run_plan, write_same_size

MINUTE = 60 * 10**9
FS, MACHINE = "file system clock read", "machine clock only"


def machine_ahead(monkeypatch: pytest.MonkeyPatch, by_ns: int = MINUTE) -> None:
    """This machine's clock ``by_ns`` ahead of the file system's (its server behind)."""
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + by_ns)


def judged_by(monkeypatch: pytest.MonkeyPatch, clock: str) -> None:
    """Whether the file system's clock is read (as reproflake does), or not (as before)."""
    if clock == MACHINE:
        monkeypatch.setattr(fsclock, "behind_ns", lambda _root: 0)


# --------------------------------------------------------------------------- the helper


def test_a_file_system_in_step_reads_as_in_step(tmp_path: Path) -> None:
    assert fsclock.behind_ns(tmp_path) == 0
    clock = tmp_path / fsclock.CLOCK
    assert clock.is_file()  # made, in the cache that git ignores
    assert (clock.parent / ".gitignore").read_text().endswith("*\n")


def test_a_file_system_behind_reads_as_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine_ahead(monkeypatch)
    behind = fsclock.behind_ns(tmp_path)
    assert abs(behind - MINUTE) < 10**9
    since = fsclock.Clock(tmp_path).since(time.time_ns())
    now_on_fs = (tmp_path / fsclock.CLOCK).stat().st_mtime_ns
    assert now_on_fs - fsclock.RACY_NS - 10**9 < since <= now_on_fs - fsclock.RACY_NS


def test_a_file_system_ahead_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This machine's clock is then the earlier one: its own reference stands (and a file
    stamped in its future stays racy until that time comes)."""
    machine_ahead(monkeypatch, -MINUTE)
    assert fsclock.behind_ns(tmp_path) == 0


def test_the_clock_is_read_once_per_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real = fsclock.behind_ns

    def counted(root: Path) -> int:
        reads.append(root)
        return real(root)

    monkeypatch.setattr(fsclock, "behind_ns", counted)
    clock = fsclock.Clock(tmp_path)
    assert not reads  # nothing read (nor written) until a cache has something to keep
    clock.since()
    clock.since(time.time_ns())
    assert reads == [tmp_path]


def test_a_read_only_project_is_judged_by_this_machines_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine_ahead(monkeypatch)

    def read_only(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "utime", read_only)
    assert fsclock.behind_ns(tmp_path) == 0
    assert not (tmp_path / fsclock.CLOCK).exists()


# --------------------------------------------------------------------------- the caches


@pytest.mark.parametrize(("clock", "trusted"), [(FS, False), (MACHINE, True)])
def test_source_digests_do_not_remember_a_file_written_just_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: str, trusted: bool
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "proj"
    root.mkdir()
    (root / "a.sh").write_text("echo a\n")
    machine_ahead(monkeypatch)
    judged_by(monkeypatch, clock)
    d = digests.SourceDigests(root)
    d("a.sh")
    # Remembered, a rewrite within the file system's tick would keep the old sha256.
    assert ("a.sh" in d.entries) is trusted


@pytest.mark.parametrize(("clock", "stale"), [(FS, False), (MACHINE, True)])
def test_a_source_edited_while_a_plan_runs_is_not_answered_from_its_record(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch, clock: str, stale: bool
) -> None:
    """Edited after the plan hashed it: the plan said "built", which the file no longer
    is. Its record must not trust the file's stat (the fixture's RACY_NS is 0: only the
    edit made during the plan is recent)."""
    machine_ahead(monkeypatch)
    judged_by(monkeypatch, clock)
    real = digests.SourceDigests.__call__
    edits: list[str] = []

    def edit_once_hashed(self: digests.SourceDigests, rel: str) -> str:
        digest = real(self, rel)
        if rel == "src/a.sh" and not edits:
            write_same_size(built / rel)
            edits.append(rel)
        return digest

    with monkeypatch.context() as mp:
        mp.setattr(digests.SourceDigests, "__call__", edit_once_hashed)
        printed, _ = run_plan(built)
    assert edits and printed[-1].startswith("summary: 0 will build")
    again, _ = run_plan(built)
    assert ("a: will build — src/a.sh changed" in again[0]) is not stale


@pytest.mark.parametrize(("clock", "stale"), [(FS, False), (MACHINE, True)])
def test_a_plan_brought_up_to_date_keeps_a_fresh_edit_racy(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch, clock: str, stale: bool
) -> None:
    """After an edit the plan is brought up to date (_plan_delta) and its answer recorded;
    an edit that recent must be hashed again by the next plan, not trusted by its stat."""
    planned(built)
    assert planned(built)[0] == RECORD
    write_same_size(built / "src" / "a.sh")
    machine_ahead(monkeypatch)
    judged_by(monkeypatch, clock)
    monkeypatch.setattr(fsclock, "RACY_NS", 2 * 10**9)  # the edit is recent; the rest is not
    assert planned(built)[0] == DELTA
    assert planned(built)[0] == (RECORD if stale else DELTA)


@pytest.mark.parametrize(("clock", "stale"), [(FS, False), (MACHINE, True)])
def test_the_noop_stamp_keeps_no_times_for_a_file_written_just_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: str, stale: bool
) -> None:
    """Both where the stamp is written: a build's snapshot, and the stamp taking new
    times after Nix confirmed a touched file's bytes."""
    root, output = noop_project(tmp_path)
    machine_ahead(monkeypatch)
    judged_by(monkeypatch, clock)
    kept = _noop.snapshot(root, ["src/*.py"], [])["files"]["src/a.py"]
    assert (kept[_noop.MTIME] == _noop.RACY) is not stale
    monkeypatch.setattr(fsclock, "RACY_NS", 0)  # recorded as quiet, to be confirmed below
    _noop.record(root, [], _noop.snapshot(root, ["src/*.py"], []), ["a"], {"a": str(output)},
                 {"a": _noop_drv()})  # fmt: skip
    st = (root / "src" / "a.py").stat()
    os.utime(root / "src" / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # a touch
    monkeypatch.setattr(fsclock, "RACY_NS", 2 * 10**9)
    reply = json.dumps([{"drvPath": _noop_drv(), "outputs": {"out": str(output)}}])
    monkeypatch.setattr(_proc, "run", lambda *_a, **_k: _proc.Result(0, reply, ""))
    assert _noop.answer(root, [], lambda _line: None)
    entry = json.loads((root / _noop.STAMP).read_text())["requests"]["*"]
    assert (entry["files"]["src/a.py"][_noop.MTIME] == _noop.RACY) is not stale


def _noop_drv() -> str:
    return "/nix/store/" + "d" * 32 + "-reproflake-step-a.drv"


def noop_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project with one step "a" built (its output, its results link), not yet stamped."""
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "reproflake.toml").write_text("[project]\n")
    (root / "reproflake.lock").write_text("{}\n")
    (root / "src" / "a.py").write_text("print(1)\n")
    output = tmp_path / "store-a"
    output.mkdir()
    (root / "results").mkdir()
    os.symlink(str(output), root / "results" / "a")
    return root, output


def test_the_quiet_answers_read_no_clock(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan answered from its record writes nothing (it may run in a read-only checkout)."""
    run_plan(built)
    (built / fsclock.CLOCK).unlink(missing_ok=True)
    monkeypatch.setattr(fsclock, "behind_ns", lambda _root: pytest.fail("clock read"))
    looked = _plan_record.look(built)
    assert looked is not None
    assert _plan_record.answer(looked, _plan_record.request([], as_json=False, short=False),
                               lambda _t: None, lambda _t: None)  # fmt: skip
    assert not (built / fsclock.CLOCK).exists()


def test_the_quiet_noop_build_reads_no_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, output = noop_project(tmp_path)
    monkeypatch.setattr(fsclock, "RACY_NS", 0)
    before = _noop.snapshot(root, ["src/*.py"], [])
    _noop.record(root, [], before, ["a"], {"a": str(output)}, {"a": _noop_drv()})
    (root / fsclock.CLOCK).unlink()
    monkeypatch.setattr(fsclock, "behind_ns", lambda _root: pytest.fail("clock read"))
    assert _noop.answer(root, [], lambda _line: None)
    assert not (root / fsclock.CLOCK).exists()
