"""Progress on standard error: the recorded real build replayed with a fake clock."""

from __future__ import annotations

import io
import re

import pytest
from test_nixlog import Clock, replay

from reproflake import _term
from reproflake.commands import _progress
from reproflake.commands._progress import Progress
from reproflake.nixlog import Count, Running, Snapshot


def make(
    clock: Clock, *, redraw: bool, color: bool = False, width: int = 200
) -> tuple[Progress, list[str], io.StringIO]:
    lines: list[str] = []
    stream = io.StringIO()
    progress = Progress(
        lines.append, stream=stream, clock=clock, redraw=redraw, color=color, width=width
    )
    return progress, lines, stream


def test_a_log_gets_one_line_per_event_and_the_total() -> None:
    clock = Clock()
    progress, lines, stream = make(clock, redraw=False)
    progress.expected_files = 4
    replay(progress, progress.status, clock)
    progress.finish(built=2)
    assert stream.getvalue() == ""  # nothing redrawn where every line stays
    assert lines == [
        "building broken …",
        "building slow …",
        "failed broken after 0.0s",
        "fetching pinned packages and inputs …",
        "assembling environment art …",
        "finished slow in 3.2s",
        "assembled environment art in 3.0s",
        "building banner …",
        "finished banner in 0.0s",
        "fetched 4 files (1.4 MiB)",
        "built 2 steps in 3.8s",
    ]
    assert progress.seconds == {"broken": 0.011, "slow": 3.157, "banner": 0.005}


def test_a_log_hears_of_a_long_quiet_step_and_of_slow_fetching() -> None:
    clock = Clock()
    progress, lines, _ = make(clock, redraw=False)
    progress.expected_files = 68
    progress("start", "train", 0.0)
    started = clock.now
    for second in range(1, 95):
        clock.now = started + second
        fetching = Snapshot(
            builds=Count(0, 70, 1),
            copies=Count(),
            downloads=min(second, 68),
            downloading=1 if second < 68 else 0,
            bytes=Count(second * 2**20, 68 * 2**20),
            running=(Running("step", "train", started),),
        )
        progress.status(fetching)
    still = [line for line in lines if line.startswith("still building")]
    assert still == ["still building: train (30s)", "still building: train (60s)",
                     "still building: train (90s)"]  # fmt: skip
    fetch = [line for line in lines if line.startswith("fetching:")]
    assert fetch[0] == "fetching: 10/68 files, 10.0/68.0 MiB"
    assert len(fetch) == 6  # every 10 s while fetching, none once it is done
    assert "fetching: 60/68 files, 60.0/68.0 MiB" in fetch


def test_a_terminal_gets_one_line_redrawn_and_cleared() -> None:
    clock = Clock()
    progress, lines, stream = make(clock, redraw=True)
    replay(progress, progress.status, clock)
    progress.finish(built=2)
    text = stream.getvalue()
    draws = text.split(_progress.CLEAR)
    assert draws[-1] == ""  # taken away at the end
    assert any("building slow 3s, env art 3s" in d for d in draws)
    assert any(re.search(r"4/4 files, 1\.4/1\.4 MiB · \d+/\d+ built \(1 failed\)", d) for d in draws)
    assert "\x1b[1m" not in text  # no colour asked
    # The lines that stay are the same as in a log.
    assert lines[-1] == "built 2 steps in 3.8s"


def test_redraws_are_throttled() -> None:
    clock = Clock()
    progress, _lines, stream = make(clock, redraw=True)
    started = clock.now
    for i in range(1000):  # a busy second of Nix messages, each a little different
        clock.now = started + i / 1000
        progress.status(Snapshot(Count(i, 1000), Count(), 0, 0, Count()))
    draws = stream.getvalue().count(_progress.CLEAR)
    assert 5 <= draws <= _progress.REDRAWS_PER_SECOND


def test_the_status_line_fits_the_terminal_and_resets_colour() -> None:
    clock = Clock()
    progress, _lines, stream = make(clock, redraw=True, color=True, width=40)
    running = tuple(Running("step", f"step-with-a-long-name-{i}", clock.now) for i in range(5))
    progress.status(Snapshot(Count(1, 9), Count(), 0, 0, Count(), running))
    shown = stream.getvalue().split(_progress.CLEAR)[-1]
    visible = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert len(visible) == 39 and visible.endswith("…")
    assert "\x1b[1m" in shown and shown.endswith("\x1b[0m")


def test_quiet_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_term.settings, "quiet", True)
    clock = Clock()
    progress, _lines, stream = make(clock, redraw=True)
    replay(progress, progress.status, clock)
    progress.finish(built=2)
    assert stream.getvalue() == ""


def test_colour_follows_no_color_and_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(_term.settings, "color", None)
    assert not _term.color(Tty())
    monkeypatch.setattr(_term.settings, "color", True)
    assert _term.color(Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(_term.settings, "color", None)
    assert _term.color(Tty()) and not _term.color(io.StringIO())
    monkeypatch.setenv("TERM", "dumb")
    assert not _term.redrawable(Tty())


def test_sizes_share_a_unit() -> None:
    assert _progress.size(1023) == "1023 B"
    assert _progress.size(30822) == "30.1 KiB"
    assert _progress.sizes(1_200_000, 4_200_000) == "1.1/4.0 MiB"
    assert _progress.sizes(512, 3 * 2**30) == "0.0/3.0 GiB"
