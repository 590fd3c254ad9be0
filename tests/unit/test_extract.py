"""The safe extractor: crafted hostile archives are refused with nothing written outside
the destination (nor inside it); a good archive comes out whole, with its hashes."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from reproflake.artifacts import extract
from reproflake.errors import ArchiveError

Add = Callable[[tarfile.TarFile], None]


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    tar.addfile(_info(name, size=len(data), mode=mode), io.BytesIO(data))


def _archive(path: Path, *adds: Add, compress: str = "zstd") -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("top", tarfile.DIRTYPE))
        for add in adds:
            add(tar)
    data = raw.getvalue()
    if compress == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    elif compress == "gzip":
        import gzip

        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A directory with a sentinel beside the destination: it must stay exactly as it is."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "sentinel").write_text("untouched\n")
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            found[rel] = (
                os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
            )
    return found


def _refused(place: Path, archive: Path, words: str) -> None:
    before = _snapshot(place)
    passwd = Path("/etc/passwd").read_bytes()
    dest = place / "dest"
    with pytest.raises(ArchiveError) as err:
        extract.extract(archive, dest)
    assert words in err.value.message, err.value.message
    assert "nothing extracted" in err.value.message or "cannot" in err.value.message
    assert _snapshot(place) == before  # nothing written anywhere, dest removed again
    assert not dest.exists()
    assert Path("/etc/passwd").read_bytes() == passwd


def test_a_good_archive_comes_out_whole_with_hashes(place: Path) -> None:
    archive = _archive(
        place / "good.tar.zst",
        lambda t: _file(t, "top/a.txt", b"alpha\n"),
        lambda t: t.addfile(_info("top/sub", tarfile.DIRTYPE)),
        lambda t: _file(t, "top/sub/run.sh", b"#!/bin/sh\n", mode=0o755),
        lambda t: t.addfile(_info("top/sub/link", tarfile.SYMTYPE, linkname="../a.txt")),
        lambda t: t.addfile(_info("top/hard", tarfile.LNKTYPE, linkname="top/a.txt")),
    )
    got = extract.extract(archive, place / "dest")
    assert got.top == place / "dest" / "top"
    assert sorted(p.name for p in (place / "dest").iterdir()) == ["top"]  # no staging left
    assert got.members["a.txt"].sha256 == hashlib.sha256(b"alpha\n").hexdigest()
    assert got.members["sub/run.sh"].executable and os.access(got.top / "sub/run.sh", os.X_OK)
    assert got.members["sub/link"].target == "../a.txt"
    assert (got.top / "sub/link").read_text() == "alpha\n"
    assert (got.top / "hard").read_bytes() == b"alpha\n"


@pytest.mark.parametrize("compress", ["gzip", "none"])
def test_gzip_and_plain_tar_are_read_too(place: Path, compress: str) -> None:
    archive = _archive(place / "a.tar", lambda t: _file(t, "top/x", b"x"), compress=compress)
    assert extract.extract(archive, place / "dest").members["x"].size == 1


def test_an_existing_top_directory_is_not_overwritten(place: Path) -> None:
    (place / "dest" / "top").mkdir(parents=True)
    (place / "dest" / "top" / "mine").write_text("keep\n")
    archive = _archive(place / "a.tar.zst", lambda t: _file(t, "top/mine", b"theirs"))
    with pytest.raises(ArchiveError, match="exists already"):
        extract.extract(archive, place / "dest")
    assert (place / "dest" / "top" / "mine").read_text() == "keep\n"
    assert sorted(p.name for p in (place / "dest").iterdir()) == ["top"]


def test_dot_dot_entry(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst", lambda t: _file(t, "top/../../outside/sentinel", b"pwned")
    )
    _refused(place, archive, "going up with '..'")


def test_absolute_path(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst", lambda t: _file(t, str(place / "outside/abs"), b"pwned")
    )
    _refused(place, archive, "absolute")


def test_symlink_escaping_then_a_file_through_it(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/esc", tarfile.SYMTYPE, linkname="../../outside")),
        lambda t: _file(t, "top/esc/sentinel", b"pwned"),
    )
    _refused(place, archive, "symbolic link to '../../outside', outside the archive")


def test_absolute_symlink(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/esc", tarfile.SYMTYPE, linkname=str(place / "outside"))),
    )
    _refused(place, archive, "outside the archive")


def test_a_file_through_an_inner_symlink(place: Path) -> None:
    """Even a link that stays inside is never written through (it could be swapped)."""
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/d", tarfile.DIRTYPE)),
        lambda t: t.addfile(_info("top/in", tarfile.SYMTYPE, linkname="d")),
        lambda t: _file(t, "top/in/f", b"x"),
    )
    _refused(place, archive, "written through the symbolic link top/in")


@pytest.mark.parametrize("target", ["..", "../..", "sub/../../.."])
def test_symlinks_climbing_out_in_any_form(place: Path, target: str) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/sub", tarfile.DIRTYPE)),
        lambda t: t.addfile(_info("top/esc", tarfile.SYMTYPE, linkname=target)),
    )
    _refused(place, archive, f"symbolic link to {target!r}")


def test_a_link_made_later_cannot_turn_an_earlier_one_outwards(place: Path) -> None:
    """'b/..' looks like the top itself, but with b a link to '.' it is the top's parent:
    '..' after a name is refused, whatever comes later in the archive."""
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/a", tarfile.SYMTYPE, linkname="b/../../outside")),
        lambda t: t.addfile(_info("top/b", tarfile.SYMTYPE, linkname=".")),
    )
    _refused(place, archive, "'..' must come first")


def test_links_that_stay_inside(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/d/e", tarfile.DIRTYPE)),
        lambda t: t.addfile(_info("top/d/e/up", tarfile.SYMTYPE, linkname="../../")),
        lambda t: t.addfile(_info("top/d/e/side", tarfile.SYMTYPE, linkname="./../e/./up")),
    )
    got = extract.extract(archive, place / "dest")
    assert (got.top / "d/e/up").resolve() == got.top.resolve()


def test_hard_link_to_etc_passwd(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/pw", tarfile.LNKTYPE, linkname="/etc/passwd")),
    )
    _refused(place, archive, "absolute")


def test_hard_link_climbing_out(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(
            _info("top/pw", tarfile.LNKTYPE, linkname="top/../../outside/sentinel")
        ),
    )
    _refused(place, archive, "going up with '..'")


def test_hard_link_to_a_file_not_written(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: t.addfile(_info("top/pw", tarfile.LNKTYPE, linkname="top/later")),
        lambda t: _file(t, "top/later", b"x"),
    )
    _refused(place, archive, "not a file this archive wrote before it")


@pytest.mark.parametrize(
    ("kind", "words"),
    [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
     (tarfile.FIFOTYPE, "a FIFO")],
)  # fmt: skip
def test_device_nodes_and_fifos(place: Path, kind: bytes, words: str) -> None:
    archive = _archive(
        place / "a.tar.zst", lambda t: t.addfile(_info("top/node", kind, devmajor=1, devminor=3))
    )
    _refused(place, archive, words)


def test_duplicate_entries(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst",
        lambda t: _file(t, "top/twice", b"first"),
        lambda t: _file(t, "top/twice", b"second"),
    )
    _refused(place, archive, "appears twice")


def test_entries_outside_the_top_directory(place: Path) -> None:
    archive = _archive(place / "a.tar.zst", lambda t: _file(t, "other/x", b"x"))
    _refused(place, archive, "outside the archive's one top directory top/")


def test_a_10_gb_entry_is_refused_from_its_header(place: Path) -> None:
    """A header claiming 10 GB (no data follows): refused before one byte is written."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("top", tarfile.DIRTYPE))
        tar.fileobj.write(_info("top/huge", size=10 * 10**9).tobuf(tarfile.PAX_FORMAT))  # type: ignore[union-attr]
    (place / "a.tar").write_bytes(raw.getvalue())
    _refused(place, place / "a.tar", f"over the bound of {extract.Limits().entry_bytes} per entry")


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar makes the sparse archive")
def test_a_10_gb_sparse_entry_is_refused_without_writing_it(place: Path) -> None:
    sparse = place / "src" / "top" / "huge"
    sparse.parent.mkdir(parents=True)
    with sparse.open("wb") as f:
        f.truncate(10 * 10**9)  # a hole: no blocks on disk
    archive = place / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "-cf", str(archive), "-C", str(place / "src"), "top"], check=True
    )
    shutil.rmtree(place / "src")
    assert archive.stat().st_size < 1 << 20
    _refused(place, archive, "is a sparse file")


def test_totals_and_entry_counts_are_bounded(place: Path) -> None:
    archive = _archive(
        place / "a.tar.zst", *(lambda t, i=i: _file(t, f"top/{i}", b"12345") for i in range(3))
    )
    with pytest.raises(ArchiveError, match="over the bound of 12 bytes"):
        extract.extract(archive, place / "d1", extract.Limits(total_bytes=12))
    with pytest.raises(ArchiveError, match="more than 3 entries"):
        extract.extract(archive, place / "d2", extract.Limits(entries=3))
    assert not (place / "d1").exists() and not (place / "d2").exists()


def test_an_oversized_pax_header_is_refused_before_it_is_read(place: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("top", tarfile.DIRTYPE))
        tar.addfile(
            _info("top/x", size=1, pax_headers={"comment": "y" * (2 << 20)}), io.BytesIO(b"x")
        )
    (place / "a.tar").write_bytes(raw.getvalue())
    with pytest.raises(ArchiveError, match="extended header"):
        extract.extract(place / "a.tar", place / "dest")


def test_damaged_and_foreign_files(place: Path) -> None:
    good = _archive(place / "a.tar.zst", lambda t: _file(t, "top/x", b"x" * 100_000))
    cut = place / "cut.tar.zst"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(ArchiveError, match="cannot"):
        extract.extract(cut, place / "dest")
    (place / "foreign.zip").write_bytes(b"PK\x03\x04" + bytes(600))
    with pytest.raises(ArchiveError, match=r"not a tar\.zst, tar\.gz or tar archive"):
        extract.extract(place / "foreign.zip", place / "dest")
    assert not (place / "dest").exists()


def _raw_header(name: str, kind: bytes, data: bytes = b"") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


def test_a_long_run_of_extended_headers_is_refused(place: Path) -> None:
    # tarfile reads each extended header by calling itself for the next one: thousands in
    # a row would exhaust Python's stack (an internal error instead of a refusal).
    pax = b"17 path=top/abcd\n"
    run = b"".join(_raw_header("././@PaxHeader", tarfile.XHDTYPE, pax) for _ in range(3000))
    data = _raw_header("top/", tarfile.DIRTYPE) + run + _raw_header("top/x", tarfile.REGTYPE)
    archive = place / "a.tar"
    archive.write_bytes(data + bytes(1024))
    _refused(place, archive, "extended headers in a row")


def test_a_global_extended_header_is_refused(place: Path) -> None:
    # tarfile applies every key of a global header to every later entry: 1 MiB of keys and
    # a million entries would be hours of CPU from a small compressed archive.
    keys = b"".join(f"11 k{i:05d}=\n".encode() for i in range(100))
    data = _raw_header("pax_global_header", tarfile.XGLTYPE, keys)
    data += _raw_header("top/", tarfile.DIRTYPE) + _raw_header("top/x", tarfile.REGTYPE)
    archive = place / "a.tar"
    archive.write_bytes(data + bytes(1024))
    _refused(place, archive, "global extended header")


@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_an_entry_where_an_earlier_path_made_a_directory(place: Path, kind: bytes) -> None:
    # top/a exists as the parent made for top/a/f; an entry top/a is then refused by name
    # (not a bare "File exists" naming the temporary directory).
    archive = _archive(
        place / "a.tar.zst",
        lambda t: _file(t, "top/f", b"x"),
        lambda t: _file(t, "top/a/f", b"x"),
        lambda t: t.addfile(
            _info("top/a", kind, linkname="f" if kind == tarfile.SYMTYPE else "top/f")
        ),
    )
    _refused(place, archive, "where an earlier entry's path made a directory")
