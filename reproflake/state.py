"""What this machine built last, per step: its components and its output.

Kept under .reproflake/cache/ (like the Nix store, it is local to a machine
and not committed). `plan` compares it with the project as it is now.

FORMAT 2 (the "format" key): a source's component carries its executable bit
(verdicts.source_component). Records without it were written when a source counted by
its bytes alone; Nix took the bit all along, and it can only have been the bit the file
has now unless it changed since, which those records could not tell either. So they are
read with each source's bit as it is now (an upgrade does not make every executable
script "became executable"), until a build writes them again in this format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reproflake.fsutil import write_atomic
from reproflake.verdicts import EXECUTABLE, source_component

STATE_FILE = Path(".reproflake/cache/state.json")
FORMAT = 2  # see the module's docstring


@dataclass(frozen=True)
class Built:
    output: str
    components: Mapping[str, str]


def load_all(root: Path) -> tuple[dict[str, Built], dict[str, Mapping[str, str]]]:
    """The steps' records, and each recorded environment's pins by digest."""
    try:
        doc = json.loads((root / STATE_FILE).read_text())
        steps = {k: Built(v["output"], v["components"]) for k, v in doc["steps"].items()}
        environments = dict(doc.get("environments", {}))
        if doc.get("format") != FORMAT:
            steps = {k: _with_modes(root, b) for k, b in steps.items()}
        return steps, environments
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}


def _with_modes(root: Path, b: Built) -> Built:
    """A record from before FORMAT 2, its sources' components as they are now read: the
    recorded sha256 with the file's executable bit as it is now."""
    comps = dict(b.components)
    for key, value in b.components.items():
        if key.startswith("source:") and not value.endswith(EXECUTABLE):
            try:
                mode = os.stat(root / key.removeprefix("source:")).st_mode
            except OSError:
                continue  # gone: the comparison says so
            comps[key] = source_component(value, mode)
    return Built(b.output, comps)


def save(
    root: Path, steps: Mapping[str, Built], environments: Mapping[str, Mapping[str, str]]
) -> None:
    used = {b.components.get("environment-pins") for b in steps.values()}
    doc = {
        "format": FORMAT,
        "steps": {
            k: {"output": v.output, "components": dict(v.components)} for k, v in steps.items()
        },
        # Only the environments some record still refers to.
        "environments": {d: dict(c) for d, c in environments.items() if d in used},
    }
    write_atomic(root / STATE_FILE, json.dumps(doc, sort_keys=True) + "\n")


LAST_BUILT = Path(".reproflake/cache/last-built.json")


def remember_built(root: Path, drvs: Mapping[str, str]) -> None:
    """Record the derivation Nix last built for each step, failed or not: the one its log
    is kept under (a content-addressed step is built as its resolved derivation)."""
    if not drvs:
        return
    known = last_built(root)
    known.update(drvs)
    write_atomic(root / LAST_BUILT, json.dumps(dict(sorted(known.items())), indent=0) + "\n")


def last_built(root: Path) -> dict[str, str]:
    try:
        found = json.loads((root / LAST_BUILT).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
