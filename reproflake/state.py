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
