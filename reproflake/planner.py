"""Predict, before building, which steps Nix will run and say why.

The prediction mirrors how Nix resolves content-addressed derivations: a step
runs again when one of its own ingredients changed, or when a step it needs
produced different bytes. When a needed step is about to run, whether this
one follows depends on that step's new output, so it "may build".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from reproflake.fingerprint import (
    Components,
    changes,
    environment_components,
    environment_digest,
    own_components,
)
from reproflake.graph import Graph
from reproflake.lock.model import Lock
from reproflake.nixgen import Facts
from reproflake.spec import Spec
from reproflake.state import Built

BUILT = "built"
WILL = "will-build"
MAY = "may-build"
BLOCKED = "cannot-build"  # no machine offers the hardware it declares


@dataclass(frozen=True)
class StepPlan:
    step: str
    status: str
    reasons: tuple[str, ...]
    output: str | None = None

    def line(self) -> str:
        if self.status == BUILT:
            return f"{self.step}: already built"
        if self.status == BLOCKED:
            return f"{self.step}: cannot build here — " + "; ".join(self.reasons)
        head = "will build" if self.status == WILL else "will build if what it needs changes"
        return f"{self.step}: {head} — " + "; ".join(self.reasons)


def components(
    spec: Spec, lock: Lock, facts: Facts, step: str, outputs: Mapping[str, str]
) -> Components:
    """All components of a step, given the outputs of the steps it needs."""
    comps = own_components(spec, lock, facts, step)
    for need in spec.steps[step].needs:
        comps[f"need:{need}"] = outputs[need]
    return comps


def _pending(spec: Spec, step: str, plans: Mapping[str, StepPlan]) -> list[str]:
    """Why a step may run again because of the steps it needs (empty if they are built)."""
    pending: list[str] = []
    for need in spec.steps[step].needs:
        upstream = plans[need]
        if upstream.status == WILL:
            why = upstream.reasons[0] if upstream.reasons else "it changed"
            pending.append(f"needs {need}, which will build because {why}")
        elif upstream.status == MAY:
            # Name the root cause once rather than nesting the chain.
            pending.extend(r for r in upstream.reasons if r not in pending)
    return pending


def _same_own(recorded: Mapping[str, str], own: Mapping[str, str], needs: Iterable[str]) -> bool:
    """Whether a record holds exactly ``own`` besides one `need:` entry per needed step: the
    common case, told without filtering every record's keys (a plan of 10,000 steps)."""
    needs = tuple(needs)
    return (
        len(recorded) == len(own) + len(needs)
        and all(f"need:{n}" in recorded for n in needs)
        and all(recorded.get(k) == v for k, v in own.items())
    )


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
    source_hash: Callable[[str], str] | None = None,
) -> dict[str, StepPlan]:
    """``nix_asked``: Nix itself was asked about the steps without a record (see
    commands/_plan.py); one of them may then still be spared by early cutoff.
    ``source_hash``: a source file's sha256 (default: read and hashed each time)."""
    missing = invalid(b.output for b in state.values())
    # Recorded environments, and the current ones, to tell a changed package by name.
    envs = dict(environments or {})
    for name in spec.environments:
        if name in lock.environments:
            envs[environment_digest(lock, name)] = environment_components(lock, name)
    plans: dict[str, StepPlan] = {}
    for step in graph.order():
        rec = state.get(step)
        if rec is None or rec.output in missing:
            why = (
                "it has not been built on this machine with these inputs"
                if rec is None
                else "its output is no longer in the Nix store"
            )
            # Whether it runs may still hang on what a step it needs produces (asked only
            # when it can matter: nothing built here, every step simply builds).
            pending = _pending(spec, step, plans) if rec is None and nix_asked else []
            status = MAY if pending else WILL
            plans[step] = StepPlan(step, status, tuple(pending) if status == MAY else (why,))
            continue
        pending = _pending(spec, step, plans)
        # Hashing the step's sources is only worth it when there is a record to compare.
        own = own_components(spec, lock, facts, step, source_hash)
        needs = spec.steps[step].needs
        if _same_own(rec.components, own, needs):
            reasons = []
        else:
            recorded_own = {k: v for k, v in rec.components.items() if not k.startswith("need:")}
            reasons = changes(recorded_own, own, envs)
        for need in needs:
            upstream = plans[need]
            if upstream.status == BUILT and rec.components.get(f"need:{need}") != upstream.output:
                reasons.append(f"needs {need}, whose output changed since this step was built")
        if reasons:
            plans[step] = StepPlan(step, WILL, tuple(reasons + pending))
        elif pending:
            plans[step] = StepPlan(step, MAY, tuple(pending))
        else:
            plans[step] = StepPlan(step, BUILT, (), rec.output)
    return plans
