"""What the commands that build steps share: choosing the steps, the hardware gate,
progress lines and the results/ links (build, verify, release, pull, push, plan)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from reproflake import executor, hardware
from reproflake.commands._project import Log, Project, check_steps
from reproflake.errors import HardwareError
from reproflake.fsutil import symlink_atomic
from reproflake.hardware import HostProfile

RESULTS = "results"


def select(p: Project, steps: Sequence[str]) -> list[str]:
    check_steps(p.spec, steps)
    return list(steps) if steps else p.graph.order()


class Progress:
    """One line per step start and end; on a terminal, a live timer for running steps."""

    def __init__(self, log: Log) -> None:
        self.seconds: dict[str, float] = {}
        self.log = log
        self.tty = sys.stderr.isatty()
        self.fetched = 0

    def __call__(self, kind: str, step: str, seconds: float) -> None:
        if kind in ("done", "failed"):
            self.seconds[step] = round(seconds, 3)
        if kind == "fetch":
            if self.fetched == 0:
                self.log("fetching pinned packages and inputs …")
            self.fetched += 1
        elif kind == "env-start":
            self.log(f"assembling environment {step} …")
        elif kind == "env-done":
            self._clear()
            self.log(f"assembled environment {step} in {seconds:.1f}s")
        elif kind == "start":
            self.log(f"building {step} …")
        elif kind == "done":
            self._clear()
            self.log(f"finished {step} in {seconds:.1f}s")
        elif kind == "failed":
            self._clear()
            self.log(f"failed {step} after {seconds:.1f}s")
        elif kind == "tick" and self.tty:
            sys.stderr.write(f"\r  {step}: building for {seconds:.0f}s\x1b[K")
            sys.stderr.flush()

    def _clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")


def hardware_features(
    p: Project, steps: Sequence[str], builders: Mapping[str, Iterable[str]] | None = None
) -> tuple[list[str], HostProfile]:
    """Probe this machine; the declared features it offers; a clear error for what no one
    can build (neither this machine nor a configured builder offers its features)."""
    required = {s: p.spec.steps[s].hardware for s in steps}
    g = hardware.gate(
        {s: h.features() for s, h in required.items() if h is not None},
        builders=builders,
    )
    if g.unbuildable:
        raise HardwareError(
            "no machine can build these steps: "
            + "; ".join(f"{s} {g.why(s)}" for s in g.unbuildable),
            hint=hardware.GATE_HINT,
        )
    return list(g.offered), g.host


def link_results(p: Project, outputs: dict[str, str]) -> None:
    """results/<step> → its output, each link a garbage-collector root."""
    for step, path in sorted(outputs.items()):
        link = p.root / RESULTS / step
        symlink_atomic(link, path)
        executor.add_indirect_root(link)


def unlink_stale_result(root: Path, step: str) -> bool:
    """Remove results/<step> when the step failed or was not built: a link to an older
    output must not pass for the current one. True if there was one."""
    link = root / RESULTS / step
    if not link.is_symlink():
        return False
    link.unlink()
    return True
