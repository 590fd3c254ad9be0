"""Glob patterns for sources and inputs, with one meaning everywhere.

The same pattern is matched against the working tree (build, plan, the no-op
stamp) and against a git revision (diff), so it is compiled to one regular
expression instead of trusting two libraries to agree. ``*`` and ``?`` stay
within a path component, ``**`` spans any number of them (none included), a
wildcard does not match a leading dot, and results/, .reproflake/ and .git/
are never matched. Walking the tree never follows symbolic links to
directories, so a step's own outputs (linked under results/) are never inputs.
A pattern matches regular files (or links to them); a FIFO, socket or device it
would match is refused before anything opens it (reading a FIFO blocks forever).
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from reproflake.errors import UsageError

EXCLUDED = ("results", ".reproflake", ".git")
WILDCARDS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not WILDCARDS.isdisjoint(pattern)  # one pass in C: called per source, per plan


def _component(part: str) -> str:
    out = []
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = part[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    regex = "".join(out)
    # Like the shell: a wildcard at the start does not match a hidden name.
    return f"(?!\\.){regex}" if part[:1] in WILDCARDS else regex


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts = pattern.split("/")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += "(?:(?!\\.)[^/]+/)*" if not last else "(?:(?!\\.)[^/]+/)*(?!\\.)[^/]+"
        else:
            regex += _component(part) + ("" if last else "/")
    return re.compile(regex + r"\Z")


def _base(pattern: str) -> str:
    """The literal directory a pattern starts in: where walking must begin."""
    literal = []
    for part in pattern.split("/")[:-1]:
        if is_glob(part):
            break
        literal.append(part)
    return "/".join(literal)


def _listings(root: Path, base: str) -> Iterable[tuple[str, list[str]]]:
    """Each directory walked from ``base`` ("" for the root, else "dir/") and its files."""
    start = root / base if base else root
    if not start.is_dir() or start.is_symlink():
        return
    for current, dirs, files in os.walk(start):  # followlinks=False: links are not descended
        rel_dir = os.path.relpath(current, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if not rel_dir:
            dirs[:] = [d for d in dirs if d not in EXCLUDED]
        dirs.sort()
        yield rel_dir, files


def _walk(root: Path, base: str) -> Iterable[str]:
    for rel_dir, files in _listings(root, base):
        for name in sorted(files):
            yield rel_dir + name


def searched_dirs(root: Path, pattern: str) -> list[str]:
    """The directories matching a glob lists: where it starts (even if that is missing or
    no directory) and every directory under it that the walk enters. A file created or
    removed where the glob looks changes the times of one of them (the plan's record)."""
    if not is_glob(pattern):
        return []
    base = _base(pattern)
    found = [rel.rstrip("/") or "." for rel, _files in _listings(root, base)]
    return found or [base or "."]


def _is_file(root: Path, rel: str) -> bool:
    """A regular file or a link to one; a dangling link is no file; anything else is refused."""
    try:
        mode = os.stat(os.path.join(root, rel)).st_mode  # a string: called once per source
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return True
    if stat.S_ISDIR(mode):
        return False
    from reproflake._confine import describe_mode

    raise UsageError(
        f"{root / rel} is {describe_mode(mode)}, not a regular file; reproflake will not read it",
        hint="move it out of the project, or narrow the pattern that matches it",
    )


def match_files(root: Path, pattern: str) -> list[str]:
    """The project files ``pattern`` matches (regular files, or links to them), sorted."""
    if not is_glob(pattern):
        return [pattern] if not _excluded(pattern) and _is_file(root, pattern) else []
    regex = compile_pattern(pattern)
    return sorted(
        f
        for f in _walk(root, _base(pattern))
        if regex.match(f) and not _excluded(f) and _is_file(root, f)
    )


def match_names(names: Iterable[str], pattern: str) -> list[str]:
    """The same matching over a list of paths (the files of a git revision)."""
    if not is_glob(pattern):
        return [pattern] if pattern in set(names) and not _excluded(pattern) else []
    regex = compile_pattern(pattern)
    return sorted(n for n in names if regex.match(n) and not _excluded(n))


def _excluded(rel: str) -> bool:
    return rel.split("/", 1)[0] in EXCLUDED
