"""What `build` would run and why, from the project as it is now, the steps' records and,
for steps without a record, Nix itself (shared by `plan`, `status`, `build --dry-run` and
`graph`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reproflake import executor, hardware, planner, remote, state
from reproflake.commands._project import Project
from reproflake.digests import SourceDigests
from reproflake.errors import NixError
from reproflake.verdicts import BLOCKED, BUILT, Assessment, StepPlan

FRONTIER = 200  # steps per dry run: Nix's dry run of content-addressed steps is costly
# Beyond this many steps without a record, asking Nix (which evaluates and copies the whole
# flake) costs more than the plan is worth: such steps are planned as not built.
ASK_NIX_UP_TO = 500

Plans = dict[str, StepPlan]


@dataclass
class Consulted:
    """What a plan learned from outside the project's files: the plan's record
    (commands/_plan_record.py) may keep only an answer whose every input it can check."""

    store: dict[str, bool] = field(default_factory=dict)  # store path → valid, as Nix said
    nix: bool = False  # Nix evaluated the flake and said which outputs it has
    hardware: bool = False  # the hardware gate: this machine's probe, the builders
    # Each step compared with its record, when the plan was decided from these alone: a
    # later edit then compares only the edited files' steps again (_plan_delta).
    assessed: dict[str, Assessment] | None = None
    wanted: list[str] | None = None  # the steps printed, when some were named (else all)


def compute(p: Project, consulted: Consulted | None = None) -> Plans:
    digests = SourceDigests(p.root)
    try:
        return _compute(p, digests, consulted if consulted is not None else Consulted())
    finally:
        digests.save()


def _compute(p: Project, digests: SourceDigests, seen: Consulted) -> Plans:
    records, environments = state.load_all(p.root)

    def invalid(paths: Iterable[str]) -> set[str]:
        asked = list(paths)
        found = executor.invalid_paths(asked)
        seen.store.update({path: path not in found for path in asked})
        return found

    def assess(records: Mapping[str, state.Built]) -> dict[str, Assessment]:
        return planner.assess_all(
            p.spec, p.lock, p.facts, p.graph, records, invalid,
            environments=environments, read_source=digests,
        )  # fmt: skip

    assessed = assess(records)
    plans = planner.decided(p.spec, p.graph, assessed)
    unknown = {s for s in plans if s not in records}
    if not unknown or len(unknown) > ASK_NIX_UP_TO or not _flake_is_current(p):
        seen.assessed = assessed
        return _blocked(p, plans, seen)
    # No record here (a fresh clone, another checkout): Nix itself may have built these
    # steps already. Ask it, without building, a frontier at a time: the unknown steps
    # whose needed steps are known to be built. What it has extends the frontier.
    had_records = bool(records)
    records = dict(records)
    outputs = {s: b.output for s, b in records.items()}
    asked: set[str] = set()
    learned_any = False
    seen.nix = True
    try:  # once: Nix 2.8 would read the flake again for every `.#step` it is given
        drvs = executor.derivations(p.root)
    except NixError:
        drvs = {}  # Nix cannot evaluate the flake: plan without asking it
    while drvs:
        frontier = [
            s
            for s in p.graph.order()
            if s in unknown - asked and all(n in outputs for n in p.spec.steps[s].needs)
        ][:FRONTIER]
        if not frontier:
            break
        asked.update(frontier)
        known = executor.known_outputs(p.root, frontier, drvs)
        for step in frontier:
            path = known.get(step)
            if path:
                comps = planner.components(p.spec, p.lock, p.facts, step, outputs)
                records[step] = state.Built(path, comps)
                outputs[step] = path
                learned_any = True
    # Early cutoff can spare a step only if it was built before, in some version; in a
    # project nothing of which was ever built here, everything will build.
    nix_asked = learned_any or had_records
    plans = planner.decided(p.spec, p.graph, assess(records), nix_asked=nix_asked)
    return _blocked(p, plans, seen)


def _blocked(p: Project, plans: Plans, seen: Consulted) -> Plans:
    """Steps to build whose hardware no machine offers: `build` would refuse them, in the
    same words (one gate, hardware.gate)."""
    needing = {
        s: hw.features()
        for s, pl in plans.items()
        if pl.status != BUILT and (hw := p.spec.steps[s].hardware) is not None
    }
    if not needing:
        return plans
    seen.hardware = True
    # The builders `build` would hand Nix (the user's [[builders]]): a step only one of
    # them can build is planned there, not refused.
    offers = remote.load(p.spec.cache.urls, p.spec.cache.public_keys).offers()
    g = hardware.gate(needing, builders=offers)
    for step in g.unbuildable:
        plans[step] = StepPlan(step, BLOCKED, (g.why(step),))
    for step, uri in g.remote.items():
        pl = plans[step]
        plans[step] = pl._replace(reasons=(*pl.reasons, f"on the remote builder {uri}"))
    return plans


def _flake_is_current(p: Project) -> bool:
    """Whether the generated flake on disk is what this spec and lock generate."""
    data = p.data
    try:
        on_disk = json.loads((p.root / ".reproflake/build.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(on_disk == json.loads(json.dumps(data)))
