"""Reading a project's own files for `init`: inside the project, bounded, as UTF-8 text.

The files `init --from` reads (and the requirements files they include) come with a
cloned repository: someone else's words. So a file must lie inside the project and no
link may lead out of it (:mod:`reproflake._confine`'s rule); it must be a regular file
(a FIFO would block, a device would read without end) of bounded size.
"""

from __future__ import annotations

import os
from pathlib import Path

from reproflake import _confine
from reproflake.errors import UsageError

# Far more than any real requirements file, pyproject.toml or environment.yml.
MAX_BYTES = 1 << 20


def project_rel(root: Path, given: Path) -> str:
    """``given`` (absolute, or relative to the current directory) as a path relative to
    the project ``root``; refused when it lies outside."""
    base = os.path.abspath(root)
    full = os.path.abspath(given)
    if full != base and not full.startswith(base.rstrip("/") + "/"):
        inside = root / given
        hint = (
            f"a relative --from is taken from the current directory: did you mean --from {inside}?"
            if not given.is_absolute() and os.path.lexists(inside)
            else "init reads only the project's own files: copy the file into the project "
            "and name it there"
        )
        raise UsageError(
            f"--from {given}: the file is outside the project directory {root}", hint=hint
        )
    return os.path.relpath(full, base)


def display(root: Path, rel: str) -> str:
    """How messages and the spec's comments name a project file: relative to the
    project, so the spec does not depend on where init was started from."""
    del root
    return rel


def read_text(root: Path, rel: str, where: str) -> str:
    """The text of the project file ``rel``; ``where`` starts every message about it."""
    path = _confine.local_path(root, rel, where)
    st = _confine.regular_file(path, where)
    name = display(root, rel)
    if st.st_size > MAX_BYTES:
        raise UsageError(
            f"{name}: {st.st_size} bytes, more than the {MAX_BYTES} reproflake reads from "
            "such a file",
            hint="is this the right file? requirements and environment files are small",
        )
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:  # it grew after stat
        raise UsageError(f"{name}: larger than {MAX_BYTES} bytes", hint="is this the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{name}:{line}: not UTF-8 text (byte {exc.start})",
            hint="save the file as UTF-8",
        ) from None
