"""Facts about a project directory: its version control and its files.

The flake only sees files git tracks, so the files a build reads are added
to git's index here (never committed). Large data kept out of git is added
to the Nix store directly by the executor instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reproflake import _confine, _proc
from reproflake._globs import match_files
from reproflake.errors import SpecError, UsageError
from reproflake.nixgen import Facts
from reproflake.spec import Spec

if TYPE_CHECKING:  # imported where used: commands that never touch git start faster
    import pygit2


def repository(root: Path) -> pygit2.Repository | None:
    """The git repository whose work tree holds ``root`` (the project may be a subdirectory)."""
    import pygit2

    found = pygit2.discover_repository(str(root))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    return None if repo.workdir is None else repo


def in_repo(repo: pygit2.Repository, root: Path, rel: str) -> str:
    """A project-relative path as git names it (relative to the work tree)."""
    return _prefix(repo.workdir, str(root)) + rel


@functools.lru_cache(maxsize=16)
def _prefix(workdir: str, root: str) -> str:
    # Resolved once per project: thousands of sources would otherwise resolve each time.
    sub = Path(root).resolve().relative_to(Path(workdir).resolve()).as_posix()
    return "" if sub == "." else sub + "/"


def last_commit_time(root: Path) -> int | None:
    import pygit2

    repo = repository(root)
    if repo is None or repo.head_is_unborn:
        return None
    commit = repo[repo.head.target].peel(pygit2.Commit)
    return int(commit.commit_time)


Globs = dict[str, list[str]]


def match_globs(spec: Spec) -> Globs:
    """Every source pattern and glob input matched once per command; later stages (facts,
    input pinning, the no-op stamp) take their files from here instead of walking again."""
    patterns = {pattern for step in spec.steps.values() for pattern in step.sources}
    patterns |= {i.path for i in spec.inputs.values() if i.is_glob and i.path is not None}
    return {pattern: match_files(spec.root, pattern) for pattern in sorted(patterns)}


def expand_sources(spec: Spec, globs: Globs | None = None) -> dict[str, tuple[str, ...]]:
    """Each step's source patterns → the sorted files they match (each must match one)."""
    globs = globs if globs is not None else match_globs(spec)
    result = {}
    for name, step in spec.steps.items():
        files: set[str] = set()
        for pattern in step.sources:
            matched = globs[pattern]
            if not matched:
                hint = (
                    "fix the path or glob (relative to the project directory), or create the file"
                )
                if (spec.root / pattern).is_dir():
                    hint = f"{pattern} is a directory: write '{pattern}/**' for every file in it"
                raise SpecError(
                    f"{spec.where('steps', name, 'sources')}: steps.{name}.sources: "
                    f"{pattern!r} matches no file",
                    hint=hint,
                )
            _check_names(spec, ("steps", name, "sources"), matched)
            _confine.local_paths(spec.root, matched, functools.partial(_sources_at, spec, name))
            files.update(matched)
        result[name] = tuple(sorted(files))
    return result


def _sources_at(spec: Spec, step: str) -> str:
    return f"{spec.where('steps', step, 'sources')}: steps.{step}.sources"


def _check_names(spec: Spec, key: tuple[str, ...], paths: Iterable[str]) -> None:
    for rel in paths:
        if "\t" in rel or "\n" in rel:
            raise SpecError(
                f"{spec.where(*key)}: {'.'.join(key)}: the file name {rel!r} contains a tab or newline",
                hint="rename the file: such names cannot be passed to the build safely",
            )


def input_files(spec: Spec, globs: Globs) -> dict[str, list[str]]:
    """Each local input's files: its path, or what its pattern matches."""
    return {
        name: globs[item.path] if item.is_glob else [item.path]
        for name, item in spec.inputs.items()
        if item.path is not None and not item.is_url
    }


def facts(spec: Spec, globs: Globs | None = None) -> Facts:
    """What nixgen needs: sources, and which input files reproflake adds to the store itself."""
    repo = repository(spec.root)
    globs = globs if globs is not None else match_globs(spec)
    sources = expand_sources(spec, globs)
    if repo is not None:
        # A file git tracks is in the flake even if a pattern ignores it; asking the index
        # first spares the ignore rules for every source (most are tracked).
        index = repo.index
        for name, files in sources.items():
            for rel in files:
                path = in_repo(repo, spec.root, rel)
                if path not in index and repo.path_is_ignored(path):
                    raise SpecError(
                        f"{spec.where('steps', name, 'sources')}: steps.{name}.sources: "
                        f"{rel} is ignored by git, so the flake cannot see it",
                        hint="stop ignoring it, or declare it as an input (ignored data is "
                        "added to the Nix store directly)",
                    )
    external = {
        rel
        for paths in input_files(spec, globs).values()
        for rel in paths
        if _added_directly(repo, spec.root, rel)
    }
    return Facts(sources=sources, external=frozenset(external), globs=globs)


def _added_directly(repo: pygit2.Repository | None, root: Path, rel: str) -> bool:
    """Whether an input file or directory must bypass git: what git would not hold as is.

    A symbolic link is followed (the data it points to is the input); git ignores
    ignored files and cannot hold empty directories, so a directory with either
    would reach Nix with other content than the lock's hash.
    """
    path = root / rel
    if path.is_symlink():
        return True
    if repo is None:
        return False
    if repo.path_is_ignored(in_repo(repo, root, rel)):
        return True
    if path.is_dir():
        for current, dirs, files in os.walk(path):
            if not dirs and not files:
                return True
            for name in files:
                sub = Path(current, name).relative_to(root).as_posix()
                if repo.path_is_ignored(in_repo(repo, root, sub)):
                    return True
    return False


def stage(root: Path, paths: Iterable[str]) -> None:
    """Make ``paths`` visible to the flake without staging their content (a no-op outside git).

    Nix reads a dirty tree's tracked files from the working tree, so a file git already
    tracks needs nothing, and a new one only an intent-to-add entry (`git add -N`): the
    user's index keeps what they staged, `git diff --cached` shows nothing of ours, and
    `git checkout -- FILE` still undoes an edit."""
    repo = repository(root)
    if repo is None:
        return
    index = repo.index
    new: list[str] = []
    for rel in sorted(set(paths)):
        full = root / rel
        if full.is_dir() and not full.is_symlink():
            for current, dirs, names in os.walk(full):
                dirs.sort()
                for n in sorted(names):
                    sub = in_repo(repo, root, Path(current, n).relative_to(root).as_posix())
                    if sub not in index:
                        new.append(sub)
        elif (full.exists() or full.is_symlink()) and in_repo(repo, root, rel) not in index:
            new.append(in_repo(repo, root, rel))
    for i in range(0, len(new), 1000):  # long lists in chunks: one command line each
        try:
            _proc.run(
                ["git", "--literal-pathspecs", "-C", repo.workdir, "add", "--intent-to-add",
                 "--", *new[i : i + 1000]]
            )  # fmt: skip
        except _proc.CommandError as exc:
            raise UsageError(
                f"cannot tell git about new files in {repo.workdir}: {exc.stderr.strip()}",
                hint="another git command may be running (or left .git/index.lock behind)",
            ) from None
