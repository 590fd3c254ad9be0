"""`reproflake plan`: what `build` would run, and why, without building."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from reproflake import planner
from reproflake.commands._plan import compute
from reproflake.commands._project import Log, load_project
from reproflake.commands._steps import select

SHORT = {
    planner.BUILT: "built",
    planner.WILL: "will build",
    planner.MAY: "may build",
    planner.BLOCKED: "cannot build here",
}


def run(
    start: Path,
    steps: Sequence[str],
    *,
    as_json: bool,
    log: Log,
    out: Log,
    short: bool = False,
) -> int:
    p = load_project(start, log, write_lock=False, steps=steps)
    # Every step unless some are named (then they and what they need).
    wanted = set(p.graph.upstream(select(p, steps))) if steps else set(p.spec.steps)
    plans = [pl for s, pl in compute(p).items() if s in wanted]
    if as_json:
        doc = [
            {"step": pl.step, "status": pl.status, "reasons": list(pl.reasons), "output": pl.output}
            for pl in plans
        ]
        out(json.dumps(doc, indent=2))
        return 0
    width = max((len(pl.step) for pl in plans), default=0)
    # `status`: one word per step, for a quick look; `plan`: the reasons too. One write:
    # a line at a time costs more than the plan itself at 10,000 steps.
    lines = [f"{pl.step:<{width}}  {SHORT[pl.status]}" if short else pl.line() for pl in plans]
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
    return 0
