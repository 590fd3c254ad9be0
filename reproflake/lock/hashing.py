"""Content hashes of local files and directories, as Nix computes them.

A local input is identified by the sha256 of its NAR serialisation, the hash
Nix uses for ``nix-store --add-fixed --recursive sha256``: the store path then
follows from the hash and the name alone. Hashing streams (large data files
never sit in memory) and is cached so an unchanged multi-gigabyte input is not
read again.

The cache is keyed as git keys its index: every entry's device, inode, mode,
size, mtime *and ctime*. A copy tool can restore an mtime; nothing but the
kernel sets a ctime, so a same-size rewrite with its mtime put back still
misses. Each entry is sealed with a MAC under a secret kept in the user's own
cache directory: an entry this machine did not write (a cache committed to a
repository, an edited file) never answers, so the cache cannot put a wrong hash
into the lock.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from reproflake.errors import LockError, UsageError

CHUNK = 4 << 20  # large reads let hashlib release the GIL and keep up with sha256sum
# Sealed into every entry. Entries written before the racily clean rule (sealed without
# it) may hold a hash taken in the same tick as a rewrite that kept every stat; nothing
# in them tells which, so none of them answers: each path is hashed once again.
SEAL_MARK = "racy-rule"


class _Nar:
    """Feeds a NAR serialisation into a sha256 without building it in memory."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def bytes_(self, data: bytes) -> None:
        self.h.update(len(data).to_bytes(8, "little"))
        self.h.update(data)
        self.h.update(b"\0" * (-len(data) % 8))

    def strs(self, *items: str) -> None:
        for item in items:
            self.bytes_(item.encode())

    def file(self, path: Path, st: os.stat_result) -> None:
        self.strs("(", "type", "regular")
        if st.st_mode & stat.S_IXUSR:
            self.strs("executable", "")
        self.strs("contents")
        self.h.update(st.st_size.to_bytes(8, "little"))
        total = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        # Non-blocking and not through a link: if the file was swapped for a FIFO since
        # it was looked at, opening must not wait for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _Changed(path)
        with open(fd, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                self.h.update(view[:n])
                total += n
        if total != st.st_size:
            raise _Changed(path)
        self.h.update(b"\0" * (-total % 8))
        self.strs(")")

    def node(self, path: Path) -> None:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            self.strs("(", "type", "symlink", "target", os.readlink(path), ")")
        elif stat.S_ISREG(st.st_mode):
            self.file(path, st)
        elif stat.S_ISDIR(st.st_mode):
            self.strs("(", "type", "directory")
            # NAR sorts entries by their byte strings.
            for name in sorted(os.listdir(path), key=os.fsencode):
                self.strs("entry", "(", "name", name, "node")
                self.node(path / name)
                self.strs(")")
            self.strs(")")
        else:
            from reproflake._confine import describe_mode

            raise UsageError(
                f"{path} is {describe_mode(st.st_mode)}; an input may hold only regular files, "
                "directories and symbolic links",
                hint="remove it from the input, or declare the input's files more precisely",
            )


class _Changed(Exception):
    def __init__(self, path: Path) -> None:
        self.path = path


def _signature(path: Path) -> list[list[object]]:
    """What must stay the same for a cached hash to stay valid: every entry's stat."""

    def row(p: str) -> list[object]:
        st = os.lstat(p)
        return [
            os.path.relpath(p, path),
            st.st_mode,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_dev,
        ]

    if path.is_symlink() or not path.is_dir():
        return [row(str(path))]
    rows = []
    for current, dirs, files in os.walk(path):
        dirs.sort()
        rows.append(row(current))
        rows.extend(row(os.path.join(current, name)) for name in sorted(files))
        rows.extend(
            row(os.path.join(current, d)) for d in dirs if os.path.islink(os.path.join(current, d))
        )
    return rows


def nar_hash(path: Path) -> str:
    """The SRI NAR hash (``sha256-<base64>``) of a file, directory or symlink."""
    before = _signature(path)
    nar = _Nar()
    nar.strs("nix-archive-1")
    try:
        nar.node(path)
    except _Changed as exc:
        raise _changed_error(exc.path) from None
    except FileNotFoundError as exc:
        raise _changed_error(Path(exc.filename or path)) from None
    if _signature(path) != before:
        raise _changed_error(path)
    return "sha256-" + base64.b64encode(nar.h.digest()).decode()


def _changed_error(path: Path) -> LockError:
    return LockError(
        f"{path} changed while it was being hashed",
        hint="wait until whatever writes it has finished, then run the command again",
    )


def _secret() -> bytes:
    """This machine's key for sealing cache entries (made once, readable by the user only)."""
    from reproflake._paths import user_cache_dir

    path = user_cache_dir() / "secret"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    from reproflake.fsutil import write_atomic

    data = os.urandom(32)
    # A read-only home: entries sealed with this key simply never match later.
    with contextlib.suppress(OSError):
        write_atomic(path, data, mode=0o600)
    return data


@dataclass
class HashCache:
    """A JSON file of (path → signature, hash, seal), kept under .reproflake/cache/.

    A path any entry of which changed too recently to trust its stat (fsclock: a rewrite
    in the same tick of its file system's clock could keep it) is hashed, not remembered.
    ``root``: the project, whose file system's clock is read (None: this machine's)."""

    file: Path
    root: Path | None = None

    def __post_init__(self) -> None:
        from reproflake.fsclock import Clock

        self._clock = Clock(self.root) if self.root is not None else None
        self._key = _secret()
        self._entries: dict[str, dict[str, object]] = {}
        self._dirty = False
        try:
            loaded = json.loads(self.file.read_text())
            if isinstance(loaded, dict):
                self._entries = loaded
        except (OSError, ValueError):
            pass

    def nar_hash(self, path: Path) -> str:
        key = str(path.resolve())
        started = time.time_ns()
        rows = _signature(path)
        sig = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
        entry = self._entries.get(key)
        if (
            isinstance(entry, dict)
            and entry.get("signature") == sig
            and isinstance(entry.get("narHash"), str)
            and hmac.compare_digest(
                str(entry.get("seal", "")), self._seal(key, sig, entry["narHash"])
            )
        ):
            return str(entry["narHash"])
        digest = nar_hash(path)
        if self._racy(rows, started):
            self._entries.pop(key, None)
            self._dirty = True
            return digest
        self._entries[key] = {
            "signature": sig,
            "narHash": digest,
            "seal": self._seal(key, sig, digest),
        }
        self._dirty = True
        return digest

    def _racy(self, rows: list[list[object]], started: int) -> bool:
        from reproflake import fsclock

        since = self._clock.since(started) if self._clock is not None else started - fsclock.RACY_NS
        times = [t for row in rows for t in row[3:5] if isinstance(t, int)]  # mtime, ctime
        return fsclock.recent(since, *times)

    def _seal(self, key: str, sig: str, digest: object) -> str:
        message = json.dumps([SEAL_MARK, key, sig, digest]).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def save(self) -> None:
        if not self._dirty:
            return
        from reproflake.fsutil import write_atomic

        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.file, json.dumps(self._entries, sort_keys=True, indent=0) + "\n")
        self._dirty = False


def short(sri: str) -> str:
    """A short, readable form of a hash for messages: the first 8 hex digits."""
    algo, _, b64 = sri.partition("-")
    try:
        return base64.b64decode(b64).hex()[:8] if algo == "sha256" else sri[:12]
    except ValueError:
        return sri[:12]
