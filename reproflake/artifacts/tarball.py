"""Deterministic tar streams, compressed as OCI layers are.

Every entry is normalised (flit's ``clean_tarinfo``, taken further): owner 0:0 with no
names, one fixed time, modes from the entry's kind alone (0755 directories and
executables, 0644 other files, 0777 links), no hard links, PAX headers only where a
name needs them. Entries are sorted by path components, so a parent precedes its
children. The bytes then depend only on the entries' paths, kinds and contents.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

COMPRESSIONS = ("gzip", "zstd", "none")
GZIP_LEVEL = 6  # gzip's and Docker's default
ZSTD_LEVEL = 3  # zstd's default
BLOCK = 512
CHUNK = 1 << 20
# Directories every root has that must be writable by anyone, as in Debian.
STICKY_DIRS = frozenset({"tmp", "var/tmp"})


@dataclass(frozen=True)
class Entry:
    """One path of a layer. ``source`` is the file to read (``file``); ``target`` the link's."""

    path: str  # relative, no leading or trailing '/'
    kind: str  # "dir", "file" or "symlink"
    source: str = ""
    target: str = ""
    executable: bool = False
    content: bytes | None = None  # a file's bytes, when they are not read from ``source``

    def mode(self) -> int:
        if self.kind == "dir":
            return 0o1777 if self.path in STICKY_DIRS else 0o755
        if self.kind == "symlink":
            return 0o777
        return 0o755 if self.executable else 0o644


def sort_key(entry: Entry) -> list[str]:
    return entry.path.split("/")


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """The entries plus a directory entry for every parent they lack, sorted."""
    found = {e.path: e for e in entries}
    for path in list(found):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in found:
                found[parent] = Entry(parent, "dir")
    return sorted(found.values(), key=sort_key)


def header(entry: Entry, mtime: int, size: int) -> bytes:
    info = tarfile.TarInfo(entry.path)
    info.mtime = mtime
    info.mode = entry.mode()
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
    else:
        info.type = tarfile.REGTYPE
        info.size = size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class Compressor:
    """One compressed stream: feed() returns compressed bytes as they become ready."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "gzip":
            # wbits 31: a gzip member whose header has no name and mtime 0.
            z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
            self._feed: Callable[[bytes], bytes] = z.compress
            self._end: Callable[[], bytes] = z.flush
        elif kind == "zstd":
            import zstandard

            # Identical bytes for any thread count >= 1 (0 would differ): use every core.
            threads = max(1, os.cpu_count() or 1)
            c = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads, write_checksum=True)
            zobj = c.compressobj()
            self._feed = zobj.compress
            self._end = zobj.flush
        elif kind == "none":
            self._feed = bytes
            self._end = bytes
        else:
            raise ValueError(f"unknown compression {kind!r}")

    def feed(self, data: bytes) -> bytes:
        return self._feed(data)

    def end(self) -> bytes:
        return self._end()


@dataclass(frozen=True)
class Written:
    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of the bytes written
    size: int  # of the bytes written


class _Sink:
    """Hashes the tar, compresses it, hashes and writes the result."""

    def __init__(self, dest: BinaryIO, compression: str) -> None:
        self.dest = dest
        self.raw = hashlib.sha256()
        self.out = hashlib.sha256()
        self.size = 0
        self.compressor = Compressor(compression)

    def write(self, data: bytes) -> None:
        self.raw.update(data)
        self._emit(self.compressor.feed(data))

    def _emit(self, data: bytes) -> None:
        if data:
            self.out.update(data)
            self.size += len(data)
            self.dest.write(data)

    def close(self) -> Written:
        self._emit(self.compressor.end())
        return Written(
            "sha256:" + self.raw.hexdigest(), "sha256:" + self.out.hexdigest(), self.size
        )


def write_tar(entries: Iterable[Entry], mtime: int, dest: BinaryIO, compression: str) -> Written:
    """Write ``entries`` (already sorted, parents included) as one tar stream."""
    sink = _Sink(dest, compression)
    for entry in entries:
        if entry.kind != "file":
            sink.write(header(entry, mtime, 0))
            continue
        if entry.content is not None:
            sink.write(header(entry, mtime, len(entry.content)))
            sink.write(entry.content)
            if len(entry.content) % BLOCK:
                sink.write(b"\0" * (BLOCK - len(entry.content) % BLOCK))
            continue
        with open(entry.source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            sink.write(header(entry, mtime, size))
            left = size
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{entry.source} shrank while it was read")
                sink.write(chunk)
                left -= len(chunk)
        if size % BLOCK:
            sink.write(b"\0" * (BLOCK - size % BLOCK))
    sink.write(b"\0" * (2 * BLOCK))  # the end-of-archive marker
    return sink.close()
