"""`reproflake plan`: what `build` would run, and why, without building."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from reproflake import executor, planner, state
from reproflake.commands._project import Log, Project, load_project
from reproflake.commands.build import select


def compute(p: Project) -> dict[str, planner.StepPlan]:
    return planner.plan(
        p.spec, p.lock, p.facts, p.graph, state.load(p.root), executor.invalid_paths
    )


def run(start: Path, steps: Sequence[str], *, as_json: bool, log: Log, out: Log) -> int:
    p = load_project(start, log, write_lock=False)
    wanted = set(p.graph.upstream(select(p, steps)))
    plans = [pl for s, pl in compute(p).items() if s in wanted]
    if as_json:
        doc = [
            {"step": pl.step, "status": pl.status, "reasons": list(pl.reasons), "output": pl.output}
            for pl in plans
        ]
        out(json.dumps(doc, indent=2))
        return 0
    for pl in plans:
        out(pl.line())
    counts = {
        k: sum(1 for pl in plans if pl.status == k)
        for k in (planner.WILL, planner.MAY, planner.BUILT)
    }
    out(
        f"summary: {counts[planner.WILL]} will build, {counts[planner.MAY]} may build "
        f"(if what they need changes), {counts[planner.BUILT]} already built"
    )
    return 0
