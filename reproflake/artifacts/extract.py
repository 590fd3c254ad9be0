"""Safe extraction of a release archive: every entry checked before anything of it is written.

A release comes from someone else, so its archive is read as hostile input. Entries are
read one by one from the stream (tar.zst, tar.gz or plain tar, told apart by their first
bytes) and each must pass every check before its bytes are written:

- one top directory holds everything; no absolute path, no ``..``, no empty or ``.``
  component, no entry twice;
- only directories, regular files, symbolic links and hard links; no device node, FIFO
  or sparse entry (a release never writes them);
- a symbolic link points inside the top directory (read lexically, relative to its own
  directory); no entry is written through a symbolic link;
- a hard link names a regular file this archive has already written;
- sizes stay under :class:`Limits` (per entry, in total, in entries), checked from each
  header, so a huge (or sparse) entry is refused before one byte of it is written;
- extended headers bounded in size and in how many come in a row; no global PAX header
  (tarfile would apply its keys to every later entry: CPU without end).

Everything goes into a fresh directory inside the destination first and is moved into
place only when the whole archive passed: a refused archive leaves nothing behind. Modes
are 0755 or 0644 (from the executable bit alone); owners and times are not restored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from reproflake.errors import ArchiveError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
# A PAX or GNU long-name header is read whole into memory by tarfile: bound it.
MAX_HEADER_BYTES = 1 << 20
# tarfile reads the header after an extended one by calling itself: a long run of them
# would exhaust the stack. One entry needs at most a PAX header, a long name and a long
# link name.
MAX_HEADER_RUN = 8
GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """The bounds an archive must stay within (see docs/commands.md, `reproduce`).

    Large enough for a vendored release with a GPU framework's wheels (a few GiB each);
    small enough that a forged header cannot fill a disk."""

    entry_bytes: int = 8 * GIB
    total_bytes: int = 64 * GIB
    entries: int = 1_000_000


@dataclass(frozen=True)
class Member:
    """One extracted path (relative to the top directory)."""

    kind: str  # "dir", "file" or "symlink"
    sha256: str = ""  # a file's
    size: int = 0
    target: str = ""  # a symbolic link's
    executable: bool = False


@dataclass
class Extracted:
    top: Path  # the archive's one top directory, now inside the destination
    members: dict[str, Member] = field(default_factory=dict)


class _BoundedInfo(tarfile.TarInfo):
    """A TarInfo that refuses an oversized PAX or long-name header before tarfile reads
    it into memory, a long run of them, and a global PAX header (tarfile offers no hook
    for this but the member dispatch)."""

    def _proc_member(self, tar: tarfile.TarFile) -> Any:
        if self.type == tarfile.XGLTYPE:
            # tarfile applies each of its keys to every later entry: a megabyte of keys
            # and a million entries would be hours of CPU.
            raise ArchiveError(
                "a global extended header (pax_global_header), which a release never holds: "
                "refused, nothing extracted",
                hint="the archive is damaged or forged; get it again from its source",
            )
        run = 0
        if self.type in _HEADER_TYPES:
            if self.size > MAX_HEADER_BYTES:
                raise ArchiveError(
                    f"an extended header of {self.size} bytes (at most {MAX_HEADER_BYTES})",
                    hint="the archive is damaged or forged; get it again from its source",
                )
            run = getattr(tar, "_header_run", 0) + 1
            if run > MAX_HEADER_RUN:
                raise ArchiveError(
                    f"more than {MAX_HEADER_RUN} extended headers in a row: refused, nothing extracted",
                    hint="the archive is damaged or forged; get it again from its source",
                )
        tar._header_run = run  # type: ignore[attr-defined]  # per archive, not per entry
        return super()._proc_member(tar)  # type: ignore[misc]


_HEADER_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                 tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)  # fmt: skip


def compression(head: bytes) -> str:
    """zstd, gzip or none (a plain tar), from the first bytes; ArchiveError otherwise."""
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head[257:262] == b"ustar":
        return "none"
    raise ArchiveError(
        "not a tar.zst, tar.gz or tar archive (its first bytes are none of these)",
        hint="pass the archive `reproflake release` wrote",
    )


@contextlib.contextmanager
def _tar_stream(archive: Path) -> Iterator[BinaryIO]:
    with archive.open("rb") as raw:
        kind = compression(raw.read(512))
        raw.seek(0)
        if kind == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with reader:
                yield reader
        elif kind == "gzip":
            import gzip

            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield cast(BinaryIO, gz)
        else:
            yield raw


def extract(archive: Path, dest: Path, limits: Limits = Limits()) -> Extracted:
    """Extract ``archive`` into ``dest`` (created if missing); the one top directory it
    holds must not exist there yet. ArchiveError (naming the entry) for anything unsafe;
    then nothing is left in ``dest``."""
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".reproflake-extract-", dir=dest))
    try:
        result = _extract_into(archive, staging, limits)
        final = dest / result.top.name
        if final.exists() or final.is_symlink():
            raise ArchiveError(
                f"{final} exists already",
                hint="remove it, or reproduce into another directory with --dir",
            )
        os.rename(result.top, final)
        result.top = final
        return result
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_into(archive: Path, staging: Path, limits: Limits) -> Extracted:
    try:
        with (
            _tar_stream(archive) as stream,
            tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedInfo) as tar,
        ):
            return _Writer(staging, limits).run(tar)
    except ArchiveError as exc:
        raise ArchiveError(f"{archive}: {exc.message}", hint=exc.hint) from None
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise ArchiveError(
            f"{archive}: cannot read it as a tar archive: {exc}",
            hint="the archive is truncated or damaged; get it again from its source",
        ) from None
    except OSError as exc:
        if exc.filename is not None:
            raise
        # zstandard's and gzip's errors for damaged data are OSErrors without a file.
        raise ArchiveError(
            f"{archive}: cannot decompress it: {exc}",
            hint="the archive is truncated or damaged; get it again from its source",
        ) from None
    except Exception as exc:
        if type(exc).__name__ == "ZstdError":
            raise ArchiveError(
                f"{archive}: cannot decompress it: {exc}",
                hint="the archive is truncated or damaged; get it again from its source",
            ) from None
        raise


class _Writer:
    def __init__(self, staging: Path, limits: Limits) -> None:
        self.staging = staging
        self.limits = limits
        self.top = ""
        self.members: dict[str, Member] = {}
        self.seen: set[str] = set()
        self.total = 0

    def run(self, tar: tarfile.TarFile) -> Extracted:
        for count, info in enumerate(tar, 1):
            if count > self.limits.entries:
                raise ArchiveError(f"more than {self.limits.entries} entries", hint=_LIMIT_HINT)
            self._one(tar, info)
        if not self.top:
            raise ArchiveError(
                "it holds no entries", hint="pass the archive `reproflake release` wrote"
            )
        return Extracted(self.staging / self.top, dict(sorted(self.members.items())))

    def _one(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        name = _clean(info.name, info)
        top, _, rel = name.partition("/")
        if not self.top:
            self.top = top
        if top != self.top:
            raise _refuse(info, f"is outside the archive's one top directory {self.top}/")
        if name in self.seen:
            raise _refuse(info, "appears twice")
        self.seen.add(name)
        if info.issparse():
            raise _refuse(info, "is a sparse file (a release holds none)")
        if info.size > self.limits.entry_bytes:
            raise _refuse(
                info, f"is {info.size} bytes, over the bound of {self.limits.entry_bytes} per entry"
            )
        self.total += info.size
        if self.total > self.limits.total_bytes:
            raise _refuse(
                info, f"brings the total over the bound of {self.limits.total_bytes} bytes"
            )
        if not rel and not info.isdir():
            raise _refuse(info, "is the top of the archive but not a directory")
        path = self.staging / name
        self._parents(info, name)
        if info.isdir():
            if not path.is_dir() or path.is_symlink():
                os.mkdir(path, 0o755)
            self.members[rel] = Member("dir")
            return
        if os.path.lexists(path):  # only a parent made for an earlier entry can be there
            raise _refuse(
                info, "is not a directory, where an earlier entry's path made a directory"
            )
        if info.isreg():
            self._file(tar, info, rel, path)
        elif info.issym():
            self._symlink(info, name, rel, path)
        elif info.islnk():
            self._hardlink(info, rel, path)
        else:
            what = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
                    tarfile.FIFOTYPE: "a FIFO"}.get(info.type, f"of tar type {info.type!r}")  # fmt: skip
            raise _refuse(info, f"is {what} (only directories, files and links are allowed)")

    def _parents(self, info: tarfile.TarInfo, name: str) -> None:
        """Make the entry's parent directories; refuse to pass through anything but one."""
        parts = name.split("/")[:-1]
        current = self.staging
        for part in parts:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise _refuse(
                    info, f"would be written through the symbolic link {_rel(self, current)}"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(info, f"would be written inside the file {_rel(self, current)}")

    def _file(self, tar: tarfile.TarFile, info: tarfile.TarInfo, rel: str, path: Path) -> None:
        executable = bool(info.mode & 0o111)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o755 if executable else 0o644)
        digest = hashlib.sha256()
        written = 0
        source = tar.extractfile(info)
        assert source is not None  # a regular file always has data
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                digest.update(chunk)
                out.write(chunk)
        if written != info.size:
            raise _refuse(info, f"is cut short ({written} of {info.size} bytes)")
        self.members[rel] = Member("file", digest.hexdigest(), written, executable=executable)

    def _symlink(self, info: tarfile.TarInfo, name: str, rel: str, path: Path) -> None:
        """A link whose target climbs only at its start ('../../x/y'), and no higher than the
        top directory. Its own directory is a real one (nothing is written through a link),
        so the climb is what the kernel does too; the names after it only descend, into
        directories or into links that themselves stay inside: so does every link, in
        whatever order the archive makes them. ('x/../y' is refused: were x a link, '..'
        would leave from where x points, not from here.)"""
        target = info.linkname
        outside = f"is a symbolic link to {target!r}, outside the archive"
        if not target or target.startswith("/") or "\0" in target:
            raise _refuse(info, outside)
        parts = [p for p in target.split("/") if p not in ("", ".")]
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        if ".." in parts[ups:]:
            raise _refuse(info, f"is a symbolic link to {target!r}: '..' must come first in it")
        # The link's directories, the top one included: it may climb to the top, no higher.
        if ups > name.count("/") - 1:
            raise _refuse(info, outside)
        os.symlink(target, path)
        self.members[rel] = Member("symlink", target=target)

    def _hardlink(self, info: tarfile.TarInfo, rel: str, path: Path) -> None:
        target = _clean(info.linkname, info, what="its link target")
        top, _, target_rel = target.partition("/")
        member = self.members.get(target_rel) if top == self.top else None
        if member is None or member.kind != "file":
            raise _refuse(
                info,
                f"is a hard link to {info.linkname!r}, not a file this archive wrote before it",
            )
        os.link(self.staging / target, path, follow_symlinks=False)
        self.members[rel] = member


_LIMIT_HINT = (
    "the archive is larger than reproduce accepts, or forged; see `reproflake reproduce --help`"
)


def _clean(name: str, info: tarfile.TarInfo, what: str = "its path") -> str:
    """The entry's path, which must be relative, plain and normalised."""
    stripped = name[:-1] if name.endswith("/") and info.isdir() else name
    if not stripped or stripped.startswith("/") or "\0" in stripped:
        raise _refuse(info, f"has {what} absolute or empty")
    parts = stripped.split("/")
    if ".." in parts:
        raise _refuse(info, f"has {what} going up with '..'")
    if any(p in ("", ".") for p in parts):
        raise _refuse(info, f"has {what} not in plain form (an empty or '.' component)")
    return stripped


def _refuse(info: tarfile.TarInfo, why: str) -> ArchiveError:
    return ArchiveError(
        f"entry {info.name!r} {why}: refused, nothing extracted",
        hint="the archive is unsafe or damaged; get it again from its source "
        "(a release from `reproflake release` never holds such an entry)",
    )


def _rel(writer: _Writer, path: Path) -> str:
    return path.relative_to(writer.staging).as_posix()
