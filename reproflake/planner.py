"""Predict, before building, which steps Nix will run and say why.

The prediction mirrors how Nix resolves content-addressed derivations: a step
runs again when one of its own ingredients changed, or when a step it needs
produced different bytes. When a needed step is about to run, whether this
one follows depends on that step's new output, so it "may build".

Each step is first compared with its record on its own (assess: the costly part),
then the graph decides (verdicts.decide: cheap, and shared with the plan's record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from reproflake.fingerprint import (
    Components,
    environment_components,
    environment_digest,
    own_components,
)
from reproflake.graph import Graph
from reproflake.lock.model import Lock
from reproflake.nixgen import Facts
from reproflake.spec import Spec
from reproflake.state import Built
from reproflake.verdicts import (
    NO_RECORD,
    OUTPUT_GONE,
    RECORDED,
    Assessment,
    StepPlan,
    decide,
    keyed_changes,
)


def components(
    spec: Spec, lock: Lock, facts: Facts, step: str, outputs: Mapping[str, str]
) -> Components:
    """All components of a step, given the outputs of the steps it needs."""
    comps = own_components(spec, lock, facts, step)
    for need in spec.steps[step].needs:
        comps[f"need:{need}"] = outputs[need]
    return comps


def _same_own(recorded: Mapping[str, str], own: Mapping[str, str], needs: Iterable[str]) -> bool:
    """Whether a record holds exactly ``own`` besides one `need:` entry per needed step: the
    common case, told without filtering every record's keys (a plan of 10,000 steps)."""
    needs = tuple(needs)
    return (
        len(recorded) == len(own) + len(needs)
        and all(f"need:{n}" in recorded for n in needs)
        and all(recorded.get(k) == v for k, v in own.items())
    )


def assess_all(
    spec: Spec,
    lock: Lock,
    facts: Facts,
    graph: Graph,
    state: Mapping[str, Built],
    invalid: Callable[[Iterable[str]], set[str]],
    *,
    environments: Mapping[str, Mapping[str, str]] | None = None,
    read_source: Callable[[str], str] | None = None,
) -> dict[str, Assessment]:
    """Every step compared with its record (see verdicts.Assessment). ``invalid``: which of
    the given store paths Nix does not have. ``read_source``: a source file's component,
    its sha256 and executable bit (default: read and hashed each time)."""
    missing = invalid(b.output for b in state.values())
    # Recorded environments, and the current ones, to tell a changed package by name.
    envs = dict(environments or {})
    for name in spec.environments:
        if name in lock.environments:
            envs[environment_digest(lock, name)] = environment_components(lock, name)
    assessed: dict[str, Assessment] = {}
    for step in graph.order():
        rec = state.get(step)
        if rec is None:
            assessed[step] = Assessment(NO_RECORD)
            continue
        if rec.output in missing:
            assessed[step] = Assessment(OUTPUT_GONE)
            continue
        # Hashing the step's sources is only worth it when there is a record to compare.
        own = own_components(spec, lock, facts, step, read_source)
        needs = spec.steps[step].needs
        recorded = rec.components
        if _same_own(recorded, own, needs):
            found: tuple[tuple[str, tuple[str, ...]], ...] = ()
        else:
            recorded_own = {k: v for k, v in recorded.items() if not k.startswith("need:")}
            found = keyed_changes(recorded_own, own, envs)
        stale = frozenset(
            n for n in needs if n in state and recorded.get(f"need:{n}") != state[n].output
        )
        sources = {
            k.removeprefix("source:"): recorded.get(k) for k in own if k.startswith("source:")
        }
        assessed[step] = Assessment(RECORDED, rec.output, found, stale, sources)
    return assessed


def plan(
    spec: Spec,
    lock: Lock,
    facts: Facts,
    graph: Graph,
    state: Mapping[str, Built],
    invalid: Callable[[Iterable[str]], set[str]],
    *,
    nix_asked: bool = False,
    environments: Mapping[str, Mapping[str, str]] | None = None,
    read_source: Callable[[str], str] | None = None,
) -> dict[str, StepPlan]:
    """Every step's verdict, from its assessment (assess_all) and the graph (decided)."""
    assessed = assess_all(
        spec, lock, facts, graph, state, invalid,
        environments=environments, read_source=read_source,
    )  # fmt: skip
    return decided(spec, graph, assessed, nix_asked=nix_asked)


def decided(
    spec: Spec, graph: Graph, assessed: Mapping[str, Assessment], *, nix_asked: bool = False
) -> dict[str, StepPlan]:
    """Every step's verdict from its assessment, in the graph's order (verdicts.decide;
    ``nix_asked``: see there)."""
    needs = {s: step.needs for s, step in spec.steps.items()}
    return decide(graph.order(), needs, assessed, nix_asked=nix_asked)
