"""Names for shell completion: the steps, environments and images of the project a
command line is about.

Completion runs on every Tab press, so it reads the spec's raw TOML (no validation, no
lock, no Nix) and never raises: a half-edited spec completes what it can, a broken one
completes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reproflake._paths import find_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# The spec's tables whose keys are names a command line may take.
TABLES = ("steps", "environments", "images")


def names(directory: Path, table: str, incomplete: str, given: Iterable[str] = ()) -> list[str]:
    """The names in ``[table.NAME]`` of the spec found from ``directory`` that start with
    ``incomplete``, less those already ``given``; sorted. Empty on any problem."""
    try:
        raw = _raw_spec(directory)
        section = raw.get(table)
        if not isinstance(section, dict):
            return []
        skip = set(given)
        return sorted(
            name
            for name, value in section.items()
            if isinstance(value, dict) and name.startswith(incomplete) and name not in skip
        )
    except Exception:  # completion must never print a traceback into the user's prompt
        return []


def _raw_spec(directory: Path) -> dict[str, Any]:
    path = find_spec(directory)
    return tomllib.loads(path.read_text(encoding="utf-8"))
