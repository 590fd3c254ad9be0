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


def load(root: Path) -> dict[str, Built]:
    try:
        doc = json.loads((root / STATE_FILE).read_text())
        return {k: Built(v["output"], v["components"]) for k, v in doc["steps"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save(root: Path, steps: Mapping[str, Built]) -> None:
    doc = {
        "steps": {
            k: {"output": v.output, "components": dict(v.components)} for k, v in steps.items()
        }
    }
    write_atomic(root / STATE_FILE, json.dumps(doc, indent=1, sort_keys=True) + "\n")
