"""`reproflake init`: a new project from a template."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pygit2

from reproflake import templates
from reproflake._paths import PACKAGE, data_dir, unusable_in_flake_path
from reproflake.errors import UsageError
from reproflake.fsutil import write_atomic
from reproflake.spec import SPEC_FILE, flake_url_problem


def templates_root() -> Path:
    return data_dir("templates")


def template_names() -> list[str]:
    return sorted(t.name for t in templates_root().iterdir() if t.is_dir())


def _files(base: Path, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in sorted(base.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_files(entry, rel + "/"))
        elif entry.name != "__pycache__":
            # Packaging tools drop dotfiles, so templates ship "gitignore".
            found[".gitignore" if rel == "gitignore" else rel] = entry.read_bytes()
    return found


def _clashes(target: Path, rels: Iterable[str]) -> list[str]:
    """Template files that exist already, and plain files where a directory must go."""
    found = set()
    for rel in rels:
        if (target / rel).exists():
            found.add(rel)
        for parent in list(Path(rel).parents)[:-1]:
            if (target / parent).exists() and not (target / parent).is_dir():
                found.add(parent.as_posix())
    return sorted(found)


def library_url(choice: str, url: str | None) -> str | None:
    """Where a new project's flake takes reproflake's Nix library from: None for the
    vendored copy; for ``input``, ``url`` or else this reproflake's own checkout."""
    if choice == "vendored":
        if url is not None:
            raise UsageError("--library-url needs --library input")
        return None
    if url is None:
        checkout = PACKAGE.parent
        if (
            not (checkout / "flake.nix").is_file()
            or pygit2.discover_repository(str(checkout)) is None
        ):
            raise UsageError(
                "this reproflake is installed without its source, so it has no flake to name",
                hint="pass --library-url with the URL of reproflake's flake "
                "(e.g. git+file:///path/to/reproflake)",
            )
        url = f"git+file://{checkout}"
    problem = flake_url_problem(url)
    if problem:
        raise UsageError(
            f"--library-url: {url!r} {problem}",
            hint="use path:/absolute/dir, git+file:///absolute/dir or another direct flake URL",
        )
    return url


def run(
    target: Path,
    template: str,
    mirror: str | None,
    suite: str | None,
    library: str | None = None,
) -> list[str]:
    """``library``: the flake URL of reproflake's Nix library ([nix] library); None: vendored."""
    bad = unusable_in_flake_path(target)
    if bad:
        raise UsageError(
            f"{target.resolve()}: Nix cannot build a project in a directory whose path contains "
            + ", ".join(repr(c) for c in bad),
            hint="choose a directory path without them",
        )
    names = template_names()
    if template not in names:
        raise UsageError(
            f"unknown template {template!r}", hint=f"expected one of: {', '.join(names)}"
        )
    mirror, suite = templates.host_source(mirror, suite)
    files = _files(templates_root() / template)
    spec = templates.fill(
        files[SPEC_FILE].decode(), name=templates.project_name(target), mirror=mirror, suite=suite
    )
    if library is not None:
        spec += f"\n# reproflake's Nix library, from its flake.\n[nix]\nlibrary = {json.dumps(library)}\n"
    files[SPEC_FILE] = spec.encode()

    clashes = _clashes(target, files)
    if clashes:
        raise UsageError(
            f"{target}: refusing to overwrite existing files: {', '.join(clashes)}",
            hint="choose an empty or new directory",
        )
    target.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        write_atomic(target / rel, content)
    if pygit2.discover_repository(str(target)) is None:
        pygit2.init_repository(str(target))
    return sorted(files)
