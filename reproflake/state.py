"""What this machine built last, per step: its components and its output.

Kept under .reproflake/cache/ (like the Nix store, it is local to a machine
and not committed). `plan` compares it with the project as it is now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reproflake.fsutil import write_atomic

STATE_FILE = Path(".reproflake/cache/state.json")


@dataclass(frozen=True)
class Built:
    output: str
    components: Mapping[str, str]


def load_all(root: Path) -> tuple[dict[str, Built], dict[str, Mapping[str, str]]]:
    """The steps' records, and each recorded environment's pins by digest."""
    try:
        doc = json.loads((root / STATE_FILE).read_text())
        steps = {k: Built(v["output"], v["components"]) for k, v in doc["steps"].items()}
        return steps, dict(doc.get("environments", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}


def save(
    root: Path, steps: Mapping[str, Built], environments: Mapping[str, Mapping[str, str]]
) -> None:
    used = {b.components.get("environment-pins") for b in steps.values()}
    doc = {
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
