"""The no-op build, answered without the full path when nothing that feeds it has changed.

After a successful build, a stamp records everything its result depends on:
the spec's and the lock's bytes, what each source glob matched, the stat of
every source, input and generated file (and the sha256 of each file up to
DIGEST_LIMIT), the reproflake library, the derivations built and their outputs.

- All of it unchanged and the outputs still in the store: Nix would build
  nothing, so we need not ask it.
- Only times changed (a `touch`, a `git checkout` of the same bytes): every such
  file still has its size, mode and sha256, so the flake evaluates to the same
  derivations. Nix is asked to realise exactly those (store paths, no evaluation)
  and must answer with the same outputs; then the stamp takes the new times.
- Anything else takes the full path, where the flake is regenerated and Nix decides.

A file changed within RACY_NS of the snapshot (or of a confirmation's new times) may
change again within its file system clock's tick and keep its stat: its times are kept
as RACY, which no stat equals, so the next build compares its bytes (the second case) or,
for a file without a digest, takes the full path. (Git's index treats such "racily
clean" entries the same way.) The window is measured on the earlier of this machine's
clock and the project's file system's (fsclock.py), read only when a stamp is written:
the quiet answer writes nothing.

Deliberately light: no spec parsing, no git, and Nix only in the second case.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reproflake import __version__
from reproflake._globs import match_files
from reproflake._paths import PACKAGE, data_dir
from reproflake.fsclock import Clock, recent
from reproflake.fsutil import linked_own_dir, write_atomic

STAMP = Path(".reproflake/cache/stamp.json")
SPEC = "reproflake.toml"
GENERATED = ("flake.nix", "flake.lock", ".reproflake/build.json", ".reproflake/seed/busybox")
# Files up to this size are also recorded by content, so a new time alone does not take
# the full path; larger ones (data) are compared by stat only, as hashing costs time.
DIGEST_LIMIT = 1 << 20
SIZE, MTIME, CTIME, INODE, DEVICE, MODE, LINK = range(7)
RACY = -1  # in place of a recent file's times: see the module's docstring


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
    # rewriting a file with the same size; only the kernel sets ctime. The target's stat,
    # and whether the path itself is a link: Nix copies a source link as a link, so a file
    # turned into a link to the same bytes is another derivation.
    link = int(os.path.islink(root / rel))
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode, link]


def _kept(rel: str, st: list[int] | None, since: int) -> list[int] | None:
    """A stat as the stamp keeps it: with its times as RACY if it changed at or after
    ``since``. Not the generated files: reproflake itself writes them (whole, by rename)
    just before the snapshot, and nothing else is meant to."""
    if rel in GENERATED:
        return st
    if st is not None and recent(since, st[MTIME], st[CTIME]):
        return [*st[:MTIME], RACY, RACY, *st[INODE:]]
    return st


def _file_digest(root: Path, rel: str, st: list[int] | None) -> str | None:
    """What a path holds, as a digest: the sha256 of a regular file no larger than
    DIGEST_LIMIT, or of a directory's sorted entry names (the entries are watched on their
    own); None for anything else."""
    import stat

    if st is None or (stat.S_ISREG(st[MODE]) and st[SIZE] > DIGEST_LIMIT):
        return None
    if stat.S_ISREG(st[MODE]):
        return _digest(root / rel)
    if stat.S_ISDIR(st[MODE]):
        try:
            names = sorted(os.listdir(root / rel))
        except OSError:
            return None
        return "entries " + hashlib.sha256("\0".join(names).encode()).hexdigest()
    return None


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
    since = Clock(root).since()
    known = globs or {}
    globs = {
        p: list(known[p]) if p in known else match_files(root, p) for p in sorted(set(patterns))
    }
    files = {f for rel in [*paths, *GENERATED] for f in _walk(root, rel)}
    files.update(m for matches in globs.values() for m in matches)
    stats = {f: _stat(root, f) for f in sorted(files)}
    digests = {f: _file_digest(root, f, st) for f, st in stats.items()}
    return {
        "spec": _digest(root / "reproflake.toml"),
        "lock": _digest(root / "reproflake.lock"),
        "globs": globs,
        "files": {f: _kept(f, st, since) for f, st in stats.items()},
        "digests": {f: d for f, d in digests.items() if d is not None},
        SEEN: stats,
    }


SEEN = "seen"  # the stats as the snapshot found them: only until it is recorded (settled)


def settled(root: Path, snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as it is recorded, once the build (or export) that took it is done: a
    file whose stat changed meanwhile keeps no digest. Its bytes may have been read by
    Nix after the change, so the snapshot's digest may not describe them, and putting the
    file back would otherwise look like "only its times changed"; without a digest, the
    next command takes the full path."""
    seen = snap.get(SEEN, {})
    changed = {f for f, st in seen.items() if _stat(root, f) != st}
    kept = {k: v for k, v in snap.items() if k != SEEN}
    kept["digests"] = {f: d for f, d in snap["digests"].items() if f not in changed}
    return kept


def record(
    root: Path,
    request: Sequence[str],
    before: dict[str, Any],
    order: Sequence[str],
    outputs: dict[str, str],
    drvs: dict[str, str],
) -> None:
    entry = {**settled(root, before), "order": list(order), "outputs": outputs, "drvs": drvs}
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
    """Whether a :func:`snapshot` taken earlier still describes the project: every file's
    stat as recorded, or, for a file kept without its times (RACY), its bytes."""
    if snap["spec"] != _digest(root / SPEC) or snap["lock"] != _digest(root / "reproflake.lock"):
        return False
    if _globs(root, snap["globs"]) != snap["globs"]:
        return False
    digests = snap.get("digests", {})
    for rel, recorded in snap["files"].items():
        now = _stat(root, rel)
        if now == recorded:
            continue
        if recorded is None or recorded[MTIME] != RACY:
            return False
        if not _same_bytes(root, rel, recorded, now, digests.get(rel)):
            return False
    return True


def _same_bytes(
    root: Path, rel: str, recorded: list[int] | None, now: list[int] | None, digest: str | None
) -> bool:
    """The same size, mode and digest as recorded (a file too large to have been digested
    never is): what a path with new times, or kept without them, must show."""
    return (
        now is not None
        and recorded is not None
        and digest is not None
        and now[SIZE] == recorded[SIZE]
        and now[MODE] == recorded[MODE]
        and now[LINK:] == recorded[LINK:]
        and _file_digest(root, rel, now) == digest
    )


def tool() -> str:
    """reproflake's own identity (version and code): a stamp from another one is void."""
    return _tool()


def check(root: Path, request: Sequence[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The last build of ``request`` if it still holds, and the files whose times alone
    changed since (Nix must then confirm it); (None, []) if anything else changed."""
    entry = _load(root)["requests"].get(_key(request))
    if not entry:
        return None, []
    # `pin_profile = true` makes the derivation depend on this machine's GPU, which no
    # file here records: such a project always takes the full path (which probes it).
    if re.search(r"^\s*[^#\n]*\bpin_profile\s*=\s*true", _spec_text(root), re.M):
        return None, []
    if entry["spec"] != _digest(root / "reproflake.toml") or entry["lock"] != _digest(
        root / "reproflake.lock"
    ):
        return None, []
    if _globs(root, entry["globs"]) != entry["globs"]:
        return None, []
    touched = []
    for rel, recorded in entry["files"].items():
        now = _stat(root, rel)
        if now == recorded:
            continue
        if not _same_bytes(root, rel, recorded, now, entry.get("digests", {}).get(rel)):
            return None, []
        touched.append(rel)
    for step, path in entry["outputs"].items():
        link = root / "results" / step
        if not os.path.exists(path) or not link.is_symlink() or os.readlink(link) != path:
            return None, []
    if touched and set(entry.get("drvs", {})) != set(entry["outputs"]):
        return None, []
    return dict(entry), touched


def _spec_text(root: Path) -> str:
    try:
        return (root / "reproflake.toml").read_text(errors="replace")
    except OSError:
        return ""


def _confirm(root: Path, entry: dict[str, Any]) -> bool:
    """Nix realises the recorded derivations (by store path: nothing to evaluate) and
    gives the recorded outputs."""
    from reproflake import _proc, executor
    from reproflake.errors import ReproflakeError

    drvs = entry["drvs"]
    argv = ["nix", *executor.nix_options(), "build", *sorted(set(drvs.values())),
            "--no-link", "--json"]  # fmt: skip
    try:
        proc = _proc.run(argv, cwd=root, check=False)
        built = {e["drvPath"]: e["outputs"]["out"] for e in json.loads(proc.stdout or "[]")}
    except (ReproflakeError, ValueError, KeyError, TypeError):
        return False
    return proc.returncode == 0 and all(
        built.get(drv) == entry["outputs"][step] for step, drv in drvs.items()
    )


def answer(start: Path, steps: Sequence[str], out: Callable[[str], None]) -> bool:
    """Answer a build that has nothing to do, as `build` would; False if it may have work."""
    root = next(
        (d for d in (start.resolve(), *start.resolve().parents) if (d / SPEC).is_file()), None
    )
    if root is None or linked_own_dir(root) is not None:
        return False  # the full path explains the problem
    started = time.time_ns()  # before the bytes are compared
    entry, touched = check(root, steps)
    if entry is None:
        return False
    if touched:
        if not _confirm(root, entry):
            return False
        # The same bytes at new times: the stamp takes the times, so the next build is quiet.
        # (The file system's clock is read only now that the stamp is written again.)
        since = Clock(root).since(started)
        entry["files"] = {f: _kept(f, _stat(root, f), since) for f in entry["files"]}
        stamp = _load(root)
        stamp["requests"][_key(steps)] = entry
        with contextlib.suppress(OSError):  # a read-only project: confirmed again next time
            write_atomic(root / STAMP, json.dumps(stamp, sort_keys=True) + "\n")
    involved = entry["order"]  # the requested steps and those they need, as the build counted
    out(f"summary: 0 built, {len(involved)} already built, 0 failed")
    for step in involved:
        out(f"  results/{step} -> {entry['outputs'][step]}")
    return True
