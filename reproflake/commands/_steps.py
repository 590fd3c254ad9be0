"""What the commands that build steps share: choosing the steps, the hardware gate,
progress (commands/_progress.py) and the results/ links (build, verify, release, pull, push, plan)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reproflake import executor, hardware
from reproflake.commands._progress import Progress as Progress  # shared by the building commands
from reproflake.commands._project import Log, Project, check_steps
from reproflake.errors import HardwareError
from reproflake.fsutil import symlink_atomic
from reproflake.hardware import HostProfile

RESULTS = "results"


def select(p: Project, steps: Sequence[str]) -> list[str]:
    check_steps(p.spec, steps)
    return list(steps) if steps else p.graph.order()


def build_steps(
    root: Path, steps: Sequence[str], log: Log, **options: Any
) -> executor.BuildOutcome:
    """:func:`executor.build` with progress on standard error, its status line taken away
    after (also when the build raises)."""
    progress = Progress(log)
    try:
        return executor.build(root, steps, progress, on_status=progress.status, **options)
    finally:
        progress.clear()


def files_to_fetch(p: Project, steps: Sequence[str]) -> int:
    """How many pinned files (packages, wheels, URL inputs) these steps need that the store
    lacks: what "3/68 files" counts toward. One store query; nothing is evaluated."""
    envs = {p.spec.steps[s].env for s in steps}
    debs = {k for e in envs for k in p.lock.environments[e].debs}
    wheels = {k for e in envs for k in p.lock.environments[e].wheels}
    inputs = {i for s in steps for i in p.spec.steps[s].inputs}
    data = p.data
    pinned = [
        *((k, v["sha256"]) for k, v in data["debs"].items() if k in debs),
        *((k, v["sha256"]) for k, v in data["wheels"].items() if k in wheels),
        *((f["storeName"], f["sha256"]) for name, entry in data["inputs"].items()
          if name in inputs for f in entry["files"] if f["kind"] == "url"),
    ]  # fmt: skip
    paths = [
        executor.fixed_path(
            "sha256-" + base64.b64encode(bytes.fromhex(sha256)).decode(), name, recursive=False
        )
        for name, sha256 in pinned
    ]
    return len(executor.invalid_paths(paths)) if paths else 0


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
