"""Nix's progress, from its internal-json log, as a small typed model.

`nix build --log-format internal-json` writes one ``@nix {...}`` line per event: an
activity starts (``start``: an id and a type), reports results (``result``) and stops
(``stop``). The numbers below are Nix 2.8's (src/libutil/logging.hh), and the sums follow
its own progress bar (src/libmain/progress-bar.cc), so what reproflake shows agrees with
what `nix build` would show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypedDict


class Act(IntEnum):
    """Activity types (Nix's ``ActivityType``)."""

    COPY_PATH = 100  # one store path copied from a cache: bytes
    FILE_TRANSFER = 101  # one download: bytes (builtin:fetchurl reports its own)
    REALISE = 102  # the whole build: expected totals of the types below
    COPY_PATHS = 103  # store paths taken from caches: a count
    BUILDS = 104  # derivations built: a count (fetches and environments included)
    BUILD = 105  # one derivation building: fields [drv path, machine, ...]
    SUBSTITUTE = 108  # one store path substituted: fields [path, cache]
    BUILD_WAITING = 111  # a content-addressed derivation resolved: [drv, resolved drv]


class Res(IntEnum):
    """Result types (Nix's ``ResultType``)."""

    BUILD_LOG_LINE = 101  # fields [line]
    PROGRESS = 105  # fields [done, expected, running, failed]
    SET_EXPECTED = 106  # fields [activity type, expected]


class Message(TypedDict, total=False):
    """One ``@nix`` line as Nix 2.8 writes it (absent keys: not part of that action)."""

    action: str  # "start", "stop", "result", "msg"
    id: int
    type: int
    level: int
    text: str
    msg: str
    fields: list[int | str]


def parse(line: str) -> Message | None:
    """The message on one line of Nix's standard error; None for anything else."""
    if not line.startswith("@nix "):
        return None
    try:
        found = json.loads(line[5:])
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("action"), str) else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Count:
    """Nix's four numbers for a kind of work (paths, builds or bytes)."""

    done: int = 0
    expected: int = 0
    running: int = 0
    failed: int = 0


@dataclass
class _Activity:
    type: int
    done: int = 0
    expected: int = 0
    running: int = 0
    failed: int = 0
    url: str = ""
    # What this activity announced for other types (resSetExpected): taken back on stop.
    expected_by_type: dict[int, int] = field(default_factory=dict)


@dataclass
class _ByType:
    done: int = 0  # of stopped activities
    failed: int = 0
    expected: int = 0  # announced by resSetExpected
    live: set[int] = field(default_factory=set)


class Activities:
    """Nix's activities as its progress bar sums them, fed one message at a time."""

    def __init__(self) -> None:
        self._acts: dict[int, _Activity] = {}
        self._types: dict[int, _ByType] = {}
        self.downloads_done = 0  # file transfers finished (each a file)

    def feed(self, msg: Message) -> bool:
        """Take one message; True when a number may have changed."""
        action = msg.get("action")
        ident = msg.get("id")
        if not isinstance(ident, int):
            return False
        fields = msg.get("fields") or []
        if action == "start":
            kind = int(msg.get("type", 0))
            url = str(fields[0]) if kind == Act.FILE_TRANSFER and fields else ""
            self._acts[ident] = _Activity(kind, url=url)
            self._types.setdefault(kind, _ByType()).live.add(ident)
            return True
        act = self._acts.get(ident)
        if act is None:
            return False
        if action == "stop":
            del self._acts[ident]
            by_type = self._types[act.type]
            by_type.live.discard(ident)
            by_type.done += act.done
            by_type.failed += act.failed
            for other, expected in act.expected_by_type.items():
                self._types[other].expected -= expected
            if act.type == Act.FILE_TRANSFER and not _is_metadata(act.url):
                self.downloads_done += 1
            return True
        if action != "result":
            return False
        numbers = [f for f in fields if isinstance(f, int)]
        if msg.get("type") == Res.PROGRESS and len(numbers) == 4:
            act.done, act.expected, act.running, act.failed = numbers
            return True
        if msg.get("type") == Res.SET_EXPECTED and len(numbers) == 2:
            other, expected = numbers
            by_other = self._types.setdefault(other, _ByType())
            by_other.expected += expected - act.expected_by_type.get(other, 0)
            act.expected_by_type[other] = expected
            return True
        return False

    def total(self, kind: Act) -> Count:
        """Done, expected, running and failed over every activity of ``kind`` so far."""
        by_type = self._types.get(kind)
        if by_type is None:
            return Count()
        live = [self._acts[i] for i in by_type.live]
        done = by_type.done + sum(a.done for a in live)
        # As Nix: finished work counts as expected, and an announcement can raise it.
        expected = max(by_type.done + sum(a.expected for a in live), by_type.expected)
        running = sum(a.running for a in live)
        failed = by_type.failed + sum(a.failed for a in live)
        return Count(done, expected, running, failed)

    def downloads_running(self) -> int:
        """Files being downloaded now (cache metadata lookups not counted)."""
        live = self._types.get(Act.FILE_TRANSFER, _ByType()).live
        return sum(1 for i in live if not _is_metadata(self._acts[i].url))


def _is_metadata(url: str) -> bool:
    # A binary cache answers "is this path here?" with a small .narinfo download per path:
    # a question, not a file the build fetches.
    return url.endswith((".narinfo", "/nix-cache-info"))


@dataclass(frozen=True)
class Running:
    """A step or an environment Nix is building now."""

    kind: str  # "step" or "environment"
    name: str
    started: float  # on the clock of whoever read the log


@dataclass(frozen=True)
class Snapshot:
    """Where a build stands: what is fetched, what is built, what runs and since when."""

    builds: Count  # derivations: steps, environments and fetched files alike
    copies: Count  # store paths taken from binary caches
    downloads: int  # files downloaded so far
    downloading: int  # files downloading now
    bytes: Count  # bytes downloaded (done) of those announced (expected)
    running: tuple[Running, ...] = ()

    @staticmethod
    def of(acts: Activities, running: tuple[Running, ...] = ()) -> Snapshot:
        return Snapshot(
            builds=acts.total(Act.BUILDS),
            copies=acts.total(Act.COPY_PATHS),
            downloads=acts.downloads_done,
            downloading=acts.downloads_running(),
            bytes=acts.total(Act.FILE_TRANSFER),
            running=running,
        )
