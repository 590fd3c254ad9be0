"""The sha256 of a project's source files, remembered by their stat as git's index does.

`plan` compares every recorded step's sources with what they were built from: in a
project of 10,000 steps that is 10,000 files opened, read and hashed on every plan. A
file whose size, mtime, ctime, inode and device are all unchanged has the same bytes
(only the kernel sets ctime, so a tool that restores an mtime after a rewrite still
shows), and its remembered digest is used instead.

A digest is remembered only when the file's times are older than RACY_NS at the moment
it is hashed, on the earlier of this machine's clock and the project's file system's
(fsclock.py): a file written in the same instant as it is hashed could change again
without its times changing (git's "racily clean" entries). The cache lives in the
user's cache directory, one file per project path, never in the project: a copy of
someone else's project brings no digests with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from pathlib import Path

from reproflake._paths import user_cache_dir
from reproflake.fsclock import Clock, recent
from reproflake.fsutil import read_cache, write_atomic
from reproflake.verdicts import source_component

VERSION = 1

# rel → (size, mtime_ns, ctime_ns, inode, device, sha256 hex)
Entry = tuple[int, int, int, int, int, str]


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class SourceDigests:
    """Callable as ``digests(rel)``: the source file's component, its sha256 hex and
    whether it is executable (verdicts.source_component); :meth:`save` keeps what was
    learned."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        key = hashlib.sha256(f"{VERSION}\0{Path(root).resolve()}".encode()).hexdigest()
        self.file = user_cache_dir() / "digests" / f"{key[:32]}.pickle"
        loaded = read_cache(self.file, dict)
        self.entries: dict[str, Entry] = loaded if loaded is not None else {}
        self.dirty = False
        self.clock = Clock(Path(root))  # read at the first file hashed, if any

    def __call__(self, rel: str) -> str:
        full = os.path.join(self.root, rel)
        st = os.stat(full)
        entry = self.entries.get(rel)
        if entry is not None and entry[:5] == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_dev,
        ):
            return source_component(entry[5], st.st_mode)
        digest = sha256_of(full)
        if not recent(self.clock.since(), st.st_mtime_ns, st.st_ctime_ns):
            self.entries[rel] = (
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_ino,
                st.st_dev,
                digest,
            )
            self.dirty = True
        elif rel in self.entries:
            del self.entries[rel]
            self.dirty = True
        return source_component(digest, st.st_mode)

    def save(self) -> None:
        """Write the cache if it learned something (a read-only home only costs speed)."""
        if not self.dirty:
            return
        with contextlib.suppress(OSError):
            write_atomic(self.file, pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL))
        self.dirty = False
