"""Read .deb files and hash single files the way Nix does, with the stdlib only.

A .deb is an ar archive holding ``debian-binary``, ``control.tar.*`` and
``data.tar.*``. Locking a static binary out of a package (e.g. busybox) needs
its bytes and its Nix NAR hash, so the lock can pin a fixed-output derivation
without running Nix.
"""

from __future__ import annotations

import bz2
import difflib
import gzip
import io
import lzma
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from reproflake.errors import LockError

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_MAX_LINK_HOPS = 40  # like the kernel's symlink limit: enough for real trees, stops loops

NIX_BASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"  # no e, o, u, t


@dataclass(frozen=True)
class DebFile:
    """A regular file taken out of a package's data.tar (links already followed)."""

    path: str  # normalised archive path, e.g. "bin/busybox"
    content: bytes
    executable: bool


def ar_members(data: bytes) -> dict[str, bytes]:
    """Members of an ar archive by name, in archive order."""
    if not data.startswith(_AR_MAGIC):
        raise LockError("not a Debian package: missing the '!<arch>' ar header")
    members: dict[str, bytes] = {}
    pos = len(_AR_MAGIC)
    while pos < len(data):
        header = data[pos : pos + _AR_HEADER]
        if len(header) < _AR_HEADER or header[58:60] != b"`\n":
            raise LockError(f"corrupt ar archive: bad member header at offset {pos}")
        raw_name = header[0:16].decode("ascii", errors="replace").rstrip(" ")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise LockError(f"corrupt ar archive: bad member size at offset {pos}") from None
        start = pos + _AR_HEADER
        body = data[start : start + size]
        if len(body) < size:
            raise LockError(f"truncated ar archive: member {raw_name!r} is cut short")
        if raw_name.startswith("#1/"):
            # BSD long name: the name is the first N bytes of the body.
            name_len = int(raw_name[3:])
            name = body[:name_len].decode("utf-8", errors="replace").rstrip("\0")
            body = body[name_len:]
        else:
            name = raw_name.rstrip("/")  # GNU ar terminates names with '/'
        members[name] = body
        pos = start + size + (size % 2)  # members are padded to an even offset
    return members


def data_tar(deb: bytes) -> tarfile.TarFile:
    """Open the package's data.tar (xz, gz, bz2, lzma or uncompressed); caller closes it."""
    members = ar_members(deb)
    names = [n for n in members if n.startswith("data.tar")]
    if not names:
        raise LockError(f"not a Debian package: no data.tar member (found {', '.join(members)})")
    name = names[0]
    data = members[name]
    if name.endswith(".zst"):
        raise LockError(
            f"this package's {name} is zstd-compressed, which reproflake cannot read",
            hint="use a package built with xz or gzip compression (Debian's default is xz)",
        )
    # Decompress up front rather than via tarfile's "r:xz" modes: extraction
    # needs random access (links), and one code path serves all formats.
    decompress: dict[str, Callable[[bytes], bytes]] = {
        "data.tar": lambda b: b,
        "data.tar.xz": lzma.decompress,
        "data.tar.lzma": lzma.decompress,  # legacy "lzma alone"; format is auto-detected
        "data.tar.gz": gzip.decompress,
        "data.tar.bz2": bz2.decompress,
    }
    if name not in decompress:
        raise LockError(f"unsupported data member {name!r} in Debian package")
    try:
        raw = decompress[name](data)
        return tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError, ValueError) as e:
        raise LockError(f"cannot read {name} of Debian package: {e}") from None


def _normalise(path: str) -> str:
    # "./bin/busybox", "/bin/busybox" and "bin/busybox" name the same entry.
    return posixpath.normpath("/" + path).lstrip("/")


def extract_entry(deb: bytes, member_path: str) -> DebFile:
    """The regular file at ``member_path`` in data.tar, following sym- and hardlinks."""
    with data_tar(deb) as tar:
        entries = {_normalise(m.name): m for m in tar.getmembers()}
        path = _normalise(member_path)
        for _ in range(_MAX_LINK_HOPS):
            info = entries.get(path)
            if info is None:
                close = difflib.get_close_matches(path, list(entries), n=3)
                raise LockError(
                    f"{member_path!r} is not in the package"
                    + (f"; similar entries: {', '.join(close)}" if close else ""),
                    hint="paths are as installed, e.g. './usr/bin/foo'",
                )
            if info.issym():
                target = info.linkname
                base = "" if target.startswith("/") else posixpath.dirname(path)
                path = _normalise(posixpath.join(base, target))
                continue
            if info.islnk():
                path = _normalise(info.linkname)  # hardlink targets are archive paths
                continue
            if not info.isfile():
                raise LockError(f"{member_path!r} in the package is not a regular file")
            handle = tar.extractfile(info)
            if handle is None:
                raise LockError(f"cannot read {member_path!r} from the package")
            with handle:
                content = handle.read()
            # Nix records only the owner-execute bit (S_IXUSR) in a NAR.
            return DebFile(path, content, bool(info.mode & 0o100))
        raise LockError(f"{member_path!r} in the package is a symlink loop")


def extract_file(deb: bytes, member_path: str) -> bytes:
    """The bytes of ``member_path`` (e.g. "./bin/busybox") in the package's data.tar."""
    return extract_entry(deb, member_path).content


def nix_base32(digest: bytes) -> str:
    """Nix's base-32 encoding (as in store paths and ``sha256:<base32>`` hashes).

    Nix emits the 5-bit groups starting from the most significant end of the
    little-endian bit string, so this is not RFC 4648 base32.
    """
    length = (len(digest) * 8 - 1) // 5 + 1
    out = []
    for n in range(length - 1, -1, -1):
        b = n * 5
        i, j = divmod(b, 8)
        c = digest[i] >> j
        if i + 1 < len(digest):
            c |= digest[i + 1] << (8 - j)
        out.append(NIX_BASE32_ALPHABET[c & 0x1F])
    return "".join(out)
