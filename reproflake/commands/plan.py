"""`reproflake plan`: what `build` would run, and why, without building."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reproflake.commands import _plan_delta, _plan_record

if TYPE_CHECKING:  # imported when a plan is computed, not when it is answered from its record
    from reproflake.commands._plan import Consulted
    from reproflake.commands._project import Project

Log = Callable[[str], None]


def run(
    start: Path,
    steps: Sequence[str],
    *,
    as_json: bool,
    log: Log,
    out: Log,
    short: bool = False,
) -> int:
    # A plan makes objects by the hundred thousand (the records read, the plan computed)
    # and frees few, none of them in cycles worth finding: the cyclic collector would walk
    # the growing heap again and again (about a seventh of the CPU at 10,000 steps).
    # Reference counting still frees the rest.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(start, steps, as_json=as_json, log=log, out=out, short=short)
    finally:
        if collecting:
            gc.enable()


def _run(
    start: Path, steps: Sequence[str], *, as_json: bool, log: Log, out: Log, short: bool
) -> int:
    req = _plan_record.request(steps, as_json=as_json, short=short)
    # Nothing the plan reads changed since this was last asked: the same answer, told
    # before importing what computing it takes.
    looked = _plan_record.look(start)
    if looked is not None:
        if _plan_record.answer(looked, req, out, log):
            return 0
        # Only source files were edited since: those steps compared again, the rest as kept.
        if _plan_delta.update(looked, req, out, log):
            return 0
    from reproflake.commands._plan import Consulted

    started = time.time_ns()  # before anything is read: see _plan_record.remember
    events: list[_plan_record.Event] = []

    def keep_out(text: str) -> None:
        events.append(("out", text))
        out(text)

    def keep_log(text: str) -> None:
        events.append(("log", text))
        log(text)

    seen = Consulted()
    p = _plan(start, steps, as_json=as_json, log=keep_log, out=keep_out, short=short, seen=seen)
    with contextlib.suppress(OSError):  # a read-only project: the next plan computes again
        _plan_record.remember(p, req, started, events, seen)
    return 0


def _plan(
    start: Path,
    steps: Sequence[str],
    *,
    as_json: bool,
    log: Log,
    out: Log,
    short: bool,
    seen: Consulted,
) -> Project:
    from reproflake.commands._plan import compute
    from reproflake.commands._project import load_project
    from reproflake.commands._steps import select
    from reproflake.verdicts import render

    p = load_project(start, log, write_lock=False, steps=steps)
    # Every step unless some are named (then they and what they need).
    wanted = set(p.graph.upstream(select(p, steps))) if steps else set(p.spec.steps)
    plans = [pl for s, pl in compute(p, seen).items() if s in wanted]
    seen.wanted = [pl.step for pl in plans] if steps else None
    for text in render(plans, _plan_record.form(as_json=as_json, short=short)):
        out(text)
    return p
