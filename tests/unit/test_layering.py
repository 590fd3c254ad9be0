"""How the package's modules may import each other: commands never import commands."""

from __future__ import annotations

import ast
from pathlib import Path

import reproflake

PACKAGE = Path(reproflake.__file__).parent
COMMANDS = PACKAGE / "commands"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_commands_do_not_import_each_other() -> None:
    commands = {p.stem for p in COMMANDS.glob("*.py") if not p.stem.startswith("_")}
    assert {"plan", "graph", "build"} <= commands  # the scan below sees the real modules
    offenders = {
        f"{path.stem} imports {name}"
        for path in COMMANDS.glob("*.py")
        for name in _imported_modules(path)
        if name.startswith("reproflake.commands.")
        and name.split(".")[2] in commands
        and name.split(".")[2] != path.stem
    }
    assert not offenders, "shared code belongs in a commands/_*.py module: " + "; ".join(
        sorted(offenders)
    )
