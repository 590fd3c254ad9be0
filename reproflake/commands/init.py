"""`reproflake init`: a project from a template, or from what a project declares.

Into a new directory it writes every file; into an existing one (a cloned repository)
only the files that are missing: an existing .gitignore gets the rules it lacks
appended, its own bytes kept; an existing reproflake.toml is refused. ``--from`` files
(requirements, pyproject.toml, environment.yml) are read by :mod:`reproflake.adopt`.
Everything is read and checked before the first file is written.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pygit2

from reproflake import _confine, adopt, nixgen, templates
from reproflake._paths import PACKAGE, data_dir, unusable_in_flake_path
from reproflake.errors import UsageError
from reproflake.fsutil import write_atomic
from reproflake.spec import SPEC_FILE, flake_url_problem
from reproflake.spec import parse as parse_spec

DEFAULT_TEMPLATE = "python"
# A .gitignore larger than this is left alone (and said so), not read.
IGNORE_LIMIT = 1 << 20


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


@dataclass(frozen=True)
class Outcome:
    """What init did, for the user: files added, ignore lines appended, files left alone
    (with why), and the notes of ``--from``."""

    added: tuple[str, ...]
    appended: tuple[str, ...]
    left_alone: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()
    created_repository: bool = False


def run(
    target: Path,
    template: str | None,
    mirror: str | None,
    suite: str | None,
    library: str | None = None,
    sources: Sequence[Path] = (),
    extras: Sequence[str] = (),
) -> Outcome:
    """A project in ``target`` (new, or existing: only what is missing is added).

    ``template``: None means the default, ``python`` (or, with ``sources``, a spec made
    from those files); ``library``: the flake URL of reproflake's Nix library ([nix]
    library), None for the vendored copy."""
    bad = unusable_in_flake_path(target)
    if bad:
        raise UsageError(
            f"{target.resolve()}: Nix cannot build a project in a directory whose path contains "
            + ", ".join(repr(c) for c in bad),
            hint="choose a directory path without them",
        )
    names = template_names()
    if sources and template is not None:
        raise UsageError(
            "--from makes its own reproflake.toml; --template does not go with it",
            hint="drop --template, or drop --from",
        )
    template = template or DEFAULT_TEMPLATE
    if template not in names:
        raise UsageError(
            f"unknown template {template!r}", hint=f"expected one of: {', '.join(names)}"
        )
    if os.path.lexists(target / SPEC_FILE):
        raise UsageError(
            f"{target / SPEC_FILE}: this directory is a reproflake project already",
            hint="edit its reproflake.toml; to start over, move that file away first",
        )
    mirror, suite = templates.host_source(mirror, suite)
    files = _files(templates_root() / template)
    name = templates.project_name(target)
    adopted = None
    if sources:
        adopted = adopt.merge(adopt.read_all(target, sources, extras))
        spec = adopt.render(adopted, name=name, mirror=mirror, suite=suite)
        files = {SPEC_FILE: b"", ".gitignore": files[".gitignore"]}
    else:
        spec = templates.fill(files[SPEC_FILE].decode(), name=name, mirror=mirror, suite=suite)
    if library is not None:
        spec += f"\n# reproflake's Nix library, from its flake.\n[nix]\nlibrary = {json.dumps(library)}\n"
    files[SPEC_FILE] = spec.encode()
    if adopted is not None:  # what init made from someone else's files must be a valid spec
        parse_spec(spec, target / SPEC_FILE)

    ignore = files.pop(".gitignore")
    writes, left_alone = _missing(target, files)
    ignore_write, appended, why = _ignore_lines(target, ignore)
    if why:
        left_alone.append((".gitignore", why))
    target.mkdir(parents=True, exist_ok=True)
    for path, content in writes:
        write_atomic(path, content)
    added = [p.relative_to(target).as_posix() for p, _ in writes]
    if ignore_write is not None:
        path, content, mode = ignore_write
        write_atomic(path, content, mode=mode)
        if not appended:
            added.append(".gitignore")
    created = pygit2.discover_repository(str(target)) is None
    if created:
        pygit2.init_repository(str(target))
    # `reproflake lock` writes its own flake; a project's own must not vanish unsaid.
    foreign = nixgen.foreign_flake(target)
    notes = (
        [
            f"{foreign}: `reproflake lock` generates reproflake's own flake.nix and "
            "flake.lock here and refuses to write over it; move your flake elsewhere first "
            "(e.g. `git mv flake.nix nix/flake.nix`, with its flake.lock)"
        ]
        if foreign
        else []
    )
    return Outcome(
        added=tuple(sorted(added)),
        appended=tuple(appended),
        left_alone=tuple(sorted(left_alone)),
        notes=(*(adopted.notes if adopted else ()), *notes),
        unmapped=tuple(f"{u.value} ({u.where})" for u in adopted.unmapped) if adopted else (),
        created_repository=created,
    )


def _missing(
    target: Path, files: dict[str, bytes]
) -> tuple[list[tuple[Path, bytes]], list[tuple[str, str]]]:
    """The files to write (those missing), and those left alone with why."""
    writes: list[tuple[Path, bytes]] = []
    left: list[tuple[str, str]] = []
    base = target.resolve()
    for rel, content in sorted(files.items()):
        if os.path.lexists(target / rel):
            left.append((rel, "it exists"))
            continue
        blocked = next(
            (p for p in reversed(list(PurePosixPath(rel).parents)[:-1])
             if os.path.lexists(target / p) and not (target / p).is_dir()),
            None,
        )  # fmt: skip
        if blocked is not None:
            left.append((rel, f"{blocked.as_posix()} is not a directory"))
            continue
        parent = (target / rel).parent.resolve()
        if parent != base and base not in parent.parents:
            # A repository's link must not make init write outside the project.
            left.append((rel, "a link takes its directory outside the project"))
            continue
        writes.append((target / rel, content))
    return writes, left


def _ignore_lines(
    target: Path, template: bytes
) -> tuple[tuple[Path, bytes, int] | None, list[str], str]:
    """How .gitignore gets the template's rules: (path, new content, mode) to write or
    None, the lines appended, and why nothing is written (or "").

    An existing file keeps its bytes; the rules it lacks are appended after them."""
    path = target / ".gitignore"
    if not os.path.lexists(path):
        return (path, template, 0o644), [], ""
    where = str(path)
    try:
        real = _confine.local_path(target, ".gitignore", where)
    except UsageError:
        real = path.resolve()
    base = target.resolve()
    if real != base and base not in real.parents:  # never write through a link outside
        return None, [], "it is a link out of the project"
    if not real.is_file():
        return None, [], "it is not a regular file"
    st = real.stat()
    if st.st_size > IGNORE_LIMIT:
        return None, [], f"it is larger than {IGNORE_LIMIT} bytes"
    old = real.read_bytes()
    have = {line.strip() for line in old.decode("utf-8", "replace").splitlines()}
    rules = [
        line
        for line in template.decode().splitlines()
        if line.strip() and not line.startswith("#") and line.strip() not in have
    ]
    if not rules:
        return None, [], "it has reproflake's rules already"
    sep = b"" if not old or old.endswith(b"\n") else b"\n"
    block = "# reproflake: build results (links into the Nix store) and local caches\n"
    block += "".join(f"{r}\n" for r in rules)
    return (real, old + sep + block.encode(), stat.S_IMODE(st.st_mode)), rules, ""
