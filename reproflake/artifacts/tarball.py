"""Deterministic tar streams, compressed as OCI layers are.

Every entry is normalised (flit's ``clean_tarinfo``, taken further): owner 0:0 with no
names, one fixed time, modes from the entry's kind alone (0755 directories and
executables, 0644 other files, 0777 links), no hard links, PAX headers only where a
name needs them. Entries are sorted by path components, so a parent precedes its
children. The bytes then depend only on the entries' paths, kinds and contents.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

# What the hashes, the compressors and files take: bytes or a view of the buffer.
Buffer = bytes | bytearray | memoryview

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
    stored: bool = False  # already compressed: zstd stores it rather than compress it again

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


_TYPES = {"dir": b"5", "symlink": b"2", "file": b"0"}  # tarfile's DIRTYPE, SYMTYPE, REGTYPE
_IDS = b"0000000\x00" * 2  # uid and gid: 0
# After the link name: the ustar magic and version, no user or group names, no device
# numbers (as tarfile writes), no prefix, the block's padding.
_TAIL = b"ustar\x0000" + bytes(64 + 16) + bytes(155 + 12)
# The checksum counts its own field as eight spaces; these parts are the same in every
# header, so their share is added once.
_FIXED_SUM = sum(_TAIL) + 8 * ord(" ")


def header(entry: Entry, mtime: int, size: int) -> bytes:
    """The entry's tar header: the bytes ``tarfile`` writes in PAX format.

    Most entries need no PAX record (an ASCII name and link of at most 100 bytes, a size
    below 8 GiB): their one ustar block is built here directly, several times faster
    than ``TarInfo.tobuf`` (which an image with thousands of files feels), its checksum
    summed over the parts that vary only. tests/unit pin the two to the same bytes;
    anything else goes to ``tarfile`` itself."""
    kind = entry.kind
    name = entry.path + "/" if kind == "dir" else entry.path
    link = entry.target if kind == "symlink" else ""
    if kind != "file":
        size = 0
    if not (len(name) <= 100 and len(link) <= 100 and name.isascii() and link.isascii()
            and size < 8**11 and 0 <= mtime < 8**11):  # fmt: skip
        return _tarfile_header(entry, mtime, size)
    name_b, link_b, kind_b = name.encode(), link.encode(), _TYPES[kind]
    numbers = b"%07o\x00%s%011o\x00%011o\x00" % (entry.mode(), _IDS, size, mtime)
    checksum = _FIXED_SUM + sum(name_b) + sum(link_b) + sum(numbers) + kind_b[0]
    return b"".join(
        (
            name_b.ljust(100, b"\0"),
            numbers,
            b"%06o\x00 " % checksum,
            kind_b,
            link_b.ljust(100, b"\0"),
            _TAIL,
        )
    )


def _tarfile_header(entry: Entry, mtime: int, size: int) -> bytes:
    import tarfile  # only for the rare header that needs a PAX record

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
    """One compressed stream: what feed() and end() produce is handed to ``emit``.

    zstd runs in its multi-threaded mode with ``threads`` workers (at least one): its
    bytes are the same for any count from one up (zero, the single-threaded mode, would
    differ; tests/unit pin this), so the count is only a question of speed. The
    compression context is reused by the streams one thread writes in turn: a new one
    per layer costs its buffers and worker threads again. zstd's output goes to
    ``emit`` through a stream writer in CHUNK-sized pieces: ``compressobj`` would gather
    each call's output into a new bytes object, which on a release of mostly
    compressed .debs cost about a tenth more CPU and half again the memory."""

    def __init__(self, kind: str, emit: Callable[[Buffer], None], threads: int = 0) -> None:
        self.kind = kind
        if kind == "gzip":
            # wbits 31: a gzip member whose header has no name and mtime 0.
            z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
            self._feed: Callable[[Buffer], object] = lambda data: emit(z.compress(data))
            self._end: Callable[[], object] = lambda: emit(z.flush())
        elif kind == "zstd":
            import zstandard

            writer = _zstd(threads or max(1, os.cpu_count() or 1)).stream_writer(
                _Emitter(emit), write_size=CHUNK, closefd=False
            )
            self._feed = writer.write
            # Not close(): with closefd=False it would end a second, empty frame.
            self._end = lambda: writer.flush(zstandard.FLUSH_FRAME)
        elif kind == "none":
            self._feed = emit
            self._end = _nothing
        else:
            raise ValueError(f"unknown compression {kind!r}")

    def feed(self, data: Buffer) -> None:
        self._feed(data)

    def end(self) -> None:
        self._end()


# A zstd frame of stored (raw) blocks (RFC 8878): the magic number, a frame header
# descriptor of zeros (no content size, not a single segment, no checksum, no
# dictionary) and a window of 128 KiB, the largest block; then blocks of a three-byte
# little-endian header (size << 3 | type 0, raw | 1 on the last block) and the bytes.
RAW_FRAME = b"\x28\xb5\x2f\xfd\x00\x38"
RAW_BLOCK = 1 << 17
# Files smaller than this are compressed with what surrounds them: a frame of their own
# would cost more than compressing them saves.
STORED_MIN = 1 << 16


def _fill(fd: int, spans: list[memoryview], offset: int, name: str) -> None:
    """Fill ``spans`` from ``fd`` at ``offset``. One preadv nearly always does; a network
    or FUSE file system may return less, and the rest is read where it stopped. Nothing
    more to read before they are full means the file shrank."""
    while spans:
        got = os.preadv(fd, spans, offset)
        if not got:
            raise OSError(f"{name} shrank while it was read")
        offset += got
        while spans and got >= len(spans[0]):
            got -= len(spans[0])
            spans = spans[1:]
        if spans:
            spans = [spans[0][got:], *spans[1:]]


def _raw_block_header(size: int, last: bool) -> bytes:
    return ((size << 3) | last).to_bytes(3, "little")


def _nothing() -> None:
    return None


class _Emitter:
    """The file-like end a zstd stream writer writes into: each piece to ``emit``."""

    def __init__(self, emit: Callable[[Buffer], None]) -> None:
        self.emit = emit

    def write(self, data: Buffer) -> int:
        self.emit(data)
        return len(data)


_contexts = threading.local()


def _zstd(threads: int) -> Any:
    """This thread's zstd compressor with ``threads`` workers (one stream at a time)."""
    import zstandard

    found = getattr(_contexts, "zstd", {})
    if threads not in found:
        found[threads] = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, threads=threads, write_checksum=True
        )
        _contexts.zstd = found
    return found[threads]


@dataclass(frozen=True)
class Written:
    diff_id: str  # sha256 of the uncompressed tar ("" when not asked for)
    digest: str  # sha256 of the bytes written ("" when not asked for)
    size: int  # of the bytes written


class _Sink:
    """Hashes the tar, compresses it, hashes and writes the result.

    Headers and file contents are gathered into one CHUNK-sized buffer, files read
    straight into it: a call into the hash and the compressor per piece, not per
    header, and no copies in between, is most of the difference against `tar | zstd`
    on a tree of thousands of small files. Neither deflate nor zstd output depends on
    how the input was cut (no flushes in between); tests/unit pin the bytes.

    Only the hashes asked for are computed: a release needs no diff_id, an
    uncompressed tar's digest is its diff_id, and an archive of blobs needs neither
    (its files are then copied by the kernel, not through Python)."""

    def __init__(
        self, dest: BinaryIO, compression: str, threads: int, diff_id: bool, digest: bool
    ) -> None:
        self.dest = dest
        plain = compression == "none"
        self.raw = hashlib.sha256() if diff_id or (plain and digest) else None
        self.out = hashlib.sha256() if digest and not plain else None
        self.size = 0
        self.compressor = None if plain else Compressor(compression, self._emit, threads)
        # zstd can store a file's bytes in a frame of raw blocks between compressed frames.
        self.can_store = compression == "zstd" and self.raw is None
        self.fed = False  # the compressor has had input since its last frame ended
        self.ahead: Any = None  # the thread that reads stored files ahead, once needed
        # Room for CHUNK's worth of stored blocks with their headers, too.
        self.buffer = bytearray(CHUNK + 3 * (CHUNK // RAW_BLOCK))
        self.view = memoryview(self.buffer)
        self.spare = self.view  # the read-ahead's second buffer, once needed
        self.filled = 0
        # Uncompressed and unhashed into a real file: the kernel copies file contents.
        self.direct = plain and self.raw is None and isinstance(dest, io.FileIO)

    def write(self, data: bytes) -> None:
        n = len(data)
        if self.filled + n > CHUNK:
            self._flush()
            if n >= CHUNK:
                self._process(data)
                return
        self.buffer[self.filled : self.filled + n] = data
        self.filled += n

    def copy(self, fd: int, size: int, name: str) -> None:
        """``size`` bytes of the open file ``fd``, read into the buffer (or sent as is)."""
        if self.direct:
            self._flush()
            self._send(fd, size, name)
            return
        left = size
        while left > 0:
            if self.filled == CHUNK:
                self._flush()
            want = min(CHUNK - self.filled, left)
            got = os.readv(fd, [self.view[self.filled : self.filled + want]])
            if not got:
                raise OSError(f"{name} shrank while it was read")
            self.filled += got
            left -= got

    def store(self, fd: int | None, data: bytes | None, size: int, name: str) -> bool:
        """``size`` bytes (of ``fd``, or ``data``) in a zstd frame of stored blocks, when
        this stream can: False when it cannot (then the caller compresses them).

        For files compressed already (.debs, wheels): zstd at any level would search them
        for matches, find next to none, and emit raw blocks anyway, at a tenth of the
        speed of copying. The compressed frame before is ended (zstd decoders read
        concatenated frames as one stream); the next starts with what follows. Only when
        nothing hashes the tar itself (a release): an OCI layer's bytes stay as they are."""
        if not self.can_store or size < STORED_MIN:
            return False
        self._flush()
        assert self.compressor is not None
        if self.fed:
            self.compressor.end()
            self.fed = False
        self._emit(RAW_FRAME)
        if data is not None:
            for start in range(0, size, RAW_BLOCK):
                piece = data[start : start + RAW_BLOCK]
                self._emit(_raw_block_header(len(piece), start + RAW_BLOCK >= size))
                self._emit(piece)
            return True
        assert fd is not None
        self._stored_blocks(fd, size, name)
        return True

    def _stored_blocks(self, fd: int, size: int, name: str) -> None:
        """A file's raw blocks, read straight into place behind gaps for their headers
        (one readv and one write per CHUNK); a file of more than one CHUNK is read a
        CHUNK ahead by a second thread into a second buffer while this one writes."""
        pieces = [(offset, min(CHUNK, size - offset)) for offset in range(0, size, CHUNK)]

        def read(buffer: memoryview, offset: int, want: int) -> memoryview:
            step = 3 + RAW_BLOCK
            count = -(-want // RAW_BLOCK)
            spans = [buffer[i * step + 3 : i * step + 3 + RAW_BLOCK] for i in range(count)]
            spans[-1] = spans[-1][: want - (count - 1) * RAW_BLOCK]
            _fill(fd, spans, offset, name)
            for i, span in enumerate(spans):
                last = offset + want == size and i == count - 1
                buffer[i * step : i * step + 3] = _raw_block_header(len(span), last)
            return buffer[: (count - 1) * step + 3 + len(spans[-1])]

        if len(pieces) == 1:
            self._emit(read(self.view, *pieces[0]))
            return
        if self.ahead is None:
            from concurrent.futures import ThreadPoolExecutor

            self.ahead = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
            self.spare = memoryview(bytearray(len(self.buffer)))
        buffers = (self.view, self.spare)
        pending = self.ahead.submit(read, buffers[0], *pieces[0])
        try:
            for k in range(len(pieces)):
                blocks = pending.result()
                if k + 1 < len(pieces):
                    pending = self.ahead.submit(read, buffers[(k + 1) % 2], *pieces[k + 1])
                self._emit(blocks)
        except BaseException:
            # A failed write (a full disk): the read in flight uses ``fd``, which the
            # caller closes next, and its number may be another file's by then.
            from concurrent.futures import wait

            wait([pending])
            raise

    def _send(self, fd: int, size: int, name: str) -> None:
        out, offset = self.dest.fileno(), 0
        while offset < size:
            sent = os.sendfile(out, fd, offset, size - offset)
            if not sent:
                raise OSError(f"{name} shrank while it was read")
            offset += sent
        self.size += size

    def _flush(self) -> None:
        if self.filled:
            self._process(self.view[: self.filled])
            self.filled = 0

    def _process(self, data: Buffer) -> None:
        if self.raw is not None:
            self.raw.update(data)
        if self.compressor is None:
            self._emit(data)
        else:
            self.compressor.feed(data)
            self.fed = True

    def _emit(self, data: Buffer) -> None:
        view = memoryview(data)
        if not view.nbytes:
            return
        if self.out is not None:
            self.out.update(view)
        self.size += view.nbytes
        while view.nbytes:  # an unbuffered file may take less than it is given
            done = self.dest.write(view)
            view = view[view.nbytes if done is None else done :]

    def stop(self) -> None:
        """Let the read-ahead thread go (once a stored file needed it)."""
        if self.ahead is not None:
            self.ahead.shutdown()
            self.ahead = None

    def close(self) -> Written:
        self.stop()
        self._flush()
        if self.compressor is not None:
            self.compressor.end()
        raw = "sha256:" + self.raw.hexdigest() if self.raw is not None else ""
        if self.compressor is None:
            return Written(raw, raw, self.size)  # uncompressed: the same bytes
        out = "sha256:" + self.out.hexdigest() if self.out is not None else ""
        return Written(raw, out, self.size)


def write_tar(
    entries: Iterable[Entry],
    mtime: int,
    dest: BinaryIO,
    compression: str,
    *,
    threads: int = 0,
    diff_id: bool = True,
    digest: bool = True,
) -> Written:
    """Write ``entries`` (already sorted, parents included) as one tar stream.

    ``threads``: zstd's workers (0: one per core). ``diff_id``/``digest``: which hashes
    to compute; the one not asked for is "" in the result."""
    sink = _Sink(dest, compression, threads, diff_id, digest)
    try:
        _write_entries(sink, entries, mtime)
    except BaseException:
        sink.stop()  # no thread left behind by a failed write
        raise
    return sink.close()


def _write_entries(sink: _Sink, entries: Iterable[Entry], mtime: int) -> None:
    for entry in entries:
        if entry.kind != "file":
            sink.write(header(entry, mtime, 0))
            continue
        if entry.content is not None:
            size = len(entry.content)
            sink.write(header(entry, mtime, size))
            if not (entry.stored and sink.store(None, entry.content, size, entry.path)):
                sink.write(entry.content)
        else:
            # The file descriptor itself: no Python file object per file, of thousands.
            fd = os.open(entry.source, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                sink.write(header(entry, mtime, size))
                if not (entry.stored and sink.store(fd, None, size, entry.source)):
                    sink.copy(fd, size, entry.source)
            finally:
                os.close(fd)
        if size % BLOCK:
            sink.write(_ZEROS[: BLOCK - size % BLOCK])
    sink.write(_ZEROS[: 2 * BLOCK])  # the end-of-archive marker


_ZEROS = bytes(2 * BLOCK)
