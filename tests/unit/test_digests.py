"""Source digests remembered by stat: reused only while the file is provably unchanged."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from reproflake import digests, fsclock


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "proj"
    root.mkdir()
    return root


def old(path: Path) -> None:
    """Times well in the past, as a file not touched for a while has (ctime: the test
    waits it out instead, it cannot be set)."""
    past = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(past, past))


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hashed: list[str] = []
    real = digests.sha256_of

    def spy(path: str) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(digests, "sha256_of", spy)
    return hashed


def test_an_unchanged_file_is_not_read_again_by_the_next_command(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = project / "a.sh"
    f.write_text("echo a\n")
    old(f)
    monkeypatch.setattr(fsclock, "RACY_NS", -(10**12))  # ctime is now: count it as old
    hashed = counting(monkeypatch)
    first = digests.SourceDigests(project)
    assert first("a.sh") == hashlib.sha256(b"echo a\n").hexdigest()
    first.save()
    second = digests.SourceDigests(project)  # a new command: the cache from the user's home
    assert second("a.sh") == hashlib.sha256(b"echo a\n").hexdigest()
    assert len(hashed) == 1


def test_a_rewrite_with_the_same_size_and_restored_mtime_is_hashed_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = project / "a.sh"
    f.write_text("echo a\n")
    old(f)
    monkeypatch.setattr(fsclock, "RACY_NS", -(10**12))
    d = digests.SourceDigests(project)
    d("a.sh")
    d.save()
    mtime = f.stat().st_mtime_ns
    time.sleep(0.01)
    f.write_text("echo b\n")  # same size
    os.utime(f, ns=(mtime, mtime))  # what a careless tool does; ctime still moves
    again = digests.SourceDigests(project)
    assert again("a.sh") == hashlib.sha256(b"echo b\n").hexdigest()


def test_a_file_written_just_now_is_not_remembered(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = project / "a.sh"
    f.write_text("echo a\n")  # ctime is now: within RACY_NS
    hashed = counting(monkeypatch)
    d = digests.SourceDigests(project)
    d("a.sh")
    d.save()
    digests.SourceDigests(project)("a.sh")
    assert len(hashed) == 2


def test_the_cache_is_kept_outside_the_project(project: Path) -> None:
    f = project / "a.sh"
    f.write_text("x\n")
    d = digests.SourceDigests(project)
    assert project not in d.file.parents
