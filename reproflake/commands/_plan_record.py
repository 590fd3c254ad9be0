"""`plan` answered from its last answer when nothing the plan reads has changed.

After a plan, its record keeps the answer (every line it printed, in order) with what
that answer was computed from, and the next `plan`, `status` or `build --dry-run` with
the same arguments prints it again if all of this still holds:

- reproflake itself (version, the stat of its code and Nix library: the no-op stamp's
  identity), the interpreter, the libraries whose behaviour shows in a plan (networkx,
  pygit2, click: the stat of each one's module), the project's resolved path, the
  environment variables that can change what is read (REPROFLAKE_*, NIX_*, GIT_*, XDG_*,
  HOME, PATH);
- the spec's and the lock's sha256;
- the stat (``lstat``, and ``stat`` of a link's target) of every file and directory the
  plan reads: each file a source pattern or glob input matches, every directory a glob
  walks (a file created where a glob looks changes its directory's times), every path
  under a local input, every directory above those files up to the project (and to the
  git work tree) with its ``.gitignore``, the step records (state.json), the generated
  build.json, git's index, configuration (and the files it includes) and exclude files
  (where git is found, what it tracks and ignores), reproflake's and Nix's configuration
  files. A path that was
  missing must still be missing;
- every store path the plan asked Nix about: still present if Nix said valid, still
  absent if it said not. A path leaves the store only through Nix's garbage collector
  (or `nix-store --delete`), which removes it from Nix's database and then from disk
  while holding Nix's GC lock; the check holds a shared lock on it (when it may open it),
  so no collection runs meanwhile. What the check cannot see is a collection killed
  between the two: such a path stays on disk, invalid, until the next collection; the
  no-op build accepts the same (docs/notes.md).

A plan that asked Nix to evaluate the flake (steps without a record, a few hundred at
most) or consulted the hardware gate (a step to build that declares hardware, a GPU
profile pinned) is not recorded: those answers depend on the store's database and this
machine's devices, which no file here describes.

Stat as git's index compares it: size, mtime, ctime, inode, device and mode; only the
kernel sets ctime, so a tool that restores an mtime after rewriting a file still shows.
A record is written only when every path was quiet for RACY_NS before the plan started:
a file changed during the plan (or in the same tick of the file system's clock) has
times that fall in that window, and its record would describe bytes the plan never read.
The window ends when the plan started on the earlier of this machine's clock and the
project's file system's (fsclock.py: a network file system's server may run behind), read
only when a plan is computed, never when one is answered from its record.

The check is light by design: no spec parsing, no git, no Nix, a few imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproflake import fsclock
from reproflake._paths import SPEC_FILE
from reproflake.commands import _noop
from reproflake.fsutil import linked_own_dir, write_atomic

if TYPE_CHECKING:  # the writer's types; the check imports none of them
    from reproflake.commands._plan import Consulted
    from reproflake.commands._project import Project

RECORD = Path(".reproflake/cache/plan.json")
VERSION = 1
LOCK_FILE = "reproflake.lock"
STATE = ".reproflake/cache/state.json"
BUILD_DATA = ".reproflake/build.json"
ENV_PREFIXES = ("REPROFLAKE_", "NIX_", "GIT_", "XDG_")
ENV_NAMES = ("HOME", "PATH")
MAX_ANSWERS = 8  # forms and step selections kept for one state of the project

Event = tuple[str, str]  # ("out" | "log", text)
Stat = list[int] | None


def form(*, as_json: bool, short: bool) -> str:
    """How the plan is printed: "plan", "status" or "json" (verdicts.render)."""
    return "status" if short else "json" if as_json else "plan"


def request(steps: Sequence[str], *, as_json: bool, short: bool) -> str:
    """The command line's part in the answer: the form asked for and the steps named."""
    return "\0".join([form(as_json=as_json, short=short), *steps])


def form_of(req: str) -> str:
    """The form a :func:`request` asked for."""
    return req.split("\0", 1)[0]


def env() -> dict[str, str]:
    return {
        k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) or k in ENV_NAMES
    }


# A Stat's fields (a link's target's follow, from TARGET on).
SIZE, MTIME, CTIME, INODE, DEVICE, MODE, TARGET = range(7)


def stat_of(path: str) -> Stat:
    """lstat as git's index keeps it; a link also carries its target's (or -1: dangling)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    found = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode]
    if stat.S_ISLNK(st.st_mode):
        try:
            t = os.stat(path)
            found += [t.st_size, t.st_mtime_ns, t.st_ctime_ns, t.st_ino, t.st_dev, t.st_mode]
        except OSError:
            found.append(-1)
    return found


def stats_of(root: str, paths: Iterable[str]) -> Iterator[Stat]:
    base = root.rstrip("/") + "/"
    return (stat_of(rel if rel[:1] == "/" else base + rel) for rel in paths)


# Libraries whose behaviour shows in a plan: the graph's order (networkx), what git tracks
# and ignores (pygit2), how lines are written (click).
LIBRARIES = ("networkx", "pygit2", "click")


def tool() -> str:
    """reproflake (the no-op stamp's identity), the interpreter and the libraries above: an
    upgrade of any of them computes again. Each library is found, not imported."""
    from importlib.util import find_spec

    rows = [_noop.tool(), sys.version, sys.executable]
    for name in LIBRARIES:
        found = find_spec(name)
        origin = found.origin if found is not None else None
        rows.append(f"{name} {origin} {stat_of(origin) if origin else None}")
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def find_root(start: Path) -> Path | None:
    here = start.resolve()
    return next((d for d in (here, *here.parents) if (d / SPEC_FILE).is_file()), None)


def gc_lock() -> Path:
    return Path(os.environ.get("NIX_STATE_DIR") or "/nix/var/nix") / "gc.lock"


def store_holds(store: Mapping[str, bool]) -> bool:
    """Every path Nix called valid is still in the store, every other one still absent,
    with no garbage collection running (see the module's docstring)."""
    import fcntl

    try:
        fd = os.open(gc_lock(), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        fd = -1  # not ours to open (another user's store): the paths alone answer
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return False  # a collection is running: ask Nix
        exists = os.path.lexists
        return all(exists(path) == valid for path, valid in store.items())
    finally:
        if fd >= 0:
            os.close(fd)  # closing releases the lock


def load(root: Path, record: Path = RECORD) -> dict[str, Any] | None:
    try:
        doc = json.loads((root / record).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == VERSION else None


@dataclass
class Looked:
    """A record found for this project, with nothing outside the project changed since
    (reproflake, the interpreter, the environment, the project's place, the spec and the
    lock), and the stat of every path it watched as they are now."""

    root: Path
    doc: dict[str, Any]
    stats: list[Stat]
    # This machine's time before the first stat: a path changed since is racy (see
    # remember). The file system's clock is not read here: answering writes nothing.
    started_ns: int


def look(start: Path) -> Looked | None:
    """The project's record, if it may still answer or be brought up to date; else None."""
    root = find_root(start)
    if root is None or linked_own_dir(root) is not None:
        return None  # the full path explains the problem
    started = time.time_ns()
    doc = load(root)
    if doc is None:
        return None
    try:
        holds = (
            doc["root"] == str(root)
            and doc["env"] == env()
            and doc["tool"] == tool()
            and doc["spec"] == _noop._digest(root / SPEC_FILE)
            and doc["lock"] == _noop._digest(root / LOCK_FILE)
        )
        stats = list(stats_of(str(root), doc["paths"])) if holds else []
    except (KeyError, TypeError):
        return None
    return Looked(root, doc, stats, started) if holds else None


def answer(
    looked: Looked, req: str, out: Callable[[str], None], log: Callable[[str], None]
) -> bool:
    """Print the recorded answer to ``req`` if nothing it depends on changed; else False."""
    doc = looked.doc
    events = doc.get("answers", {}).get(req)
    if not isinstance(events, list):
        return False
    try:
        holds = doc["stats"] == stats_digest(looked.stats) and store_holds(doc["store"])
    except (KeyError, TypeError):
        return False
    if not holds:
        return False
    for stream, text in events:
        (out if stream == "out" else log)(text)
    return True


# --------------------------------------------------------------------------- the writer


# How a watched path may change with the plan brought up to date rather than computed again
# (_plan_delta): a step's source file edited in place or replaced by another regular file
# of the same mode, a directory above one whose entries came or went (the files that
# matter are watched themselves). Anything else computes the plan again.
SOURCE, PARENT, OTHER = "s", "p", "x"


def watched(p: Project) -> tuple[list[str], str]:
    """Every path the plan of ``p`` read or looked for (relative to the project, or
    absolute), and the kind of each (SOURCE, PARENT or OTHER), one letter per path."""
    from reproflake import _confine, _globs

    root = p.root
    inside: set[str] = set()
    other: set[str] = set()  # read, and not only as a step's source file
    for pattern, matched in p.facts.globs.items():
        inside.update(matched)
        other.update(_globs.searched_dirs(root, pattern))
    outside: set[str] = {str(_confine.config_file())}
    for item in p.spec.inputs.values():
        if item.is_url:
            local = _confine.file_url_path(item.url or "")
            if local is not None:
                outside.add(str(local if local.is_absolute() else root / local))
        elif item.path is not None and item.is_glob:
            other.update(p.facts.globs.get(item.path, ()))
        elif item.path is not None:
            other.update(_noop._walk(root, item.path))
    inside |= other
    # Every directory above what is read, up to the project, and its ignore rules: a
    # directory turned into a link, a new .gitignore.
    parents = {"."}
    for rel in inside:
        d = rel.rpartition("/")[0]
        while d and d not in parents:  # most files share their directory: stop at a known one
            parents.add(d)
            d = d.rpartition("/")[0]
    ignores = {f"{d}/.gitignore" if d != "." else ".gitignore" for d in parents}
    inside |= parents | ignores
    # Replaced whole when written, so their own stat tells (their directory's times change
    # with every cache file written beside them, this record included).
    fixed = {STATE, BUILD_DATA}
    inside |= fixed
    other |= ignores | fixed
    sources: set[str] = set()
    for files in p.facts.sources.values():
        sources.update(files)
    outside.update(_git_files(root))
    outside.update(_nix_conf_files())
    paths = sorted(inside) + sorted(outside - inside)

    def kind(path: str) -> str:
        if path in other or path not in inside:
            return OTHER
        if path in sources:
            return SOURCE
        return PARENT if path in parents else OTHER

    return paths, "".join(kind(path) for path in paths)


def _git_files(root: Path) -> list[str]:
    """Where git is looked for and what says what it tracks and ignores."""
    from reproflake import project

    repo = project.repository(root)
    top = Path(repo.workdir).resolve() if repo is not None else None
    found = []
    for d in (root, *root.parents):
        found.append(str(d / ".git"))
        if top is not None and d != root:  # from the project up to the work tree
            found += [str(d), str(d / ".gitignore")]
        if d == top:
            break
    if repo is None:
        return found
    gitdir = Path(repo.path)
    common = gitdir
    with contextlib.suppress(OSError):  # a worktree's own directory names the repository's
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    found += [str(gitdir / "index"), str(gitdir / "config.worktree")]
    found += [str(common / "config"), str(common / "info" / "exclude")]
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    found += [str(home / ".gitconfig"), str(xdg / "git/config"), str(xdg / "git/ignore")]
    found.append("/etc/gitconfig")
    if "core.excludesFile" in repo.config:
        found.append(os.path.expanduser(str(repo.config["core.excludesFile"])))
    # Files a configuration includes ([include] and [includeIf] path =): core.excludesFile
    # may be set there. A relative one is taken from each file that could have named it.
    bases = [common, gitdir, home, xdg / "git", Path("/etc")]
    for entry in repo.config:
        name = entry.name.lower()
        if name == "include.path" or (name.startswith("includeif.") and name.endswith(".path")):
            named = os.path.expanduser(str(entry.value))
            found += [named] if os.path.isabs(named) else [str(b / named) for b in bases]
    return found


def _nix_conf_files() -> list[str]:
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    system = Path(os.environ.get("NIX_CONF_DIR") or "/etc/nix")
    return [str(system / "nix.conf"), str(xdg / "nix" / "nix.conf")]


def _racy(stats: Iterable[Stat], since: int) -> bool:
    """Whether a path changed at or after ``since``: what the plan read may differ from
    what is recorded. (A path missing now that came and went during the plan shows in its
    directory's times: inside the project every watched path's directory is watched.)"""
    return any(recent(st, since) for st in stats)


def recent(st: Stat, since: int) -> bool:
    """Whether a path (or a link's target) changed at or after ``since`` (fsclock.recent)."""
    if st is None:
        return False
    target = st[TARGET + MTIME : TARGET + INODE] if len(st) > TARGET + 1 else ()
    return fsclock.recent(since, *st[MTIME:INODE], *target)


RACY = "racy"  # in place of a stat: the next plan reads the file again, whatever its stat


def stats_digest(stats: Sequence[Stat], racy: Iterable[int] = ()) -> str:
    """The stats as the record keeps them; a racy path never matches (see remember)."""
    marked: list[Stat | str] = list(stats)
    for i in racy:
        marked[i] = RACY
    return hashlib.sha256(json.dumps(marked).encode()).hexdigest()


def identity(doc: Mapping[str, Any]) -> str:
    """What a record holds besides the stats and the answers: a record of the plan's steps
    (_plan_delta) is valid only beside the record with the same identity."""
    keys = ("version", "tool", "root", "env", "spec", "lock", "paths", "store")
    return hashlib.sha256(json.dumps([doc[k] for k in keys]).encode()).hexdigest()


def remember(
    p: Project, req: str, started_ns: int, events: Sequence[Event], seen: Consulted
) -> bool:
    """Keep the answer to ``req`` if its every input can be checked next time; whether it was.

    ``started_ns``: this machine's time (time.time_ns) before the plan read anything,
    taken back by as much as the project's file system's clock runs behind. A source file
    changed since then (an edit, as likely as not) is kept as racy: the next plan hashes
    it again, and brings the plan up to date (_plan_delta). Any other recent path, and
    the answer is not kept."""
    if seen.nix or seen.hardware:
        return False
    if any(s.hardware is not None and s.hardware.pin_profile for s in p.spec.steps.values()):
        return False  # a pinned profile may come from this machine's probe
    root = p.root
    since = fsclock.Clock(root).since(started_ns)
    if _racy([stat_of(str(root / SPEC_FILE)), stat_of(str(root / LOCK_FILE))], since):
        return False
    paths, kinds = watched(p)
    stats = list(stats_of(str(root), paths))
    racy = []
    for i, st in enumerate(stats):
        if recent(st, since):
            if kinds[i] != SOURCE:
                return False
            racy.append(i)
    # The store is not checked here: a path that came or went since Nix answered already
    # fails the next check, which compares the store with Nix's answers.
    doc: dict[str, Any] = {
        "version": VERSION,
        "tool": tool(),
        "root": str(root),
        "env": env(),
        "spec": _noop._digest(root / SPEC_FILE),
        "lock": _noop._digest(root / LOCK_FILE),
        "paths": paths,
        "stats": stats_digest(stats, racy),
        "store": dict(sorted(seen.store.items())),
    }
    old = load(root)
    answers: dict[str, list[Event]] = {}
    same = ("answers", "steps_record", "wanted")
    if old is not None and {k: v for k, v in old.items() if k not in same} == doc:
        # The same state: keep other forms' answers (a few: each is read at every check).
        kept = sorted(k for k in old.get("answers", {}) if k != req)[: MAX_ANSWERS - 1]
        answers = {k: old["answers"][k] for k in kept}
    answers[req] = [(stream, text) for stream, text in events]
    doc["answers"] = dict(sorted(answers.items()))
    if seen.assessed is not None:
        from reproflake.commands import _plan_delta

        doc["steps_record"] = identity(doc)
        # The steps each form and selection printed, for as long as the steps' record
        # is this state's (they follow from the spec alone).
        wanted = old.get("wanted") if old is not None else None
        if (
            not isinstance(wanted, dict)
            or old is None
            or old.get("steps_record") != doc["steps_record"]
        ):
            wanted = {}
        wanted = {k: v for k, v in wanted.items() if k != req}
        wanted[req] = seen.wanted
        doc["wanted"] = dict(sorted(wanted.items()))
        _plan_delta.keep(p, doc["steps_record"], kinds, stats, racy, events, seen)
    write(root, doc)
    return True


def write(root: Path, doc: Mapping[str, Any]) -> None:
    write_atomic(root / RECORD, json.dumps(doc, sort_keys=True) + "\n")
