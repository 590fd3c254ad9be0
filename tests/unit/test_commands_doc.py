"""docs/commands.md documents every command and option that `--help` lists."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from reproflake import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
GLOBAL = {"-C", "--verbose", "--quiet", "--color", "--help", "--version"}


def headings() -> dict[str, str]:
    """Command name -> its heading's synopsis."""
    found = {}
    for line in DOC.read_text().splitlines():
        if m := re.match(r"^## `reproflake ([a-z]+)(.*)`$", line):
            found[m.group(1)] = m.group(2)
    return found


@pytest.mark.parametrize("name", sorted(cli.main.commands))
def test_every_option_is_in_the_commands_heading(name: str) -> None:
    synopsis = headings().get(name)
    assert synopsis is not None, f"docs/commands.md has no heading for `reproflake {name}`"
    command = cli.main.commands[name]
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        opts = [o for o in param.opts + param.secondary_opts if o not in GLOBAL]
        if not opts or set(param.opts) & GLOBAL:
            continue
        assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", synopsis) for o in opts), (
            f"`reproflake {name}`: {'/'.join(opts)} is not in its docs/commands.md heading"
        )
