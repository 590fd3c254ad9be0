"""Facts about a project directory: its version control and its files.

The flake only sees files git tracks, so the files a build reads are added
to git's index here (never committed). Large data kept out of git is added
to the Nix store directly by the executor instead.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

import pygit2

from reproflake.errors import SpecError
from reproflake.nixgen import Facts
from reproflake.spec import Spec


def repository(root: Path) -> pygit2.Repository | None:
    """The git repository whose work tree holds ``root`` (the project may be a subdirectory)."""
    found = pygit2.discover_repository(str(root))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    return None if repo.workdir is None else repo


def _in_repo(repo: pygit2.Repository, root: Path, rel: str) -> str:
    """A project-relative path as git names it (relative to the work tree)."""
    return (root.resolve() / rel).relative_to(Path(repo.workdir).resolve()).as_posix()


def last_commit_time(root: Path) -> int | None:
    repo = repository(root)
    if repo is None or repo.head_is_unborn:
        return None
    commit = repo[repo.head.target].peel(pygit2.Commit)
    return int(commit.commit_time)


def expand_sources(spec: Spec) -> dict[str, tuple[str, ...]]:
    """Each step's source globs → the sorted files they match; a glob matching nothing is an error."""
    result = {}
    for name, step in spec.steps.items():
        files: set[str] = set()
        for pattern in step.sources:
            matched = [
                m
                for m in glob.glob(
                    pattern, root_dir=spec.root, recursive=True, include_hidden=False
                )
                if (spec.root / m).is_file()
            ]
            if not matched:
                raise SpecError(
                    f"{spec.where('steps', name, 'sources')}: steps.{name}.sources: "
                    f"{pattern!r} matches no file",
                    hint="fix the path or glob (relative to the project directory), or create the file",
                )
            files.update(Path(m).as_posix() for m in matched)
        result[name] = tuple(sorted(files))
    return result


def input_files(spec: Spec) -> dict[str, list[str]]:
    """Each local input's files: its path, or what its pattern matches."""
    from reproflake.lock.pin import glob_files

    return {
        name: glob_files(spec.root, item.path) if item.is_glob else [item.path]
        for name, item in spec.inputs.items()
        if item.path is not None and not item.is_url
    }


def facts(spec: Spec) -> Facts:
    """What nixgen needs: sources, and which input files git ignores (large data)."""
    repo = repository(spec.root)
    external: set[str] = set()
    if repo is not None:
        for paths in input_files(spec).values():
            external.update(p for p in paths if repo.path_is_ignored(_in_repo(repo, spec.root, p)))
    return Facts(sources=expand_sources(spec), external=frozenset(external))


def stage(root: Path, paths: Iterable[str]) -> None:
    """Add ``paths`` to git's index so the flake sees them (a no-op outside git)."""
    repo = repository(root)
    if repo is None:
        return
    index = repo.index
    changed = False
    for rel in sorted(set(paths)):
        full = root / rel
        if full.is_dir() and not full.is_symlink():
            for current, dirs, names in os.walk(full):
                dirs.sort()
                for n in sorted(names):
                    sub = Path(current, n).relative_to(root).as_posix()
                    changed |= _add(repo, index, _in_repo(repo, root, sub))
        elif full.exists() or full.is_symlink():
            changed |= _add(repo, index, _in_repo(repo, root, rel))
    if changed:
        index.write()


def _add(repo: pygit2.Repository, index: pygit2.Index, rel: str) -> bool:
    entry = index[rel] if rel in index else None  # noqa: SIM401 - pygit2.Index has no get()
    blob = pygit2.hashfile(str(Path(repo.workdir) / rel))
    if entry is not None and entry.id == blob:
        return False
    index.add(rel)
    return True
