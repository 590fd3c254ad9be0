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


_TYPES = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "file": tarfile.REGTYPE}
_NUL_ID = b"0000000\x00"  # uid and gid: 0


def header(entry: Entry, mtime: int, size: int) -> bytes:
    """The entry's tar header: the bytes ``tarfile`` writes in PAX format.

    Most entries need no PAX record (an ASCII name and link of at most 100 bytes, a size
    below 8 GiB): their one ustar block is built here directly, a few times faster than
    ``TarInfo.tobuf`` (which an image with thousands of files feels). tests/unit pin the
    two to the same bytes; anything else goes to ``tarfile`` itself."""
    name = entry.path + "/" if entry.kind == "dir" else entry.path
    link = entry.target if entry.kind == "symlink" else ""
    if entry.kind != "file":
        size = 0
    if not (len(name) <= 100 and len(link) <= 100 and name.isascii() and link.isascii()
            and size < 8**11 and 0 <= mtime < 8**11):  # fmt: skip
        return _tarfile_header(entry, mtime, size)
    block = b"".join(
        (
            name.encode().ljust(100, b"\0"),
            b"%07o\x00" % entry.mode(),
            _NUL_ID,
            _NUL_ID,
            b"%011o\x00" % size,
            b"%011o\x00" % mtime,
            b"        ",
            _TYPES[entry.kind],
            link.encode().ljust(100, b"\0"),
            tarfile.POSIX_MAGIC,
            bytes(64 + 16),  # no user or group names; no device numbers (as tarfile writes)
            bytes(155 + 12),  # no prefix; the block's padding
        )
    )
    checksum = sum(block)  # the checksum field counts as eight spaces
    return block[:148] + b"%06o\x00" % checksum + block[155:]


def _tarfile_header(entry: Entry, mtime: int, size: int) -> bytes:
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
    """Hashes the tar, compresses it, hashes and writes the result.

    Small writes (headers, small files, padding) are gathered into CHUNK-sized pieces
    first: a call into the hash and the compressor per piece, not per header, is most of
    the difference against `tar | zstd` on a tree of thousands of small files. Neither
    deflate nor zstd output depends on how the input was cut (no flushes in between);
    tests/unit pin the bytes."""

    def __init__(self, dest: BinaryIO, compression: str) -> None:
        self.dest = dest
        self.raw = hashlib.sha256()
        self.out = hashlib.sha256()
        self.size = 0
        self.compressor = Compressor(compression)
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            data = bytes(self.pending)
            self.pending.clear()
            self.raw.update(data)
            self._emit(self.compressor.feed(data))

    def _emit(self, data: bytes) -> None:
        if data:
            self.out.update(data)
            self.size += len(data)
            self.dest.write(data)

    def close(self) -> Written:
        self._flush()
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
