"""What a release recorded about itself, read back: SHA256SUMS and provenance.json.

`reproduce` compares an extracted release with these records twice: the files as they
came out of the archive (a changed byte, a changed SHA256SUMS line, a provenance subject
that disagrees with SHA256SUMS), then each rebuilt output. Records that cannot be read at
all make the archive unusable (ArchiveError, naming file and line).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproflake.artifacts.extract import Member
from reproflake.artifacts.release import ENTRIES, PROVENANCE, SUMS
from reproflake.artifacts.signing import SIGNATURE
from reproflake.errors import ArchiveError

RESULTS = "results"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_HINT = "the archive is damaged or was not written by `reproflake release`"


@dataclass(frozen=True)
class Recorded:
    sums: Mapping[str, str]  # path → sha256, as SHA256SUMS lists them
    lines: Mapping[str, int]  # path → its line in SHA256SUMS
    subjects: Mapping[str, str]  # provenance subject (an output file) → sha256
    outputs: Mapping[str, str]  # step → the store path it was built to
    project: str
    commit: str

    def where(self, path: str) -> str:
        return f"{SUMS}:{self.lines[path]}"


def read(top: Path) -> Recorded:
    sums, lines = _sums(top / SUMS)
    doc = _json(top / PROVENANCE)
    try:
        subjects = {str(s["name"]): str(s["digest"]["sha256"]) for s in doc["subject"]}
        build = doc["predicate"]["buildDefinition"]
        outputs = {str(k): str(v) for k, v in build["internalParameters"]["outputs"].items()}
        params = build["externalParameters"]
        project, commit = str(params["project"]), str(params["commit"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(
            f"{top / PROVENANCE}: not a reproflake provenance statement (no {exc})", hint=_HINT
        ) from None
    return Recorded(sums, lines, subjects, outputs, project, commit)


def _sums(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ArchiveError(f"{path}: missing; every release holds one", hint=_HINT) from None
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{path}: not UTF-8 text ({exc})", hint=_HINT) from None
    sums: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = _LINE.match(line)
        if m is None:
            raise ArchiveError(
                f"{path}:{number}: expected `SHA256  PATH` (64 lowercase hex digits, two "
                f"spaces, a path), got {line[:80]!r}",
                hint=_HINT,
            )
        digest, name = m.groups()
        if name in sums:
            raise ArchiveError(f"{path}:{number}: {name} is listed twice", hint=_HINT)
        sums[name], lines[name] = digest, number
    return sums, lines


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ArchiveError(f"{path}: missing; every release holds one", hint=_HINT) from None
    except ValueError as exc:
        raise ArchiveError(f"{path}: not JSON ({exc})", hint=_HINT) from None
    if not isinstance(doc, dict):
        raise ArchiveError(f"{path}: not a JSON object", hint=_HINT)
    return doc


def check_files(rec: Recorded, members: Mapping[str, Member]) -> list[str]:
    """Every disagreement between the extracted files, SHA256SUMS and the provenance
    subjects, one line each, naming the file (and the SHA256SUMS line)."""
    problems = []
    for path, digest in sorted(rec.sums.items()):
        m = members.get(path)
        if m is None or m.kind != "file":
            problems.append(
                f"{rec.where(path)}: {path} is listed, but the archive has no such file"
            )
        elif m.sha256 != digest:
            problems.append(
                f"{rec.where(path)}: {path}: the line says sha256 {digest}, the file has {m.sha256}"
            )
    for path, m in sorted(members.items()):
        if m.kind == "file" and path not in rec.sums and path not in (SUMS, SIGNATURE):
            problems.append(f"{path}: in the archive, but not listed in {SUMS}")
    for name, digest in sorted(rec.subjects.items()):
        listed = rec.sums.get(name)
        if listed is None:
            problems.append(f"{PROVENANCE}: subject {name} is not listed in {SUMS}")
        elif listed != digest:
            problems.append(
                f"{PROVENANCE}: subject {name} has sha256 {digest}, but {rec.where(name)} says {listed}"
            )
    for path in sorted(rec.sums):
        if path.startswith(RESULTS + "/") and path not in rec.subjects:
            problems.append(f"{rec.where(path)}: output {path} is not a subject of {PROVENANCE}")
    return problems


def step_files(rec: Recorded, members: Mapping[str, Member], step: str) -> dict[str, Member]:
    """The recorded files and links of one step's output, by path inside the output
    ('' for a single-file output). A file's sha256 is SHA256SUMS' (what was recorded),
    not the extracted copy's."""
    prefix = f"{RESULTS}/{step}"
    found: dict[str, Member] = {}
    for path, digest in rec.sums.items():
        if path == prefix or path.startswith(prefix + "/"):
            m = members.get(path)
            executable = m.executable if m is not None else False
            found[path[len(prefix) + 1 :]] = Member("file", digest, executable=executable)
    for path, m in members.items():
        if m.kind == "symlink" and (path == prefix or path.startswith(prefix + "/")):
            found[path[len(prefix) + 1 :]] = m
    return dict(sorted(found.items()))


def check_entries(top: Path, rec: Recorded, members: Mapping[str, Member]) -> list[str] | None:
    """Every disagreement between the extracted entries and entries.json (kinds, modes,
    links' targets, paths missing or added), one line each; None when the release has
    no entries.json and SHA256SUMS does not list one (a release written before it)."""
    path = top / ENTRIES
    # What the archive held, not what the path leads to now: a link or a directory by
    # that name must not pass for a record, nor hide that the release has none.
    found = members.get(ENTRIES)
    if ENTRIES not in rec.sums:
        if found is None or found.kind == "file":
            return None  # a release from before it (check_files names a file not listed)
        return [f"{ENTRIES}: a {found.kind} in the archive, but not listed in {SUMS}"]
    if found is None or found.kind != "file":
        return []  # check_files names it: listed, and no such file
    doc = _json(path)
    recorded = doc.get("entries")
    if not isinstance(recorded, dict) or not all(isinstance(v, dict) for v in recorded.values()):
        raise ArchiveError(f'{path}: expected {{"entries": {{PATH: {{...}}}}}}', hint=_HINT)
    problems = []
    for name, want in sorted(recorded.items()):
        m = members.get(name)
        if m is None:
            problems.append(f"{ENTRIES}: {name} is listed, but the archive has no such entry")
            continue
        got = _entry(m)
        if got != want:
            problems.append(
                f"{ENTRIES}: {name} is listed as {_shown(want)}, the archive has {_shown(got)}"
            )
    for name, m in sorted(members.items()):
        # "": the top directory itself; the signature (a file) is the envelope around
        # the records.
        envelope = name == SIGNATURE and m.kind == "file"
        if name and name not in recorded and not envelope:
            problems.append(f"{name}: a {m.kind} in the archive, but not listed in {ENTRIES}")
    return problems


def _entry(m: Member) -> dict[str, str]:
    if m.kind == "symlink":
        return {"kind": "symlink", "target": m.target}
    if m.kind == "file":
        return {"kind": "file", "mode": "0755" if m.executable else "0644"}
    return {"kind": m.kind}


def _shown(entry: Mapping[str, object]) -> str:
    kind = str(entry.get("kind", "?"))
    if kind == "symlink":
        return f"a link to {entry.get('target')!r}"
    if kind == "file":
        return f"a file of mode {entry.get('mode')}"
    return f"a {kind}"
