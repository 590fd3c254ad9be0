"""Writing files so that a crash never leaves one half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from reproflake.errors import UsageError

T = TypeVar("T")


def write_atomic(path: Path, content: str | bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``content`` in one rename."""
    data = content.encode() if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_if_changed(path: Path, content: str | bytes, *, mode: int = 0o644) -> bool:
    """Write only when the bytes differ (keeps Nix's evaluation cache warm)."""
    data = content.encode() if isinstance(content, str) else content
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    write_atomic(path, data, mode=mode)
    return True


def symlink_atomic(link: Path, target: str) -> None:
    """Point ``link`` at ``target``, replacing whatever was there in one rename."""
    if link.exists() and not link.is_symlink():
        raise UsageError(
            f"{link} exists and is not a link reproflake made",
            hint="move it out of the way; reproflake links each step's result there",
        )
    if link.is_symlink():
        if os.readlink(link) == target:
            return  # already right: a rename costs milliseconds on some file systems
    else:
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.symlink(target, link)  # a new link appears whole: no rename needed
            return
    tmp = link.parent / f".{link.name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def read_cache(path: Path, kind: type[T]) -> T | None:
    """A pickled ``kind`` that reproflake itself wrote to the user's cache, or None.

    Only for files under the user's own cache directory: a pickle runs code when read,
    so one from a project directory (someone else's) is never loaded.
    """
    import pickle

    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except (
        OSError,
        pickle.PickleError,
        EOFError,
        AttributeError,
        ImportError,
        TypeError,
        ValueError,
    ):
        return None
    return value if isinstance(value, kind) else None
