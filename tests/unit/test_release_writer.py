"""The release archive's writer: its size and its one compressed stream."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
import zstandard

from reproflake.artifacts import release as rel
from reproflake.artifacts import tarball


def _items(tmp_path: Path) -> list[rel.Item]:
    big = tmp_path / "big.deb"
    big.write_bytes(bytes(range(256)) * 20000)  # several of the writer's 1 MiB pieces
    return [
        rel.memory("reproflake.toml", b"[project]\nname = 'p'\n"),
        rel.on_disk("vendor/big.deb", big),
        rel.memory("run.sh", b"#!/bin/sh\n", executable=True),
    ]


@pytest.mark.parametrize("fmt", sorted(rel.FORMATS))
def test_the_archive_is_the_plain_tar_compressed_whole(tmp_path: Path, fmt: str) -> None:
    items = _items(tmp_path)
    plain = io.BytesIO()
    tarball.write_tar(rel.entries("p-0123", items), 7, plain, "none")
    if fmt == "tar.zst":
        c = zstandard.ZstdCompressor(level=tarball.ZSTD_LEVEL, threads=1, write_checksum=True)
        z = c.compressobj()
        expected = z.compress(plain.getvalue()) + z.flush()
    else:
        g = zlib.compressobj(tarball.GZIP_LEVEL, zlib.DEFLATED, 31)
        expected = g.compress(plain.getvalue()) + g.flush()
    out = io.BytesIO()
    size = rel.write(out, "p-0123", items, 7, fmt)
    assert out.getvalue() == expected  # one frame: no empty second one at the end
    assert size == len(expected)
