"""Writing files so that a crash never leaves one half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TypeVar

from reproflake.errors import UsageError

T = TypeVar("T")


# Temporary files of a project's own files (the lock, the generated flake) are made here,
# not beside their target: a process killed before its rename must not leave a copy of
# the lock where `git add -A` would pick it up. The directory ignores itself in git.
PROJECT_TMP = Path(".reproflake/cache/tmp")


GCROOTS = Path(".reproflake/cache/gcroots")  # its entries are links into the store


def linked_own_dir(root: Path) -> Path | None:
    """The first directory reproflake writes in that is a symbolic link, if any:
    ``results/``, ``.reproflake/`` and every directory under it (a garbage-collector root's
    link into the store aside). A cloned repository can commit ``.reproflake ->
    ~/somewhere``: everything reproflake generates and caches would then be written there,
    outside the project."""
    for rel in ("results", ".reproflake"):
        if os.path.islink(root / rel):
            return root / rel
    base = root / ".reproflake"
    skip = str(root / GCROOTS)
    for current, dirs, _files in os.walk(base):  # links to directories are listed, not entered
        if current == skip:
            dirs[:] = []
            continue
        for name in dirs:
            if os.path.islink(os.path.join(current, name)):
                return Path(current, name)
    return None


def refuse_linked_own_dir(root: Path) -> None:
    """Stop, naming the link, when :func:`linked_own_dir` finds one."""
    found = linked_own_dir(root)
    if found is not None:
        raise UsageError(
            f"{found} is a symbolic link (to {os.readlink(found)}); reproflake writes its "
            "generated files, caches and result links there and will not write through a "
            "link, which could lead outside the project",
            hint=f"remove the link (rm {found}) and run the command again: reproflake "
            "makes the directory itself",
        )


def project_tmp(root: Path) -> Path:
    """The project's directory for temporary files (made on first use, git-ignored)."""
    tmp = root / PROJECT_TMP
    if not tmp.is_dir():
        tmp.mkdir(parents=True, exist_ok=True)
        ignore = tmp.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# reproflake's local caches: never committed\n*\n")
    return tmp


# What write_atomic's temporary files are called: ".NAME.PID.RANDOM.tmp", RANDOM being the
# 8 characters tempfile.mkstemp draws (lowercase letters, digits, "_").
TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[a-z0-9_]{8}\.tmp\Z")


def sweep_temporaries(root: Path) -> None:
    """Remove temporary files a killed reproflake left: those whose process is gone.

    Each name carries its writer's process id (TEMPORARY); a file that only looks like one
    (a shorter random part, no process id) is the user's and stays."""
    places = [root, root / ".reproflake", root / PROJECT_TMP]
    for place in places:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        for name in names:
            found = TEMPORARY.match(name)
            if found is not None and not _alive(int(found["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(place / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomic(
    path: Path, content: str | bytes, *, mode: int = 0o644, tmp_dir: Path | None = None
) -> None:
    """Replace ``path`` with ``content`` in one rename (the temporary file in ``tmp_dir``,
    on the same file system, else beside ``path``)."""
    data = content.encode() if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=tmp_dir or path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
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


def write_if_changed(
    path: Path, content: str | bytes, *, mode: int = 0o644, tmp_dir: Path | None = None
) -> bool:
    """Write only when the bytes differ (keeps Nix's evaluation cache warm)."""
    data = content.encode() if isinstance(content, str) else content
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    write_atomic(path, data, mode=mode, tmp_dir=tmp_dir)
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


def sha256_file(path: Path, chunk: int = 4 << 20) -> hashlib._Hash:
    """A file's sha256, streamed (large data never sits in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h
