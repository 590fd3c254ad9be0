"""Progress on standard error while Nix fetches and builds.

On a terminal, one status line is redrawn in place (at most ``REDRAWS_PER_SECOND`` times a
second) under the lines that stay: files and bytes fetched, derivations built, and the
steps running with their time so far. Elsewhere (a CI log, a pipe) every line stays, so
only events are printed: a step started or finished, a fetch summary at most every
``FETCH_EVERY`` seconds, the steps still running after ``STILL_EVERY`` quiet seconds.
A build ends with its total time. ``-q`` silences all of it; results go to standard
output and are never touched.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from reproflake import _term
from reproflake.nixlog import Count, Snapshot

Log = Callable[[str], None]

REDRAWS_PER_SECOND = 10
FETCH_EVERY = 10.0  # seconds between fetch summaries when not on a terminal
STILL_EVERY = 30.0  # seconds with no word on steps before naming those still running
BOLD, PLAIN = "\x1b[1m", "\x1b[0m"
CLEAR = "\r\x1b[K"  # to the line's start, erase to its end


UNITS = ("B", "KiB", "MiB", "GiB")


def _unit(n: int) -> int:
    """0 for bytes, 1 for KiB, ... (the largest that leaves at least one whole)."""
    power = 0
    while power < len(UNITS) - 1 and n >= 1024 ** (power + 1):
        power += 1
    return power


def _in(n: int, power: int) -> str:
    return str(n) if power == 0 else f"{n / 1024**power:.1f}"


def size(n: int) -> str:
    """Bytes as Nix's progress bar shows them (binary units, one decimal)."""
    power = _unit(n)
    return f"{_in(n, power)} {UNITS[power]}"


def sizes(done: int, expected: int) -> str:
    """'1.2/4.0 MiB': both in the unit of the larger."""
    power = _unit(max(done, expected))
    return f"{_in(done, power)}/{_in(expected, power)} {UNITS[power]}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fetched(s: Snapshot, expected_files: int | None) -> str:
    """'3/68 files, 1.2/4.0 MiB': files and bytes fetched so far of those expected."""
    done = s.downloads + s.copies.done
    expected = max(expected_files or 0, done + s.downloading, s.copies.expected)
    text = f"{done}/{expected} files"
    if s.bytes.expected:
        text += f", {sizes(s.bytes.done, s.bytes.expected)}"
    elif s.bytes.done:
        text += f", {size(s.bytes.done)}"
    return text


def _built(c: Count, failed: int) -> str:
    # Nix's own failure count also holds each failed step's resolved twin and what
    # waited on it: the steps that failed are counted here instead.
    return f"{c.done}/{c.expected} built" + (f" ({failed} failed)" if failed else "")


class Progress:
    """Takes the executor's events (a step started, finished, ...) and its snapshots of
    Nix's progress (:meth:`status`); writes lines through ``log`` and, on a terminal,
    the status line to ``stream``."""

    def __init__(
        self,
        log: Log,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        redraw: bool | None = None,
        color: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.log = log
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        live = _term.redrawable(self.stream) if redraw is None else redraw
        self.live = live and not _term.settings.quiet
        self.color = _term.color(self.stream) if color is None else color
        self.width = width
        self.seconds: dict[str, float] = {}  # step → how long it built (--json)
        self.fetched = 0  # pinned files' derivations started
        self.failed = 0  # steps that failed
        self.expected_files: int | None = None  # files the build must fetch, when known
        self.started = clock()
        self._lock = threading.RLock()
        self._latest: Snapshot | None = None
        self._shown = ""  # the status line on screen now ("" when none)
        self._drawn_at = float("-inf")
        self._steps_said_at = self.started  # when a line last said what builds
        self._fetch_said: tuple[int, int] = (0, 0)
        self._fetch_said_at = self.started

    # ------------------------------------------------------------------ events

    def __call__(self, kind: str, name: str, seconds: float) -> None:
        with self._lock:
            if kind in ("done", "failed"):
                self.seconds[name] = round(seconds, 3)
            if kind == "fetch":
                self.fetched += 1
                if self.fetched == 1:
                    self.say("fetching pinned packages and inputs …")
            elif kind == "env-start":
                self.say(f"assembling environment {name} …")
            elif kind == "env-done":
                self.say(f"assembled environment {name} in {seconds:.1f}s")
            elif kind == "start":
                self.say(f"building {name} …")
            elif kind == "done":
                self.say(f"finished {name} in {seconds:.1f}s")
            elif kind == "failed":
                self.failed += 1
                self.say(f"failed {name} after {seconds:.1f}s")

    def say(self, line: str, *, about_steps: bool = True) -> None:
        """A line that stays: the status line is taken away first, and comes back with
        the next snapshot (the one at hand may predate what the line says)."""
        with self._lock:
            self.clear()
            self.log(line)
            if about_steps:
                self._steps_said_at = self.clock()
            self._drawn_at = float("-inf")

    def status(self, snapshot: Snapshot) -> None:
        """Nix's numbers changed, or time passed."""
        with self._lock:
            self._latest = snapshot
            if self.live:
                self._draw(snapshot)
            else:
                self._events_from(snapshot)

    def finish(self, built: int) -> None:
        """Take the status line away; what was fetched and the total time."""
        with self._lock:
            self.clear()
            s = self._latest
            if s is not None and (s.downloads or s.copies.done):
                amount = f" ({size(s.bytes.done)})" if s.bytes.done else ""
                self.log(f"fetched {plural(s.downloads + s.copies.done, 'file')}{amount}")
            elif self.fetched:
                self.log(f"fetched {plural(self.fetched, 'pinned file')}")
            self.log(f"built {plural(built, 'step')} in {self.clock() - self.started:.1f}s")

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = ""

    # ------------------------------------------------------------------ a terminal

    def line(self, s: Snapshot) -> str:
        """The status line: elapsed time, fetched, built, what runs and for how long."""
        now = self.clock()
        parts = [f"[{now - self.started:.0f}s]"]
        if self.expected_files or s.downloads or s.downloading or s.copies.expected:
            parts.append(fetched(s, self.expected_files))
        if s.builds.expected:
            parts.append(_built(s.builds, self.failed))
        if s.running:
            bold, plain = (BOLD, PLAIN) if self.color else ("", "")
            running = [
                f"{bold}{'env ' if r.kind == 'environment' else ''}{r.name}{plain} "
                f"{now - r.started:.0f}s"
                for r in s.running
            ]
            parts.append("building " + ", ".join(running))
        return " · ".join(parts)

    def _draw(self, s: Snapshot) -> None:
        now = self.clock()
        if now - self._drawn_at < 1 / REDRAWS_PER_SECOND:
            return
        text = _fit(self.line(s), self.width or shutil.get_terminal_size().columns)
        if text == self._shown:
            return
        self.stream.write(CLEAR + text)
        self.stream.flush()
        self._shown = text
        self._drawn_at = now

    # ------------------------------------------------------------------ a log

    def _events_from(self, s: Snapshot) -> None:
        now = self.clock()
        progress = (s.downloads + s.copies.done, s.bytes.done)
        # While fetching only: what was fetched in all is said at the end.
        fetching = s.downloading > 0 or progress[0] < (self.expected_files or 0)
        if fetching and progress != self._fetch_said and now - self._fetch_said_at >= FETCH_EVERY:
            self._fetch_said, self._fetch_said_at = progress, now
            self.say(f"fetching: {fetched(s, self.expected_files)}", about_steps=False)
        if s.running and now - self._steps_said_at >= STILL_EVERY:
            self.say(
                "still building: "
                + ", ".join(
                    f"{'environment ' if r.kind == 'environment' else ''}{r.name} "
                    f"({now - r.started:.0f}s)"
                    for r in s.running
                )
            )


def _fit(text: str, columns: int) -> str:
    """Cut to the terminal's width (a wrapped line could not be redrawn in place); the
    colour codes take no room on screen."""
    room = max(columns - 1, 10)  # the last column would wrap on some terminals
    tokens = re.findall(r"\x1b\[[0-9;]*m|.", text)
    visible = [t for t in tokens if not t.startswith("\x1b")]
    if len(visible) <= room:
        return text
    out, seen = [], 0
    for token in tokens:
        if not token.startswith("\x1b"):
            if seen == room - 1:
                break
            seen += 1
        out.append(token)
    return "".join(out) + "…" + (PLAIN if BOLD in out else "")
