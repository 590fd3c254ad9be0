"""pyproject.toml: ``[project] dependencies``, and the optional dependencies of the
extras asked for (PEP 621). ``requires-python`` only becomes a note: the environment's
Python is the Debian suite's ``python3``."""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproflake.adopt import _read, requirements
from reproflake.adopt.model import Imported
from reproflake.errors import UsageError
from reproflake.spec import _Locator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def normalize(name: str) -> str:
    """A project or extra name as PEP 503 / PEP 685 compare them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read(root: Path, rel: str, extras: Sequence[str], into: Imported) -> None:
    name = _read.display(root, rel)
    text = _read.read_text(root, rel, name)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        at = f"{name}:{m.group(1)}:{m.group(2)}" if m else name
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise UsageError(f"{at}: not valid TOML: {problem}", hint="fix the file") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise UsageError(
            f"{name}: nested too deeply (arrays or inline tables inside each other)",
            hint="is this the right file? a pyproject.toml is a few levels deep",
        ) from None
    locate = _Locator(text)

    def where(*key: str) -> str:
        return f"{name}:{locate.line(key)}"

    project = doc.get("project")
    if not isinstance(project, dict):
        other = " (Poetry's [tool.poetry] is not read)" if "poetry" in doc.get("tool", {}) else ""
        raise UsageError(
            f"{name}: no [project] table{other}: nothing to take the dependencies from",
            hint="list them in [project] dependencies (PEP 621), or use --from with a "
            "requirements file",
        )
    own = normalize(str(project.get("name", "")))
    dynamic = project.get("dynamic", [])
    if isinstance(dynamic, list) and "dependencies" in dynamic:
        into.notes.append(
            f"{where('project', 'dynamic')}: the dependencies are dynamic (the build backend "
            "writes them): not read; add them to the environment by hand"
        )
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        raise UsageError(
            f"{where('project', 'optional-dependencies')}: project.optional-dependencies: "
            "expected a table of lists",
            hint='e.g. [project.optional-dependencies] test = ["pytest"]',
        )
    groups = {normalize(k): k for k in optional}
    deps_at = where("project", "dependencies")
    queue: deque[tuple[str, str]] = deque((e, f"--extra {e}") for e in extras)
    done: set[str] = set()

    def take(place: str, dep: str) -> None:
        # An extra may name the project itself with other extras (`mine[test]`).
        m = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", dep)
        if own and m and normalize(m.group(1)) == own:
            queue.extend((e.strip(), place) for e in (m.group(2) or "").split(",") if e.strip())
        else:
            requirements.take_requirement(dep, place, into)

    for dep in _strings(project.get("dependencies", []), deps_at, "project.dependencies"):
        take(deps_at, dep)
    while queue:  # a loop, not recursion: extras may name each other, deeply
        extra, asked = queue.popleft()
        if normalize(extra) in done:
            continue
        done.add(normalize(extra))
        key = groups.get(normalize(extra))
        if key is None:
            raise UsageError(
                f"{asked}: {name} has no extra {extra!r}",
                hint="its extras: " + (", ".join(sorted(optional)) or "none"),
            )
        here = where("project", "optional-dependencies", key)
        for dep in _strings(optional[key], here, f"project.optional-dependencies.{key}"):
            take(here, dep)
    requires = project.get("requires-python")
    if isinstance(requires, str):
        into.notes.append(
            f"{where('project', 'requires-python')}: requires-python {requires!r}: the "
            "environment's Python is the Debian suite's python3 (its version decides which "
            "wheels the lock picks)"
        )
    if "dependency-groups" in doc:
        into.notes.append(
            f"{where('dependency-groups')}: [dependency-groups] are not read; add what a "
            "step needs to the environment by hand"
        )
    if own:
        into.notes.append(
            f"{name}: the project itself ({project.get('name')}) is not installed into the "
            "environment; a step runs it from its sources (e.g. PYTHONPATH=src)"
        )


def _strings(raw: Any, where: str, key: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
        raise UsageError(
            f"{where}: {key}: expected a list of requirement strings",
            hint='e.g. dependencies = ["numpy>=1.26", "pandas"]',
        )
    return raw
