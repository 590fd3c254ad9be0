from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import lzma
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake.errors import LockError
from reproflake.lock.deb import (
    ar_members,
    data_tar,
    extract_entry,
    extract_file,
    nix_base32,
)
from reproflake.lock.hashing import nar_hash

BUSYBOX = b"\x7fELF fake busybox\n" * 7  # odd length: exercises ar padding


def ar(members: list[tuple[str, bytes]]) -> bytes:
    """An ar archive as dpkg-deb writes it (GNU-style '/' after names)."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode() + b"`\n"
        assert len(header) == 60
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def data_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("./", tarfile.DIRTYPE, 0o755)
        add("./bin/", tarfile.DIRTYPE, 0o755)
        add("./bin/busybox", tarfile.REGTYPE, 0o755, BUSYBOX)
        add("./bin/sh", tarfile.SYMTYPE, 0o777, link="busybox")
        add("./usr/bin/", tarfile.DIRTYPE, 0o755)
        add("./usr/bin/abs-sh", tarfile.SYMTYPE, 0o777, link="/bin/sh")
        add("./usr/bin/rel-sh", tarfile.SYMTYPE, 0o777, link="../../bin/busybox")
        add("./usr/bin/hard", tarfile.LNKTYPE, 0o755, link="./bin/busybox")
        add("./usr/share/doc.txt", tarfile.REGTYPE, 0o644, b"docs\n")
        add("./loop-a", tarfile.SYMTYPE, 0o777, link="loop-b")
        add("./loop-b", tarfile.SYMTYPE, 0o777, link="loop-a")
    return buf.getvalue()


def deb(data_name: str = "data.tar.xz") -> bytes:
    raw = data_tarball()
    compressors: dict[str, Callable[[bytes], bytes]] = {
        "data.tar.xz": lzma.compress,
        "data.tar.gz": lambda b: gzip.compress(b, mtime=0),
        "data.tar.bz2": bz2.compress,
        "data.tar": lambda b: b,
        "data.tar.zst": lambda b: b"(zstd frame)",
    }
    payload = compressors[data_name](raw)
    control = lzma.compress(b"")  # content irrelevant here
    return ar([("debian-binary", b"2.0\n"), ("control.tar.xz", control), (data_name, payload)])


def test_ar_members_padding_and_names() -> None:
    members = ar_members(ar([("a", b"odd"), ("b", b"even"), ("c", b"")]))
    assert members == {"a": b"odd", "b": b"even", "c": b""}
    assert list(ar_members(deb())) == ["debian-binary", "control.tar.xz", "data.tar.xz"]


@pytest.mark.parametrize(
    "bad",
    [b"", b"PK\x03\x04", b"!<arch>\nshort", ar([("a", b"abcd")])[:-2]],
)
def test_ar_members_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(LockError):
        ar_members(bad)


@pytest.mark.parametrize("name", ["data.tar.xz", "data.tar.gz", "data.tar.bz2", "data.tar"])
def test_data_tar_formats(name: str) -> None:
    with data_tar(deb(name)) as tar:
        assert "./bin/busybox" in tar.getnames()


def test_zstd_is_a_clear_error() -> None:
    with pytest.raises(LockError, match="zstd-compressed"):
        data_tar(deb("data.tar.zst"))


def test_no_data_member() -> None:
    with pytest.raises(LockError, match=r"no data\.tar member"):
        data_tar(ar([("debian-binary", b"2.0\n")]))


@pytest.mark.parametrize(
    "path",
    [
        "./bin/busybox",
        "/bin/busybox",
        "bin/busybox",
        "./bin/sh",
        "/usr/bin/abs-sh",
        "./usr/bin/rel-sh",
        "./usr/bin/hard",
    ],
)
def test_extract_follows_links(path: str) -> None:
    entry = extract_entry(deb(), path)
    assert (entry.path, entry.content, entry.executable) == ("bin/busybox", BUSYBOX, True)


def test_extract_file_plain() -> None:
    assert extract_file(deb(), "./usr/share/doc.txt") == b"docs\n"
    assert extract_entry(deb(), "./usr/share/doc.txt").executable is False


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("./bin/busybux", "similar entries: bin/busybox"),
        ("./usr/bin", "not a regular file"),
        ("./loop-a", "symlink loop"),
    ],
)
def test_extract_errors(path: str, message: str) -> None:
    with pytest.raises(LockError, match=message):
        extract_file(deb(), path)


# --------------------------------------------------------------------------- NAR hashing


# Hashes printed by `nix hash path` (Nix 2.8) for the same files.
@pytest.mark.parametrize(
    ("content", "executable", "sri", "base32"),
    [
        (
            b"",
            False,
            "sha256-d6xi4mKdjkX2JFicDIv5niSzpyI0m/Hnm8GGAIU04kY=",
            "0ip26j2h11n1kgkz36rl4akv694yz65hr72q4kv4b3lxcbi65b3p",
        ),
        (
            b"hello\n",
            False,
            "sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=",
            "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
        ),
        (
            b"hello\n",
            True,
            "sha256-ZUNgOdP5PKGajb8cYLFXOe1Y9T8UuNNyrMGzUVMwEPo=",
            "1yhh619m3cy1mird7f0l7zsmiv9rayqn075zinda2g7rscwn0hv5",
        ),
    ],
)
def test_nar_hash_known_values(
    tmp_path: Path, content: bytes, executable: bool, sri: str, base32: str
) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    path.chmod(0o755 if executable else 0o644)
    assert nar_hash(path) == sri
    assert nix_base32(base64.b64decode(sri.removeprefix("sha256-"))) == base32


def test_nix_base32_known_values() -> None:
    assert nix_base32(hashlib.sha256(b"").digest()) == (
        "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
    )
    assert nix_base32(b"") == ""
    assert nix_base32(bytes(20)) == "0" * 32  # sha1 length: 160 bits → 32 chars


NIX = shutil.which("nix")


def nix_hash_path(path: Path, *flags: str) -> str:
    argv = [NIX or "nix", "--extra-experimental-features", "nix-command", "hash", "path"]
    return subprocess.run(
        [*argv, *flags, str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.skipif(NIX is None, reason="nix is not on PATH")
@pytest.mark.parametrize("executable", [True, False])
def test_nar_hash_matches_nix(tmp_path: Path, executable: bool) -> None:
    content = extract_file(deb(), "./bin/busybox") + bytes(range(256)) * 41
    path = tmp_path / "busybox"
    path.write_bytes(content)
    path.chmod(0o755 if executable else 0o644)
    sri = nar_hash(path)
    assert sri == nix_hash_path(path)
    assert nix_base32(base64.b64decode(sri.removeprefix("sha256-"))) == nix_hash_path(
        path, "--base32"
    )
