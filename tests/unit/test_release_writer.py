"""The release archive's writer: its size, its compressed stream, and the files it
stores in zstd's raw blocks rather than compress again."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pytest
import zstandard

from reproflake.artifacts import release as rel
from reproflake.artifacts import tarball

TOP = "p-0123"


def _items(tmp_path: Path, deb: bytes) -> list[rel.Item]:
    big = tmp_path / "big.deb"
    big.write_bytes(deb)
    return [
        rel.memory("reproflake.toml", b"[project]\nname = 'p'\n"),
        rel.on_disk("vendor/big.deb", big),
        rel.memory("run.sh", b"#!/bin/sh\n", executable=True),
    ]


def _plain(items: list[rel.Item]) -> bytes:
    out = io.BytesIO()
    tarball.write_tar(rel.entries(TOP, items), 7, out, "none")
    return out.getvalue()


def _compressed(data: bytes) -> bytes:
    """One zstd frame, as `zstd -3` with a checksum writes it (single-threaded API)."""
    c = zstandard.ZstdCompressor(level=tarball.ZSTD_LEVEL, threads=1, write_checksum=True)
    z = c.compressobj()
    return z.compress(data) + z.flush()


def _raw_frame(data: bytes) -> bytes:
    """A frame of raw blocks, written from RFC 8878 here, independently of the writer."""
    out = bytearray(b"\x28\xb5\x2f\xfd")  # magic number
    out += bytes([0])  # frame header descriptor: no size, no checksum, no dictionary
    out += bytes([(17 - 10) << 3])  # window descriptor: 2**17 bytes
    pieces = [data[i : i + 131072] for i in range(0, len(data), 131072)]
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        out += (len(piece) << 3 | 0 << 1 | last).to_bytes(3, "little")
        out += piece
    return bytes(out)


def _random(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# Several of the writer's 1 MiB pieces; an exact multiple of the block; one byte over.
SIZES = [3 * (1 << 20) + 12345, 8 * 131072, 131072 + 1, tarball.STORED_MIN]


@pytest.mark.parametrize("size", SIZES)
def test_a_compressed_file_is_stored_in_raw_blocks_between_compressed_frames(
    tmp_path: Path, size: int
) -> None:
    deb = _random(size)
    items = _items(tmp_path, deb)
    plain = _plain(items)
    # The .deb's bytes start after its header; the tar pads them to 512 bytes.
    start = plain.index(deb)
    end = start + len(deb)
    expected = _compressed(plain[:start]) + _raw_frame(deb) + _compressed(plain[end:])
    out = io.BytesIO()
    size_written = rel.write(out, TOP, items, 7, "tar.zst")
    assert out.getvalue() == expected
    assert size_written == len(expected)
    # Every zstd reader takes the frames as one stream: the tar is the plain one.
    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(out.getvalue()), read_across_frames=True
    )
    assert reader.read() == plain


@pytest.mark.skipif(shutil.which("zstd") is None and not os.environ.get("CI"), reason="no zstd")
def test_zstd_and_gnu_tar_read_the_stored_frames(tmp_path: Path) -> None:
    deb = _random(1 << 20)
    items = _items(tmp_path, deb)
    archive = tmp_path / "r.tar.zst"
    with archive.open("wb") as f:
        rel.write(f, TOP, items, 7, "tar.zst")
    got = subprocess.run(["zstd", "-dc", str(archive)], capture_output=True, check=True)
    assert got.stdout == _plain(items)
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(dest)], check=True)
    assert (dest / TOP / "vendor" / "big.deb").read_bytes() == deb


def test_compressible_bytes_under_a_compressed_name_are_stored_as_they_are(
    tmp_path: Path,
) -> None:
    # The name decides, not a guess from the bytes: zeros named .deb are not squeezed.
    items = _items(tmp_path, bytes(1 << 20))
    out = io.BytesIO()
    rel.write(out, TOP, items, 7, "tar.zst")
    assert len(out.getvalue()) > 1 << 20
    renamed = [
        rel.Item("vendor/big.bin", i.sha256, source=i.source) if i.source else i for i in items
    ]
    out = io.BytesIO()
    rel.write(out, TOP, renamed, 7, "tar.zst")
    assert len(out.getvalue()) < 1 << 14


def test_small_files_are_compressed_with_their_neighbours(tmp_path: Path) -> None:
    items = _items(tmp_path, _random(tarball.STORED_MIN - 1))
    out = io.BytesIO()
    rel.write(out, TOP, items, 7, "tar.zst")
    assert out.getvalue() == _compressed(_plain(items))  # one frame


def test_gzip_compresses_everything_in_one_stream(tmp_path: Path) -> None:
    items = _items(tmp_path, _random(1 << 20))
    g = zlib.compressobj(tarball.GZIP_LEVEL, zlib.DEFLATED, 31)
    expected = g.compress(_plain(items)) + g.flush()
    out = io.BytesIO()
    assert rel.write(out, TOP, items, 7, "tar.gz") == len(expected)
    assert out.getvalue() == expected


def test_a_hashed_stream_never_stores(tmp_path: Path) -> None:
    # An OCI layer's bytes (its tar is hashed for the diff_id) are as they always were.
    big = tmp_path / "big.deb"
    big.write_bytes(_random(1 << 20))
    entries = [tarball.Entry("big.deb", "file", source=str(big), stored=True)]
    out = io.BytesIO()
    tarball.write_tar(entries, 7, out, "zstd")
    plain = io.BytesIO()
    tarball.write_tar(entries, 7, plain, "none")
    assert out.getvalue() == _compressed(plain.getvalue())


def test_stored_bytes_in_memory_are_framed_alike(tmp_path: Path) -> None:
    data = _random(300000)
    entries = [tarball.Entry("a.whl", "file", content=data, stored=True)]
    out = io.BytesIO()
    tarball.write_tar(entries, 7, out, "zstd", diff_id=False, digest=False)
    plain = io.BytesIO()
    tarball.write_tar(entries, 7, plain, "none")
    tar = plain.getvalue()
    start = tar.index(data)
    expected = _compressed(tar[:start]) + _raw_frame(data) + _compressed(tar[start + len(data) :])
    assert out.getvalue() == expected


def test_which_names_are_stored() -> None:
    items = [
        rel.memory(name, b"x")
        for name in ("vendor/a.deb", "vendor/b.whl", "data/c.CSV.GZ", "src/d.py", "e.tar")
    ]
    stored = {e.path for e in rel.entries(TOP, items) if e.stored}
    assert stored == {f"{TOP}/vendor/a.deb", f"{TOP}/vendor/b.whl", f"{TOP}/data/c.CSV.GZ"}


@pytest.mark.parametrize("size", [1 << 20, 3 << 20])  # read in place; read ahead
def test_a_file_that_shrinks_while_stored_is_an_error(tmp_path: Path, size: int) -> None:
    big = tmp_path / "big.deb"
    big.write_bytes(_random(size))

    entries = [tarball.Entry("big.deb", "file", source=str(big), stored=True)]
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:  # says the file is longer than it is
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, 0, 0, 0, 0, 0, st.st_size + 4096, 0, 0, 0))

    with pytest.MonkeyPatch.context() as m:
        m.setattr(tarball.os, "fstat", fstat)
        with pytest.raises(OSError, match="shrank"):
            tarball.write_tar(entries, 7, io.BytesIO(), "zstd", diff_id=False, digest=False)


class _Full(io.RawIOBase):
    """A destination that fails, as a full disk does, once ``room`` bytes are written."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        n = memoryview(data).nbytes  # type: ignore[arg-type]
        if n > self.room:
            raise OSError(28, "No space left on device")
        self.room -= n
        return n


def test_a_failed_write_leaves_no_read_ahead_behind(tmp_path: Path) -> None:
    # The error comes back, and the second thread is gone with it: no read still in
    # flight on the file descriptor write_tar closes, no thread left waiting.
    big = tmp_path / "big.deb"
    big.write_bytes(_random(5 << 20))
    entries = [tarball.Entry("big.deb", "file", source=str(big), stored=True)]
    real_preadv, closed_under_a_read = os.preadv, []

    def slow_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        time.sleep(0.05)  # still reading when the write fails
        try:
            return real_preadv(fd, buffers, offset)
        except OSError as exc:
            closed_under_a_read.append(exc)
            raise

    before = {t for t in threading.enumerate() if t.name.startswith("read-ahead")}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(tarball.os, "preadv", slow_preadv)
        with pytest.raises(OSError, match="No space left") as caught:
            tarball.write_tar(entries, 7, _Full(2 << 20), "zstd", diff_id=False, digest=False)
    time.sleep(0.1)
    after = {t for t in threading.enumerate() if t.name.startswith("read-ahead")}
    assert after <= before, after
    assert caught.value.errno == 28
    assert closed_under_a_read == []


def test_short_reads_are_read_on_where_they_stopped(tmp_path: Path) -> None:
    # A network or FUSE file system may return less than asked: the bytes are the same.
    items = _items(tmp_path, _random(3 * (1 << 20) + 777))
    whole = io.BytesIO()
    rel.write(whole, TOP, items, 7, "tar.zst")
    real = os.preadv
    calls = []

    def short(fd: int, buffers: list[memoryview], offset: int) -> int:
        calls.append(offset)
        data = os.pread(fd, min(100_000, sum(len(b) for b in buffers)), offset)
        n = 0
        for b in buffers:
            piece = data[n : n + len(b)]
            b[: len(piece)] = piece
            n += len(piece)
            if n == len(data):
                break
        return len(data)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(tarball.os, "preadv", short)
        out = io.BytesIO()
        rel.write(out, TOP, items, 7, "tar.zst")
    assert real is os.preadv
    assert len(calls) > 30  # the reads were short, and went on
    assert out.getvalue() == whole.getvalue()
