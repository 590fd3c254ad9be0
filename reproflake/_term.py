"""How this process talks to its terminal, as the command line set it (-q, --color)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Settings:
    """What the global options say; set by the group or by any subcommand (-v after the
    subcommand works as well as before it)."""

    quiet: bool = False
    color: bool | None = None  # None: colour on a terminal, unless NO_COLOR is set


settings = Settings()


def color(stream: TextIO) -> bool:
    """Colour on ``stream``: as --color says, else on a terminal unless NO_COLOR is set."""
    if settings.color is not None:
        return settings.color
    if os.environ.get("NO_COLOR"):
        return False  # https://no-color.org: any non-empty value
    return stream.isatty()


def redrawable(stream: TextIO) -> bool:
    """A line on ``stream`` can be rewritten in place (a terminal that knows ESC [ K)."""
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"
