"""Project templates: their placeholders, and finishing a project copied from one.

A template's reproflake.toml leaves three values to the machine it lands on:
``name = "{{name}}"``, ``mirror = {{mirror}}`` and ``suite = {{suite}}``. `reproflake
init` fills them as it copies the template. `nix flake init -t <reproflake>#NAME` copies
the files verbatim, so `reproflake lock` finishes such a project (:func:`complete`) the
same way: the mirror and suite from this machine's apt sources, as init takes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pygit2

from reproflake import project
from reproflake.errors import UsageError
from reproflake.fsutil import write_atomic
from reproflake.lock import aptconfig
from reproflake.spec import NAME_RE, PLACEHOLDER, SPEC_FILE, placeholders

# Packaging tools drop dotfiles, so templates ship "gitignore".
GITIGNORE = "gitignore"


def project_name(directory: Path) -> str:
    """The project's name: its directory's, when that is a valid name."""
    name = directory.resolve().name
    return name if NAME_RE.fullmatch(name) else "pipeline"


def fill(text: str, *, name: str, mirror: str, suite: str) -> str:
    """Every placeholder replaced in one pass (a value that itself reads "{{suite}}" is
    never substituted again); json.dumps writes a valid TOML basic string, so the values
    cannot break the file."""
    values = {"name": name, "mirror": mirror, "suite": suite}
    return PLACEHOLDER.sub(
        lambda m: m.group("key") + json.dumps(values[m.group("what")]) + m.group("rest"), text
    )


def host_source(mirror: str | None, suite: str | None) -> tuple[str, str]:
    """The Debian mirror and suite: as given, else from this machine's apt sources."""
    if mirror is None or suite is None:
        source = aptconfig.default_source()
        if source is None:
            raise UsageError(
                "cannot find a Debian mirror in this machine's apt sources",
                hint="pass --debian-mirror URL and --suite NAME (for example --suite bookworm)",
            )
        mirror = mirror or source.mirror
        suite = suite or source.suite
    return mirror, suite


def complete(spec_path: Path) -> list[str]:
    """Finish a project copied verbatim from a template; what was done, for the log.

    A project without placeholders is left alone (an empty list)."""
    text = spec_path.read_text(encoding="utf-8")
    if not placeholders(text):
        return []
    root = spec_path.parent
    try:
        mirror, suite = host_source(None, None)
    except UsageError as exc:
        raise UsageError(
            f"{spec_path}: [debian] mirror and suite are still template placeholders, and "
            "this machine's apt sources name no Debian mirror",
            hint='write them into reproflake.toml, e.g. mirror = "http://<your mirror>/debian" '
            'and suite = "bookworm", then run `reproflake lock` again',
        ) from exc
    write_atomic(spec_path, fill(text, name=project_name(root), mirror=mirror, suite=suite))
    done = [f"filled the template's placeholders in {SPEC_FILE} (Debian {suite} from {mirror})"]
    if pygit2.discover_repository(str(root)) is None:
        # The flake only sees what git tracks: a project lives in a repository.
        pygit2.init_repository(str(root))
        done.append("created a git repository")
    if (root / GITIGNORE).is_file() and not (root / ".gitignore").exists():
        (root / GITIGNORE).rename(root / ".gitignore")
        _renamed_in_index(root, GITIGNORE, ".gitignore")
        done.append(f"renamed {GITIGNORE} to .gitignore")
    return done


def _renamed_in_index(root: Path, old: str, new: str) -> None:
    """`nix flake init` in a repository adds the files it copies to git's index: follow
    the rename there too, so git does not report the template's name as deleted."""
    repo = project.repository(root)
    if repo is None:
        return
    index = repo.index
    if project.in_repo(repo, root, old) in index:
        index.remove(project.in_repo(repo, root, old))
        index.add(project.in_repo(repo, root, new))
        index.write()
