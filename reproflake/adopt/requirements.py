"""pip requirements files: pins, extras, markers, comments, ``-r`` includes.

What reproflake cannot take over is skipped with a note, never silently: editable
installs, URLs and local paths (a lock pins wheels from a package index), index and
other pip options (the index comes from ``[python]`` in the spec or pip's own
configuration), constraints files, hashes (the lock pins each wheel's sha256 itself).
A line that is none of these and no requirement either is an error naming file:line.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from reproflake.adopt import _read
from reproflake.adopt.model import Imported, Item
from reproflake.errors import UsageError
from reproflake.spec import MAX_REQUIREMENT_BYTES, REQUIREMENT_RE

# Includes deeper than this are a loop or a mistake.
MAX_DEPTH = 16

# Options after a requirement on its line (--hash=..., --config-settings ...). The
# look-behind makes a long run of blanks cost linear time, not quadratic.
_LINE_OPTION = re.compile(r"(?<!\s)\s+--?[A-Za-z]")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<file>\S.*)$")
_CONSTRAINT = re.compile(r"^(?:-c|--constraint)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<file>\S.*)$")
_EDITABLE = re.compile(r"^(?:-e|--editable)(?:\s*=\s*|\s+|(?=[^\s-]))")
_ARCHIVE = re.compile(r"\.(whl|zip|tar\.gz|tar\.bz2|tar\.xz|tgz)$", re.IGNORECASE)

INDEX_NOTE = (
    "reproflake takes the package index from [python] in reproflake.toml or from pip's "
    "configuration"
)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: continuations joined, comments
    stripped, blank lines dropped (pip's own reading)."""
    found: list[tuple[int, str]] = []
    start = 0
    parts: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not parts:
            start = number
        if raw.endswith("\\") and _uncommented(raw) == raw:
            parts.append(raw[:-1])
            continue
        parts.append(raw)
        line = _uncommented(" ".join(parts)).strip()
        parts = []
        if line:
            found.append((start, line))
    if parts:  # the file ends in a continuation
        line = _uncommented(" ".join(parts)).strip()
        if line:
            found.append((start, line))
    return found


def _uncommented(line: str) -> str:
    """``line`` without its comment: pip's comment starts the line or follows a blank."""
    at = line.find("#")
    while at > 0 and not line[at - 1].isspace():
        at = line.find("#", at + 1)
    return line if at < 0 else line[:at]


def read(root: Path, rel: str, into: Imported, *, depth: int = 0, where: str = "") -> None:
    """Read the project file ``rel`` (and what it includes) into ``into``; ``where``
    names what asked for it in messages (the ``-r`` line), else the file itself."""
    text = _read.read_text(root, rel, where or _read.display(root, rel))
    into.read.add(os.path.realpath(root / rel))
    take_lines(root, rel, logical_lines(text), into, depth=depth)


def take_lines(
    root: Path, rel: str, lines: list[tuple[int, str]], into: Imported, *, depth: int = 0
) -> None:
    """Requirement lines of the project file ``rel`` (a requirements file, or the pip
    list of an environment file): each taken, skipped with a note, or refused."""
    hashed = 0
    for number, line in lines:
        where = f"{_read.display(root, rel)}:{number}"
        if m := _INCLUDE.match(line):
            _include(root, rel, m.group("file").strip(), where, into, depth)
        elif m := _CONSTRAINT.match(line):
            into.notes.append(
                f"{where}: skipped {_show(line)}: constraints files are not read (a constraint "
                "only narrows versions); write the pins you want as requirements"
            )
        elif _EDITABLE.match(line):
            into.notes.append(
                f"{where}: skipped {_show(line)}: an editable install of local sources; run "
                "the project from its sources in a step instead (e.g. PYTHONPATH=src)"
            )
        elif line.startswith("-"):
            option = line.split()[0].split("=")[0]
            index = "index" in option or option in ("-i", "-f", "--find-links")
            why = INDEX_NOTE if index else "pip options are not taken over"
            into.notes.append(f"{where}: skipped the option {_show(option)}: {why}")
        else:
            requirement = _LINE_OPTION.split(line, maxsplit=1)[0].strip()
            rest = line[len(requirement) :].strip()
            requirement = " ".join(requirement.split())  # continuation lines leave blanks
            if rest:
                if all(o.startswith("--hash") for o in rest.split()):
                    hashed += 1
                else:
                    into.notes.append(
                        f"{where}: dropped the options {_show(rest)} of {_show(requirement)}"
                    )
            take_requirement(requirement, where, into)
    if hashed:
        into.notes.append(
            f"{_read.display(root, rel)}: dropped --hash on {hashed} line(s): the lock pins "
            "every wheel by its own sha256"
        )


def take_requirement(text: str, where: str, into: Imported) -> None:
    """One PEP 508 requirement: taken, skipped with a note (URL, local path), or refused."""
    if "://" in text or re.match(r"^[^\s;]+\s*@", text) or text.startswith(("git+", "hg+")):
        into.notes.append(
            f"{where}: skipped {_show(text)}: a direct URL reference; a lock pins wheels from "
            "the package index (publish it there, or add the file as an input)"
        )
        return
    if text.startswith((".", "/", "~")) or _ARCHIVE.search(text.split(";")[0].strip()):
        into.notes.append(
            f"{where}: skipped {_show(text)}: a local path; a lock pins wheels from the "
            "package index (run local sources from a step instead)"
        )
        return
    if len(text.encode()) > MAX_REQUIREMENT_BYTES:
        raise UsageError(
            f"{where}: a requirement of {len(text.encode())} bytes, more than "
            f"{MAX_REQUIREMENT_BYTES}",
            hint="shorten it, or remove the line",
        )
    if not REQUIREMENT_RE.fullmatch(text):
        raise UsageError(
            f"{where}: {_show(text)} is not a requirement reproflake can read",
            hint="write one PEP 508 requirement per line, e.g. numpy==2.2.6 or "
            "'scipy>=1.11; python_version >= \"3.11\"', or remove the line",
        )
    into.python.append(Item(text, where))


def _include(root: Path, rel: str, target: str, where: str, into: Imported, depth: int) -> None:
    if "://" in target:
        into.notes.append(
            f"{where}: skipped the include {_show(target)}: init reads only the project's files"
        )
        return
    inc = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if os.path.isabs(inc) or inc == ".." or inc.startswith("../"):
        raise UsageError(
            f"{where}: -r {target}: the file is outside the project",
            hint="init reads only the project's own files: copy it into the project, or "
            "remove the line",
        )
    if depth >= MAX_DEPTH:
        raise UsageError(
            f"{where}: -r {target}: includes nested more than {MAX_DEPTH} deep",
            hint="requirements files include each other in a loop?",
        )
    # Read once, as a loop or a shared base file would repeat it; by the file it is, not by
    # its spelling: links to the project's own directories spell one file many ways.
    if os.path.realpath(root / inc) in into.read:
        return
    read(root, inc, into, depth=depth + 1, where=f"{where}: -r {target}")


def _show(text: str, limit: int = 80) -> str:
    """Text from the file, quoted on one line (JSON escapes controls), shortened."""
    shown = json.dumps(text[:limit])
    return shown + ("..." if len(text) > limit else "")
