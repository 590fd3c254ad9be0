"""The no-op build, answered without Nix when nothing that feeds it has changed.

After a successful build, a stamp records everything its result depends on:
the spec's and the lock's bytes, what each source glob matched, the stat of
every source, input and generated file, the reproflake library, and the
outputs. If all of it is unchanged and the outputs are still in the store,
Nix would build nothing, so we need not ask it. Anything else takes the full
path, where Nix decides. Deliberately light: no spec parsing, no Nix, no git.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reproflake import __version__
from reproflake._globs import match_files
from reproflake._paths import PACKAGE, data_dir
from reproflake.fsutil import write_atomic

STAMP = Path(".reproflake/cache/stamp.json")
SPEC = "reproflake.toml"
GENERATED = ("flake.nix", "flake.lock", ".reproflake/build.json", ".reproflake/seed/busybox")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _stat(root: Path, rel: str) -> list[int] | None:
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    # As git's index does: ctime and the device too. A tool can restore an mtime after
    # rewriting a file with the same size; only the kernel sets ctime.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode]


def _walk(root: Path, rel: str) -> Iterable[str]:
    """A path and, for a directory, everything under it (directories too: new files show)."""
    yield rel
    full = root / rel
    if full.is_dir():  # a linked input directory is walked too: its data is the input
        for current, dirs, files in os.walk(full):
            dirs.sort()
            base = Path(current).relative_to(root).as_posix()
            for name in sorted(dirs) + sorted(files):
                yield f"{base}/{name}"


def _tool() -> str:
    """reproflake itself: its version and the stat of its code and Nix library.

    A different reproflake may generate a different flake, so its stamps do not carry over.
    """
    rows = [__version__]
    for base in (PACKAGE, data_dir("nix")):
        for current, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                st = os.stat(os.path.join(current, name))
                rows.append(f"{os.path.join(current, name)} {st.st_size} {st.st_mtime_ns}")
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _key(request: Sequence[str]) -> str:
    return " ".join(request) or "*"


def _globs(root: Path, patterns: Iterable[str]) -> dict[str, list[str]]:
    return {p: match_files(root, p) for p in sorted(set(patterns))}


def snapshot(
    root: Path,
    patterns: Iterable[str],
    paths: Iterable[str],
    globs: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Everything a build reads, taken *before* Nix reads it: an edit made while the
    build runs then differs from the stamp, and the next build asks Nix again.
    ``globs``: what the command already matched (each pattern is walked once)."""
    known = globs or {}
    globs = {
        p: list(known[p]) if p in known else match_files(root, p) for p in sorted(set(patterns))
    }
    files = {f for rel in [*paths, *GENERATED] for f in _walk(root, rel)}
    files.update(m for matches in globs.values() for m in matches)
    return {
        "spec": _digest(root / "reproflake.toml"),
        "lock": _digest(root / "reproflake.lock"),
        "globs": globs,
        "files": {f: _stat(root, f) for f in sorted(files)},
    }


def record(
    root: Path,
    request: Sequence[str],
    before: dict[str, Any],
    order: Sequence[str],
    outputs: dict[str, str],
) -> None:
    entry = {**before, "order": list(order), "outputs": outputs}
    stamp = _load(root)
    stamp["requests"][_key(request)] = entry
    write_atomic(root / STAMP, json.dumps(stamp, sort_keys=True) + "\n")


def _load(root: Path) -> dict[str, Any]:
    tool = _tool()
    try:
        stamp = json.loads((root / STAMP).read_text())
        if stamp.get("tool") == tool and isinstance(stamp.get("requests"), dict):
            return dict(stamp)
    except (OSError, ValueError):
        pass
    return {"tool": tool, "requests": {}}


def holds(root: Path, snap: dict[str, Any]) -> bool:
    """Whether a :func:`snapshot` taken earlier still describes the project."""
    if snap["spec"] != _digest(root / SPEC) or snap["lock"] != _digest(root / "reproflake.lock"):
        return False
    if _globs(root, snap["globs"]) != snap["globs"]:
        return False
    return all(_stat(root, rel) == st for rel, st in snap["files"].items())


def tool() -> str:
    """reproflake's own identity (version and code): a stamp from another one is void."""
    return _tool()


def check(root: Path, request: Sequence[str]) -> dict[str, Any] | None:
    """The last build of ``request`` if it still holds, else None."""
    entry = _load(root)["requests"].get(_key(request))
    if not entry or not holds(root, entry):
        return None
    for step, path in entry["outputs"].items():
        link = root / "results" / step
        if not os.path.exists(path) or not link.is_symlink() or os.readlink(link) != path:
            return None
    return dict(entry)


def answer(start: Path, steps: Sequence[str], out: Callable[[str], None]) -> bool:
    """Answer a build that has nothing to do, as `build` would; False if it may have work."""
    root = next(
        (d for d in (start.resolve(), *start.resolve().parents) if (d / SPEC).is_file()), None
    )
    if root is None:
        return False  # the full path explains the problem
    entry = check(root, steps)
    if entry is None:
        return False
    involved = entry["order"]  # the requested steps and those they need, as the build counted
    out(f"summary: 0 built, {len(involved)} already built, 0 failed")
    for step in involved:
        out(f"  results/{step} -> {entry['outputs'][step]}")
    return True
