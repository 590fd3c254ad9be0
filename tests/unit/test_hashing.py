from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reproflake import fsclock
from reproflake.errors import LockError, UsageError
from reproflake.lock import hashing
from reproflake.lock.hashing import HashCache, nar_hash, short


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files made by the tests count as quiet: the window for recent ones is tested on its
    own (test_a_path_changed_just_now_is_hashed_not_remembered)."""
    monkeypatch.setattr(fsclock, "RACY_NS", 0)


def make_tree(base: Path) -> dict[str, Path]:
    """A file, an executable, and a directory with a subdirectory, symlinks and odd sizes."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "file").write_bytes(b"hi\n")
    (base / "exe").write_bytes(b"#!/bin/sh\necho x\n")
    (base / "exe").chmod(0o755)
    tree = base / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "eight").write_bytes(b"12345678")  # a multiple of 8: no padding
    (tree / "sub" / "Z").write_bytes(b"abc")
    (tree / "sub" / "Z").chmod(0o755)
    (tree / "sub" / "a").write_bytes(b"")
    (tree / "link").symlink_to("sub")
    (tree / "sub" / "dangling").symlink_to("../nowhere")
    (tree / "é").write_bytes("é".encode())  # sorted by bytes: after every ASCII name
    return {"file": base / "file", "exe": base / "exe", "tree": tree, "link": tree / "link"}


# Computed with `nix hash path` (Nix 2.8) over make_tree's content; NAR ignores times and owners.
EXPECTED = {
    "file": "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=",
    "exe": "sha256-A5+DZCLO0OE+rHRBb2SA5WhcJnvzdoVnxFGzgip9lvE=",
    "tree": "sha256-F1YwmJH1whizcrlfUPzNjPgh3z9q/azHmG8Aub7Sa1g=",
    "link": "sha256-pCVykqVVTUauh185w60DTzxoNqQ0vSNNJUTtQuq4bK8=",
}


@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_nar_hash_pinned(tmp_path: Path, what: str) -> None:
    assert nar_hash(make_tree(tmp_path)[what]) == EXPECTED[what]


@pytest.mark.skipif(shutil.which("nix") is None, reason="needs `nix` on PATH")
@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_nar_hash_equals_nix_hash_path(tmp_path: Path, what: str) -> None:
    path = make_tree(tmp_path)[what]
    nix = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "hash", "path", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert nar_hash(path) == nix


def test_executable_bit_and_content_matter(tmp_path: Path) -> None:
    paths = make_tree(tmp_path)
    before = nar_hash(paths["exe"])
    paths["exe"].chmod(0o644)
    assert nar_hash(paths["exe"]) != before
    tree = nar_hash(paths["tree"])
    (paths["tree"] / "sub" / "a").write_bytes(b"x")
    assert nar_hash(paths["tree"]) != tree


def test_unsupported_file_type(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError) as info:
        nar_hash(tmp_path)
    assert (
        f"{tmp_path / 'fifo'} is a FIFO (named pipe); an input may hold only" in info.value.message
    )


def test_short() -> None:
    assert short(EXPECTED["file"]) == "10551dae"
    assert short("md5-xyz") == "md5-xyz"


# --------------------------------------------------------------------------- changes while hashing


def test_file_growing_while_read_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"0123456789abcdef")
    monkeypatch.setattr(hashing, "CHUNK", 4)

    class Growing:
        """The real file; a writer appends to it after the first read."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.f = open(*args, **kwargs)  # noqa: SIM115 - closed in __exit__
            self.reads = 0

        def __enter__(self) -> Growing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def readinto(self, buf: bytearray) -> int:
            n: int = self.f.readinto(buf)
            self.reads += 1
            if self.reads == 1:
                with open(target, "ab") as w:
                    w.write(b"appended")
            return n

    monkeypatch.setattr(hashing, "open", Growing, raising=False)
    with pytest.raises(LockError) as info:
        nar_hash(target)
    assert info.value.message == f"{target} changed while it was being hashed"
    assert info.value.hint


def test_change_seen_by_the_signature_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"payload")
    real = hashing._signature
    calls = []

    def signature(path: Path) -> list[list[object]]:
        calls.append(path)
        rows = real(path)
        if len(calls) == 2:  # after hashing: as if something wrote to it meanwhile
            rows[0][3] = int(rows[0][3]) + 1  # type: ignore[call-overload]
        return rows

    monkeypatch.setattr(hashing, "_signature", signature)
    with pytest.raises(LockError) as info:
        nar_hash(target)
    assert len(calls) == 2
    assert "changed while it was being hashed" in info.value.message


def test_file_vanishing_while_hashed_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dir").mkdir()
    victim = tmp_path / "dir" / "victim"
    victim.write_bytes(b"x")
    real = hashing._signature

    def signature(path: Path) -> list[list[object]]:
        rows = real(path)
        victim.unlink(missing_ok=True)
        return rows

    monkeypatch.setattr(hashing, "_signature", signature)
    with pytest.raises(LockError) as info:
        nar_hash(tmp_path / "dir")
    assert "changed while it was being hashed" in info.value.message


# --------------------------------------------------------------------------- the cache


def test_cache_returns_the_cached_value_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = make_tree(tmp_path / "p")
    calls: list[Path] = []
    real = hashing.nar_hash

    def counting(path: Path) -> str:
        calls.append(path)
        if len(calls) > 1:
            raise AssertionError("hashed again")
        return real(path)

    monkeypatch.setattr(hashing, "nar_hash", counting)
    cache = HashCache(tmp_path / "cache" / "hashes.json")
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    cache.save()
    # A new cache reads the saved file and still does not hash.
    assert HashCache(tmp_path / "cache" / "hashes.json").nar_hash(paths["tree"]) == EXPECTED["tree"]
    assert len(calls) == 1


def test_cache_recomputes_after_a_change(tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    target.write_bytes(b"a,b\n")
    cache = HashCache(tmp_path / "hashes.json")
    first = cache.nar_hash(target)

    target.write_bytes(b"a,b,c\n")  # size changes
    second = cache.nar_hash(target)
    assert second == nar_hash(target) != first

    # Same size, new content and mtime: the cache must notice by mtime alone.
    stat = target.stat()
    with open(target, "r+b") as f:
        f.write(b"X")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = cache.nar_hash(target)
    assert third == nar_hash(target) != second


def test_cache_notices_changes_deep_in_a_directory(tmp_path: Path) -> None:
    paths = make_tree(tmp_path)
    cache = HashCache(tmp_path / "hashes.json")
    before = cache.nar_hash(paths["tree"])
    (paths["tree"] / "sub" / "new").write_bytes(b"new")
    assert cache.nar_hash(paths["tree"]) == nar_hash(paths["tree"]) != before


def test_cache_save_only_when_dirty_and_survives_garbage(tmp_path: Path) -> None:
    file = tmp_path / "cache" / "hashes.json"
    cache = HashCache(file)
    cache.save()
    assert not file.exists()
    file.parent.mkdir()
    file.write_text("not json")
    cache = HashCache(file)  # a corrupt cache is ignored, not fatal
    target = tmp_path / "x"
    target.write_bytes(b"x")
    cache.nar_hash(target)
    cache.save()
    assert str(target.resolve()) in file.read_text()


def test_cache_misses_a_same_size_rewrite_with_its_mtime_restored(tmp_path: Path) -> None:
    """What rsync --times or cp -p do: new bytes, same size, the old mtime put back."""
    target = tmp_path / "data.csv"
    target.write_bytes(b"1,2,3\n")
    cache = HashCache(tmp_path / "hashes.json")
    first = cache.nar_hash(target)
    cache.save()
    before = target.stat()
    time.sleep(0.01)  # the ctime must be able to move
    target.write_bytes(b"4,5,6\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    again = HashCache(tmp_path / "hashes.json").nar_hash(target)
    assert again == nar_hash(target) != first


def test_a_tampered_cache_entry_never_answers(tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    target.write_bytes(b"1,2,3\n")
    file = tmp_path / "hashes.json"
    cache = HashCache(file)
    right = cache.nar_hash(target)
    cache.save()
    doc = json.loads(file.read_text())
    wrong = "sha256-" + "B" * 43 + "="
    doc[str(target.resolve())]["narHash"] = wrong
    file.write_text(json.dumps(doc))
    assert HashCache(file).nar_hash(target) == right


def test_a_cache_from_another_machine_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache committed to a repository: sealed with someone else's secret, it misses
    even where the path and every stat field match."""
    target = tmp_path / "data.csv"
    target.write_bytes(b"1,2,3\n")
    file = tmp_path / "hashes.json"
    cache = HashCache(file)
    right = cache.nar_hash(target)
    cache.save()
    doc = json.loads(file.read_text())
    doc[str(target.resolve())]["narHash"] = "sha256-" + "C" * 43 + "="
    import hmac as hmac_mod

    entry = doc[str(target.resolve())]
    message = json.dumps([str(target.resolve()), entry["signature"], entry["narHash"]]).encode()
    entry["seal"] = hmac_mod.new(b"another machine" * 3, message, "sha256").hexdigest()
    file.write_text(json.dumps(doc))
    assert HashCache(file).nar_hash(target) == right
    # And the secret is this user's alone.
    secret = Path(os.environ["XDG_CACHE_HOME"]) / "reproflake" / "secret"
    assert secret.stat().st_mode & 0o077 == 0


def test_a_fifo_swapped_in_is_not_opened_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between lstat and open a file may become a FIFO: opening it must not wait forever."""
    target = tmp_path / "f"
    target.write_bytes(b"x")
    real_file = hashing._Nar.file

    def swap(self: Any, path: Path, st: os.stat_result) -> None:
        path.unlink()  # looked at as a regular file; a FIFO by the time it is opened
        os.mkfifo(path)
        real_file(self, path, st)

    monkeypatch.setattr(hashing._Nar, "file", swap)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(AssertionError("blocked")))
    signal.alarm(5)
    try:
        with pytest.raises(LockError, match="changed while it was being hashed"):
            nar_hash(target)
    finally:
        signal.alarm(0)


def test_a_path_changed_just_now_is_hashed_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Racy: rewritten within the same tick of its file system's clock, a path could keep
    every entry's size and times, so its hash is not remembered until it is quiet."""
    paths = make_tree(tmp_path)
    calls: list[Path] = []
    real = hashing.nar_hash

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(hashing, "nar_hash", counting)
    monkeypatch.setattr(fsclock, "RACY_NS", 60 * 10**9)  # everything is recent
    file = tmp_path / "cache" / "hashes.json"
    cache = HashCache(file, tmp_path)
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    assert len(calls) == 2  # hashed each time
    cache.save()
    assert str(paths["tree"].resolve()) not in (file.read_text() if file.exists() else "")
    monkeypatch.setattr(fsclock, "RACY_NS", 0)  # quiet now
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    assert len(calls) == 3  # remembered


def test_an_entry_kept_before_the_racy_rule_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hashes.json written by a reproflake without the racily clean rule may hold a hash
    taken in the same tick as a same-size rewrite: nothing in the entry tells, so such
    entries (sealed without the rule's mark) are hashed again, never answered."""
    paths = make_tree(tmp_path)
    file = tmp_path / "cache" / "hashes.json"
    key = str(paths["tree"].resolve())
    sig = hashlib.sha256(json.dumps(hashing._signature(paths["tree"])).encode()).hexdigest()
    stale = "sha256-" + base64.b64encode(b"\0" * 32).decode()
    # Sealed as the version before the rule sealed its entries.
    seal = hmac.new(hashing._secret(), json.dumps([key, sig, stale]).encode(), hashlib.sha256)
    entry = {"signature": sig, "narHash": stale, "seal": seal.hexdigest()}
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({key: entry}))
    cache = HashCache(file, tmp_path)
    assert cache.nar_hash(paths["tree"]) == EXPECTED["tree"]
    cache.save()
    # What this version keeps answers without hashing.
    monkeypatch.setattr(hashing, "nar_hash", lambda path: pytest.fail(f"hashed {path}"))
    assert HashCache(file, tmp_path).nar_hash(paths["tree"]) == EXPECTED["tree"]
