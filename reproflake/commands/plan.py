"""`reproflake plan`: what `build` would run, and why, without building."""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reproflake.commands import _plan_record

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
    req = _plan_record.request(steps, as_json=as_json, short=short)
    # Nothing the plan reads changed since this was last asked: the same answer, told
    # before importing what computing it takes.
    if _plan_record.answer(start, req, out, log):
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
    # Planning makes objects by the hundred thousand and frees few, none of them in cycles
    # worth finding: the cyclic collector would walk the growing heap again and again
    # (about a seventh of the CPU at 10,000 steps). Reference counting still frees the rest.
    collecting = gc.isenabled()
    gc.disable()
    try:
        p = _plan(start, steps, as_json=as_json, log=keep_log, out=keep_out, short=short, seen=seen)
        with contextlib.suppress(OSError):  # a read-only project: the next plan computes again
            _plan_record.remember(p, req, started, events, seen)
    finally:
        if collecting:
            gc.enable()
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
    from reproflake import planner
    from reproflake.commands._plan import compute
    from reproflake.commands._project import load_project
    from reproflake.commands._steps import select

    p = load_project(start, log, write_lock=False, steps=steps)
    # Every step unless some are named (then they and what they need).
    wanted = set(p.graph.upstream(select(p, steps))) if steps else set(p.spec.steps)
    plans = [pl for s, pl in compute(p, seen).items() if s in wanted]
    if as_json:
        doc = [
            {"step": pl.step, "status": pl.status, "reasons": list(pl.reasons), "output": pl.output}
            for pl in plans
        ]
        out(json.dumps(doc, indent=2))
        return p
    short_words = {
        planner.BUILT: "built",
        planner.WILL: "will build",
        planner.MAY: "may build",
        planner.BLOCKED: "cannot build here",
    }
    width = max((len(pl.step) for pl in plans), default=0)
    # `status`: one word per step, for a quick look; `plan`: the reasons too. One write:
    # a line at a time costs more than the plan itself at 10,000 steps.
    lines = [
        f"{pl.step:<{width}}  {short_words[pl.status]}" if short else pl.line() for pl in plans
    ]
    if lines:
        out("\n".join(lines))
    counts = {
        k: sum(1 for pl in plans if pl.status == k)
        for k in (planner.WILL, planner.MAY, planner.BUILT, planner.BLOCKED)
    }
    blocked = f", {counts[planner.BLOCKED]} cannot build here" if counts[planner.BLOCKED] else ""
    out(
        f"summary: {counts[planner.WILL]} will build, {counts[planner.MAY]} may build "
        f"(if what they need changes), {counts[planner.BUILT]} already built{blocked}"
    )
    return p
