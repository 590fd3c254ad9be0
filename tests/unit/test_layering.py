"""How the package's modules may import each other: commands never import commands."""

from __future__ import annotations

import ast
import subprocess
import sys
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


# Loaded only by the code that needs them: each costs every command's start-up otherwise
# (git: pygit2; a TOML parser: only for files the command reads; the image writer: only
# for a spec with images).
LAZY = ("pygit2", "tomllib", "tomli", "reproflake.artifacts.recipe", "reproflake.lock.debian")


def test_build_and_plan_import_what_they_need_when_they_need_it() -> None:
    code = (
        "import sys, reproflake.cli, reproflake.commands._noop, reproflake.commands.build, "
        "reproflake.commands.plan, reproflake.commands.graph\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]", proc.stdout
