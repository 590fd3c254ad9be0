"""`reproflake init`: a new project from a template."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pygit2

from reproflake._paths import data_dir, unusable_in_flake_path
from reproflake.errors import UsageError
from reproflake.fsutil import write_atomic
from reproflake.lock import aptconfig
from reproflake.spec import NAME_RE, SPEC_FILE


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


def run(target: Path, template: str, mirror: str | None, suite: str | None) -> list[str]:
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
    if mirror is None or suite is None:
        source = aptconfig.default_source()
        if source is None:
            raise UsageError(
                "cannot find a Debian mirror in this machine's apt sources",
                hint="pass --debian-mirror URL and --suite NAME (for example --suite bookworm)",
            )
        mirror = mirror or source.mirror
        suite = suite or source.suite
    name = target.resolve().name
    if not NAME_RE.match(name):
        name = "pipeline"
    files = _files(templates_root() / template)
    spec = files[SPEC_FILE].decode()
    # One pass, so a value that itself contains "{{suite}}" is never substituted again;
    # json.dumps writes a valid TOML basic string, so user text never breaks the file.
    values = {"name": name, "mirror": json.dumps(mirror), "suite": json.dumps(suite)}
    spec = re.sub(r"\{\{(name|mirror|suite)\}\}", lambda m: values[m.group(1)], spec)
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
