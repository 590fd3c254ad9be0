"""When a file's stat can be trusted to tell a later rewrite: git's "racily clean" rule,
kept once for the caches that remember files by their stat (the source digests, the
plan's records, the no-op stamp, the input hash cache).

A file rewritten within the same tick of its file system's clock as it was looked at may
keep its size and times: a stat taken then cannot tell the rewrite. So a cache trusts a
stat only for a file whose times are older than RACY_NS before it looked (:func:`recent`
against :meth:`Clock.since`).

File times come from the file system's clock: on a network file system, the server's. A
server running behind this machine stamps an edit made now with a time this machine calls
past, and the edit would be trusted (a later command answering "already built" when it
is not). So the reference is the earlier of the two clocks. The file system's is read as
git reads it from its index file's mtime: :func:`behind_ns` touches a small file in the
project's cache (``os.utime(path, None)``: on NFS the server sets the time) and reads its
mtime back. That is a write: the quiet paths, which must work in a read-only checkout,
read the clock only when they have something to keep. Where the clock file cannot be
touched (a read-only checkout, another user's file), this machine's clock is the only one
there is, and is used alone, as it always was.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from reproflake.fsutil import project_tmp

RACY_NS = 2_000_000_000
CLOCK = Path(".reproflake/cache/clock")
# A local file system stamps files from the kernel's coarse clock, updated once a tick
# (1-10 ms): that far behind time.time_ns() without running behind. Not counted, so a file
# system in step with this machine reads as in step (RACY_NS is the margin for ticks).
TICK_NS = 20_000_000


def behind_ns(root: Path) -> int:
    """How far the clock of ``root``'s file system runs behind this machine's; 0 when it
    does not (ahead, in step within a tick) or cannot be read (the project is read-only)."""
    machine = time.time_ns()  # before the touch: the file system's time comes after it
    try:
        fs = _touched(root)
    except OSError:
        return 0
    behind = machine - fs
    return behind if behind > TICK_NS else 0


def _touched(root: Path) -> int:
    """The file system's "now": the clock file's mtime once set to the current time."""
    path = root / CLOCK
    try:
        os.utime(path, None, follow_symlinks=False)
    except FileNotFoundError:
        project_tmp(root)  # .reproflake/cache, which ignores itself in git
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
        os.utime(path, None, follow_symlinks=False)
    return os.lstat(path).st_mtime_ns


class Clock:
    """A project's file system clock against this machine's, read when first needed and
    then kept for the command (clocks drift by far less than RACY_NS in one command)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._behind: int | None = None

    def since(self, at_ns: int | None = None) -> int:
        """The time from which a file's times may not tell a later rewrite, for a look at
        files that began at ``at_ns`` (this machine's time.time_ns(); now if None):
        RACY_NS before that moment on the earlier of this machine's clock and the file
        system's. The file system's may be read after the look: it is the difference
        between the two clocks that is applied to ``at_ns``."""
        at = time.time_ns() if at_ns is None else at_ns
        if self._behind is None:
            self._behind = behind_ns(self.root)
        return at - self._behind - RACY_NS


def recent(since: int, *times: int) -> bool:
    """Whether a file with these times (mtime, ctime) changed at or after ``since``: its
    stat may not tell a rewrite, so it is not trusted."""
    return any(t >= since for t in times)
