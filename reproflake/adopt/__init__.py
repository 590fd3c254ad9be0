"""A first spec from what a project already declares: `reproflake init --from FILE`.

One importer per kind of file, each a module with ``read``: pip requirements files
(:mod:`.requirements`), ``pyproject.toml`` (:mod:`.pyproject`) and conda environment
files (:mod:`.conda`). Each fills an :class:`Imported`; :func:`merge` joins them and
:func:`render` writes the spec's text: one environment with the Debian packages and
wheels found, and a starter step to edit. Everything skipped is said in a note.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reproflake.adopt import _read, conda, pyproject, requirements
from reproflake.adopt.model import Imported, Item
from reproflake.errors import UsageError

__all__ = ["Adopted", "Imported", "Item", "kind", "merge", "read_all", "render"]

ENV = "main"
# The name at the start of a requirement (every taken one matches REQUIREMENT_RE).
_NAME = re.compile(r"[A-Za-z0-9._-]+")
STEP = "start"


def kind(rel: str) -> str:
    """Which importer reads a file, by its name: ``*.toml`` is a pyproject, ``*.yml`` /
    ``*.yaml`` a conda environment, anything else a requirements file."""
    name = PurePosixPath(rel).name.lower()
    if name.endswith(".toml"):
        return "pyproject"
    if name.endswith((".yml", ".yaml")):
        return "conda"
    return "requirements"


def read_all(root: Path, given: Sequence[Path], extras: Sequence[str]) -> list[Imported]:
    """Every ``--from`` file (and what it includes) read, in the order given."""
    rels = [_read.project_rel(root, path) for path in given]
    if extras and "pyproject" not in {kind(rel) for rel in rels}:
        raise UsageError(
            "--extra names optional dependencies of a pyproject.toml",
            hint="add --from pyproject.toml, or drop --extra",
        )
    found = []
    for rel in rels:
        into = Imported(source=_read.display(root, rel))
        what = kind(rel)
        if what == "pyproject":
            pyproject.read(root, rel, extras, into)
        elif what == "conda":
            conda.read(root, rel, into)
        else:
            requirements.read(root, rel, into)
        found.append(into)
    return found


@dataclass(frozen=True)
class Adopted:
    """What the new spec's environment gets, and what init tells the user."""

    sources: tuple[str, ...]
    python: tuple[Item, ...]
    debian: tuple[str, ...]
    notes: tuple[str, ...]
    unmapped: tuple[Item, ...]


def merge(imports: Sequence[Imported]) -> Adopted:
    """All files' findings: wheels in the order found (the first of equal ones kept),
    Debian packages sorted, python3 added when there are wheels."""
    python: dict[str, Item] = {}
    debian: set[str] = set()
    for imported in imports:
        for item in imported.python:
            python.setdefault(item.value, item)
        debian.update(item.value for item in imported.debian)
    if python:
        debian.add("python3")
    # A file read twice (included by two --from files) says the same things twice.
    notes = dict.fromkeys(n for i in imports for n in i.notes)
    by_name: dict[str, list[Item]] = {}
    for item in python.values():
        found = _NAME.match(item.value)
        by_name.setdefault(pyproject.normalize(found[0] if found else ""), []).append(item)
    for name, items in by_name.items():
        if len(items) > 1:
            asked = "; ".join(f"{i.value} ({i.where})" for i in items)
            notes[f"{name} is asked for in {len(items)} ways: {asked}; the lock needs all"] = None
    return Adopted(
        sources=tuple(i.source for i in imports),
        python=tuple(python.values()),
        debian=tuple(sorted(debian)),
        notes=tuple(notes),
        unmapped=tuple(u for i in imports for u in i.unmapped),
    )


def render(adopted: Adopted, *, name: str, mirror: str, suite: str) -> str:
    """The spec's text. Every value is written with json.dumps (a valid TOML basic
    string); text from the files in comments goes through :func:`_comment`."""
    out = [
        "# A reproflake project, started by `reproflake init` from "
        + ", ".join(_comment(s) for s in adopted.sources)
        + ".",
        "# See docs/spec.md for every key.",
        "[project]",
        f"name = {json.dumps(name)}",
        "",
        "# Where Debian packages come from (filled in from this machine's apt sources).",
        "[debian]",
        f"mirror = {json.dumps(mirror)}",
        f"suite = {json.dumps(suite)}",
        "",
        "# The project's environment: Debian packages, and Python wheels pinned by",
        "# `reproflake lock` for the Debian suite's python3.",
        f"[environments.{ENV}]",
        "debian = " + _array([json.dumps(d) for d in adopted.debian]),
    ]
    if adopted.python:
        entries: list[str] = []
        source = None
        for item in adopted.python:
            here = item.where.rsplit(":", 1)[0]
            if here != source:
                entries.append(f"# {_comment(here)}")
                source = here
            entries.append(json.dumps(item.value) + ",")
        out.append("python = [\n" + "".join(f"  {e}\n" for e in entries) + "]")
    if adopted.unmapped:
        out.append("# Not mapped to a Debian package or a wheel (add what the steps need above):")
        out += [f"#   {_comment(u.value)}  ({_comment(u.where)})" for u in adopted.unmapped]
    out += ["", *_starter(bool(adopted.python) or "python3" in adopted.debian)]
    return "\n".join(out) + "\n"


def _starter(python: bool) -> list[str]:
    head = [
        "# A starter step: replace its command with the project's own, and name the files",
        "# it reads (sources, inputs) and writes (outputs). `reproflake build` runs it in",
        "# Nix's sandbox.",
        f"[steps.{STEP}]",
        f'env = "{ENV}"',
    ]
    if not python:
        return [*head, "run = \"echo 'the environment is ready' > \\\"$OUT/ready.txt\\\"\"",
                'outputs = ["ready.txt"]']  # fmt: skip
    return [
        *head,
        "# It lists the Python distributions the environment holds.",
        "run = '''",
        "python3 - > \"$OUT/packages.txt\" <<'EOF'",
        "import importlib.metadata as metadata",
        "names = {d.metadata['Name']: d.version for d in metadata.distributions()}",
        "for name in sorted(names, key=str.lower):",
        "    print(name, names[name])",
        "EOF",
        "'''",
        'outputs = ["packages.txt"]',
    ]


def _array(items: list[str]) -> str:
    if not items:
        return "[]"
    one = "[" + ", ".join(items) + "]"
    if len(one) <= 88:
        return one
    return "[\n" + "".join(f"  {i},\n" for i in items) + "]"


def _comment(text: str) -> str:
    """Text from a file, safe on one comment line: printable ASCII as it is, anything
    else escaped as JSON escapes it (so no newline can end the comment)."""
    if all(" " <= c <= "~" for c in text):
        return text
    return json.dumps(text)[1:-1].replace("\x7f", "\\u007f")
