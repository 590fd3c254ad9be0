"""`reproflake build`: build steps in Nix's sandbox and link their results."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from reproflake import executor, planner, state
from reproflake.commands._project import Log, Project, generate, labels, load_project, store_items
from reproflake.errors import BuildError, UsageError
from reproflake.fsutil import symlink_atomic

RESULTS = "results"


def select(p: Project, steps: Sequence[str]) -> list[str]:
    unknown = [s for s in steps if s not in p.spec.steps]
    if unknown:
        raise UsageError(
            f"unknown step{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            hint=f"known steps: {', '.join(sorted(p.spec.steps))}",
        )
    return list(steps) if steps else p.graph.order()


class Progress:
    """One line per step start and end; on a terminal, a live timer for running steps."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.tty = sys.stderr.isatty()

    def __call__(self, kind: str, step: str, seconds: float) -> None:
        if kind == "start":
            self.log(f"building {step} …")
        elif kind == "done":
            self._clear()
            self.log(f"finished {step} in {seconds:.1f}s")
        elif kind == "tick" and self.tty:
            sys.stderr.write(f"\r  {step}: building for {seconds:.0f}s\x1b[K")
            sys.stderr.flush()

    def _clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")


def record(p: Project, outputs: dict[str, str]) -> None:
    """Remember what each step was built from, for `reproflake plan`."""
    built = state.load(p.root)
    for step in p.graph.order():
        if step in outputs and all(n in outputs for n in p.spec.steps[step].needs):
            comps = planner.components(p.spec, p.lock, p.facts, step, outputs)
            built[step] = state.Built(outputs[step], comps)
    state.save(p.root, built)


def run(start: Path, steps: Sequence[str], *, log: Log, out: Log) -> int:
    executor.require_nix()
    p = load_project(start, log)
    wanted = select(p, steps)
    generate(p)
    added = executor.ensure_in_store(store_items(p))
    for what in added:
        log(f"added {what} to the Nix store")
    progress = Progress(log)
    # Ask for what the wanted steps need too, so every output is known and recorded.
    needed = p.graph.upstream(wanted)
    order = [s for s in p.graph.order() if s in needed]
    outcome = executor.build(p.root, order, progress, labels=labels(p))
    record(p, outcome.outputs)
    progress._clear()
    for step, path in sorted(outcome.outputs.items()):
        link = p.root / RESULTS / step
        symlink_atomic(link, path)
        executor.add_indirect_root(link)

    built = [s for s in wanted if s in outcome.outputs and s in outcome.built]
    already = [s for s in wanted if s in outcome.outputs and s not in outcome.built]
    # Steps needed by the requested ones are built too; count them where they fall.
    extra_built = sorted(set(outcome.built) - set(wanted) - set(outcome.failed))
    for step, lines in sorted(outcome.failed.items()):
        out(f"\nstep {step} failed; last lines of its log:")
        for line in lines:
            out(f"  | {line}")
        out(f"  full log: {executor.log_command(outcome.drvs.get(step, '<drv>'))}")
    skipped = [s for s in wanted if s not in outcome.outputs and s not in outcome.failed]
    parts = [
        f"{len(built) + len(extra_built)} built",
        f"{len(already)} already built",
        f"{len(outcome.failed)} failed",
    ]
    if skipped:
        parts.append(f"{len(skipped)} not built (a step they need failed)")
    out("summary: " + ", ".join(parts))
    for step in wanted:
        if step in outcome.outputs:
            out(f"  {RESULTS}/{step} -> {outcome.outputs[step]}")
    if outcome.failed or skipped:
        raise BuildError(
            f"{len(outcome.failed)} step(s) failed: {', '.join(sorted(outcome.failed))}",
            hint="fix the step and run `reproflake build` again; finished steps are not rebuilt",
        )
    return 0
