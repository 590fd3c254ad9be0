"""`reproflake diff [REV_A [REV_B]]`: what changed between two revisions, and what it affects."""

from __future__ import annotations

import json
from pathlib import Path

from reproflake import project, revdiff
from reproflake.commands._project import Log, load_spec
from reproflake.errors import UsageError
from reproflake.lock import inputs as input_pins


def run(
    start: Path, rev_a: str | None, rev_b: str | None, *, as_json: bool, log: Log, out: Log
) -> int:
    spec, _g = load_spec(start)
    repo = project.repository(spec.root)
    if repo is None:
        raise UsageError(
            f"{spec.root} is not in a git repository",
            hint="`reproflake diff` compares git revisions",
        )
    a = revdiff.snapshot_rev(repo, spec.root, rev_a or "HEAD")
    if rev_b is None:
        b = revdiff.snapshot_worktree(spec.root)
        # Data outside git changes without any commit: hash it as it is now (cached).
        current = input_pins.pin_inputs(b.spec, input_pins.hash_cache(spec.root))
    else:
        b = revdiff.snapshot_rev(repo, spec.root, rev_b)
        current = None
    report = revdiff.compare(a, b, current)
    if as_json:
        out(json.dumps(report.as_dict(), indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    out(f"from {report.a} to {report.b}")
    for title, lines in (
        ("spec", report.spec),
        ("packages", report.packages),
        ("source files", report.sources),
        ("data inputs", report.inputs),
        ("hardware constraints", report.hardware),
    ):
        if lines:
            out(f"{title}:")
            out("\n".join(f"  {line}" for line in lines))
    if report.steps:
        out("affected steps:")
        for step, why in report.steps.items():
            out(f"  {step}: " + "; ".join(why))
        out("affected artifacts:")
        out("\n".join(f"  {item}" for item in report.artifacts))
    else:
        out("no step is affected")
    return 0
