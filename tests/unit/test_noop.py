"""The no-op stamp: what it answers alone, what it asks Nix to confirm, what it leaves to the full path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reproflake import _proc, fsclock
from reproflake.commands import _noop

DRV = "/nix/store/" + "d" * 32 + "-reproflake-step-a.drv"


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project as a successful build leaves it: stamp, results link, output present.
    Its files count as quiet (the window for recent ones is tested on its own below)."""
    monkeypatch.setattr(fsclock, "RACY_NS", 0)
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "reproflake.toml").write_text("[project]\n")
    (root / "reproflake.lock").write_text("{}\n")
    (root / "src" / "a.py").write_text("print(1)\n")
    (root / "data.bin").write_bytes(b"x" * (_noop.DIGEST_LIMIT + 1))
    output = tmp_path / "store-a"
    output.mkdir()
    (root / "results").mkdir()
    os.symlink(str(output), root / "results" / "a")
    before = _noop.snapshot(root, ["src/*.py"], ["data.bin"])
    _noop.record(root, [], before, ["a"], {"a": str(output)}, {"a": DRV})
    return root


def later(path: Path) -> None:
    """A new time, the same bytes (what `touch` or a checkout of the same content does).
    Set in the past: a time in the future is still to come, so racy (see below)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))


def test_nothing_changed_needs_no_nix(built: Path) -> None:
    entry, touched = _noop.check(built, [])
    assert entry is not None and touched == []


def test_new_time_same_bytes_asks_nix(built: Path) -> None:
    later(built / "src" / "a.py")
    entry, touched = _noop.check(built, [])
    assert entry is not None and touched == ["src/a.py"]


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "src" / "a.py").write_text("print(2)\n"),  # same size, new bytes
        lambda root: (root / "src" / "a.py").chmod(0o755),  # the mode enters the store path
        lambda root: later(root / "data.bin"),  # too large to be compared by content
        lambda root: (root / "src" / "b.py").write_text(""),  # the glob matches more
        lambda root: (root / "reproflake.toml").write_text("[project]\n# note\n"),
        lambda root: (root / "results" / "a").unlink(),
    ],
)
def test_anything_else_takes_the_full_path(built: Path, change: object) -> None:
    change(built)  # type: ignore[operator]
    assert _noop.check(built, []) == (None, [])


def test_touched_build_is_confirmed_by_nix_then_quiet(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = os.readlink(built / "results" / "a")
    calls: list[list[str]] = []

    def nix(argv: list[str], **_kw: object) -> _proc.Result:
        calls.append(argv)
        return _proc.Result(0, json.dumps([{"drvPath": DRV, "outputs": {"out": output}}]), "")

    monkeypatch.setattr(_proc, "run", nix)
    later(built / "src" / "a.py")
    lines: list[str] = []
    assert _noop.answer(built, [], lines.append)
    assert lines[0] == "summary: 0 built, 1 already built, 0 failed"
    assert len(calls) == 1 and DRV in calls[0] and "build" in calls[0]
    assert not any(a.startswith(".#") for a in calls[0])  # store paths: nothing to evaluate
    # The stamp took the new time: the next build does not ask Nix.
    entry, touched = _noop.check(built, [])
    assert entry is not None and touched == []
    assert _noop.answer(built, [], lines.append) and len(calls) == 1


def test_nix_disagreeing_takes_the_full_path(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = {"drvPath": DRV, "outputs": {"out": "/nix/store/" + "e" * 32 + "-other"}}
    monkeypatch.setattr(_proc, "run", lambda *_a, **_k: _proc.Result(0, json.dumps([other]), ""))
    later(built / "src" / "a.py")
    assert not _noop.answer(built, [], lambda _line: None)
    monkeypatch.setattr(_proc, "run", lambda *_a, **_k: _proc.Result(1, "", "error"))
    assert not _noop.answer(built, [], lambda _line: None)


@pytest.mark.parametrize("rel", ["src/a.py", "data.bin"])
def test_a_same_size_rewrite_with_the_mtime_restored_takes_the_full_path(
    built: Path, rel: str
) -> None:
    """What `cp -p` or `rsync --times` of an equally long file does. For a file too large to
    be compared by content, only its change time (which no tool can restore) tells."""
    import time

    path = built / rel
    st = path.stat()
    old = path.read_bytes()
    time.sleep(0.01)
    path.write_bytes(old.replace(b"1", b"9").replace(b"x", b"y"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert _noop.check(built, []) == (None, [])


def test_files_changed_just_before_the_stamp_are_compared_by_their_bytes(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Racy: a file written in the clock tick of the snapshot may change again in that tick
    with the same size and times. The stamp keeps no times for it: the next build compares
    the bytes (and asks Nix to confirm), or takes the full path for a file too large to
    have been digested."""
    monkeypatch.setattr(fsclock, "RACY_NS", 60 * 10**9)  # everything is recent
    entry = json.loads((built / _noop.STAMP).read_text())["requests"]
    (key,) = entry
    (built / "flake.nix").write_text("{ }\n")
    before = _noop.snapshot(built, ["src/*.py"], [])
    stats = before["files"]
    assert stats["src/a.py"][_noop.MTIME] == stats["src/a.py"][_noop.CTIME] == _noop.RACY
    # What reproflake itself just generated keeps its times: nothing else writes it.
    assert stats["flake.nix"] is not None and stats["flake.nix"][_noop.MTIME] != _noop.RACY
    _noop.record(built, [], before, ["a"], entry[key]["outputs"], {"a": DRV})
    # Rewritten in the same tick, same size: the stat cannot tell; the bytes do.
    st = (built / "src" / "a.py").stat()
    (built / "src" / "a.py").write_text("print(2)\n")
    os.utime(built / "src" / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _noop.check(built, []) == (None, [])
    (built / "src" / "a.py").write_text("print(1)\n")
    found, touched = _noop.check(built, [])
    assert found is not None and touched == ["src/a.py"]  # the same bytes: Nix confirms
    big = _noop.snapshot(built, [], ["data.bin"])
    _noop.record(built, [], big, ["a"], entry[key]["outputs"], {"a": DRV})
    assert _noop.check(built, []) == (None, [])  # no digest to compare: the full path


def test_a_snapshot_with_racy_files_holds_by_their_bytes_and_entries(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an image export's record asks (`holds`): a path kept without its times holds
    while its bytes (a file) or its entries' names (a directory) are the same."""
    (built / "data").mkdir()
    (built / "data" / "x.csv").write_text("1\n")
    monkeypatch.setattr(fsclock, "RACY_NS", 60 * 10**9)  # everything is recent
    snap = _noop.snapshot(built, ["src/*.py"], ["data"])
    assert snap["files"]["data"][_noop.MTIME] == _noop.RACY
    assert _noop.holds(built, snap)
    later(built / "src" / "a.py")  # a new time, the same bytes
    assert _noop.holds(built, snap)
    (built / "data" / "y.csv").write_text("2\n")  # a new entry
    assert not _noop.holds(built, snap)
    (built / "data" / "y.csv").unlink()
    assert _noop.holds(built, snap)
    (built / "src" / "a.py").write_text("print(3)\n")  # the same size, other bytes
    assert not _noop.holds(built, snap)
    # Kept with its times (quiet): a new time alone no longer holds, as before.
    monkeypatch.setattr(fsclock, "RACY_NS", 0)
    quiet = _noop.snapshot(built, ["src/*.py"], ["data"])
    later(built / "src" / "a.py")
    assert not _noop.holds(built, quiet)


def test_a_file_edited_during_the_build_then_put_back_takes_the_full_path(
    built: Path,
) -> None:
    """The snapshot's digest is of the bytes before the edit; Nix may have read the edited
    ones. Put back, the file matches the digest while the outputs are the edit's: the
    stamp must not say "only its times changed"."""
    entry = json.loads((built / _noop.STAMP).read_text())["requests"]
    (key,) = entry
    source = built / "src" / "a.py"
    original = source.read_bytes()
    before = _noop.snapshot(built, ["src/*.py"], [])
    source.write_bytes(b"print(2)\n")  # while the build runs
    _noop.record(built, [], before, ["a"], entry[key]["outputs"], {"a": DRV})
    source.write_bytes(original)  # and put back afterwards
    later(source)
    assert _noop.check(built, []) == (None, [])
    # A file left alone during the build keeps its digest: a new time alone is confirmed.
    before = _noop.snapshot(built, ["src/*.py"], [])
    _noop.record(built, [], before, ["a"], entry[key]["outputs"], {"a": DRV})
    later(source)
    found, touched = _noop.check(built, [])
    assert found is not None and touched == ["src/a.py"]
    assert _noop.SEEN not in json.loads((built / _noop.STAMP).read_text())["requests"][key]


def test_a_source_turned_into_a_link_to_the_same_bytes_takes_the_full_path(
    built: Path,
) -> None:
    """Nix copies a source link as a link: another derivation, whatever it points to."""
    source = built / "src" / "a.py"
    (built / "src" / "copy.txt").write_bytes(source.read_bytes())
    source.unlink()
    source.symlink_to("copy.txt")
    assert _noop.check(built, []) == (None, [])


def test_a_confirmed_touch_in_a_read_only_project_still_answers(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp cannot take the new times there: Nix confirms again next time."""
    output = os.readlink(built / "results" / "a")

    def nix(argv: list[str], **_kw: object) -> _proc.Result:
        return _proc.Result(0, json.dumps([{"drvPath": DRV, "outputs": {"out": output}}]), "")

    def read_only(*_args: object, **_kw: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(_proc, "run", nix)
    monkeypatch.setattr(_noop, "write_atomic", read_only)
    later(built / "src" / "a.py")
    lines: list[str] = []
    assert _noop.answer(built, [], lines.append)
    assert lines[0] == "summary: 0 built, 1 already built, 0 failed"


def test_a_linked_results_directory_is_never_answered(built: Path, tmp_path: Path) -> None:
    """The full path refuses it (fsutil.refuse_linked_own_dir)."""
    elsewhere = tmp_path / "elsewhere"
    (built / "results").rename(elsewhere)
    (built / "results").symlink_to(elsewhere)
    assert not _noop.answer(built, [], lambda _line: None)
