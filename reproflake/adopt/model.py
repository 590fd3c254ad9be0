"""What an importer found in one file: typed, with where each item came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """A requirement, Debian package or unmapped name, and ``file:line`` it came from."""

    value: str
    where: str


@dataclass
class Imported:
    """One ``--from`` file's contribution to the new spec.

    ``notes`` say what was skipped or changed and why (shown by init); ``unmapped`` are
    names with no Debian package or wheel known for them (shown, and written into the
    spec as a comment)."""

    source: str
    python: list[Item] = field(default_factory=list)
    debian: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unmapped: list[Item] = field(default_factory=list)
    # The include files already read (requirements -r), as resolved paths.
    read: set[str] = field(default_factory=set)
