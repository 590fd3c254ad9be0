"""Each step's verdict (built, will build, may build), from how the step compares with its
record and from the verdicts of the steps it needs.

The comparison (planner.assess) is the costly part: the spec, the lock, every source's
hash. Walking the graph with those comparisons is cheap and needs none of it, so it lives
here, with no heavy imports: the plan's record brings a plan up to date after an edit by
comparing only the edited files' steps again and deciding the rest from what it kept
(commands/_plan_delta.py). Both paths decide with the same function.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

BUILT = "built"
WILL = "will-build"
MAY = "may-build"
BLOCKED = "cannot-build"  # no machine offers the hardware it declares

# How a step's record stands (Assessment.record).
NO_RECORD = "none"  # never built here with these inputs
OUTPUT_GONE = "gone"  # built, but its output left the Nix store
RECORDED = "recorded"

Changes = tuple[tuple[str, tuple[str, ...]], ...]  # component key → what changed, in words


class StepPlan(NamedTuple):
    """A step's verdict, and why. (Named tuples here: a plan makes one per step, and a
    plan brought up to date from its record has little else to do.)"""

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


class Assessment(NamedTuple):
    """A step compared with its record, leaving aside the steps it needs."""

    record: str  # NO_RECORD, OUTPUT_GONE or RECORDED
    output: str | None = None  # the recorded output (RECORDED)
    changes: Changes = ()  # its own components that differ from the record, sorted by key
    # Needed steps whose recorded output is not the one this step was built with.
    stale_needs: frozenset[str] = frozenset()
    # Each source file → its component in the record (source_component; None: not in
    # it), for a later edit.
    sources: Mapping[str, str | None] | None = None


def decide(
    order: Iterable[str],
    needs: Mapping[str, Sequence[str]],
    assessed: Mapping[str, Assessment],
    *,
    nix_asked: bool = False,
) -> dict[str, StepPlan]:
    """Every step's verdict, in ``order`` (each step after the steps it needs).

    ``nix_asked``: Nix itself was asked about the steps without a record (see
    commands/_plan.py); one of them may then still be spared by early cutoff."""
    plans: dict[str, StepPlan] = {}
    for step in order:
        a = assessed[step]
        wanted = needs.get(step, ())
        if a.record != RECORDED:
            why = (
                "it has not been built on this machine with these inputs"
                if a.record == NO_RECORD
                else "its output is no longer in the Nix store"
            )
            # Whether it runs may still hang on what a step it needs produces (asked only
            # when it can matter: nothing built here, every step simply builds).
            pending = _pending(wanted, plans) if a.record == NO_RECORD and nix_asked else []
            status = MAY if pending else WILL
            plans[step] = StepPlan(step, status, tuple(pending) if status == MAY else (why,))
            continue
        pending = _pending(wanted, plans)
        reasons = [text for _key, texts in a.changes for text in texts]
        for need in wanted:
            if plans[need].status == BUILT and need in a.stale_needs:
                reasons.append(f"needs {need}, whose output changed since this step was built")
        if reasons:
            plans[step] = StepPlan(step, WILL, tuple(reasons + pending))
        elif pending:
            plans[step] = StepPlan(step, MAY, tuple(pending))
        else:
            plans[step] = StepPlan(step, BUILT, (), a.output)
    return plans


def _pending(needs: Sequence[str], plans: Mapping[str, StepPlan]) -> list[str]:
    """Why a step may run again because of the steps it needs (empty if they are built)."""
    pending: list[str] = []
    for need in needs:
        upstream = plans[need]
        if upstream.status == WILL:
            why = upstream.reasons[0] if upstream.reasons else "it changed"
            pending.append(f"needs {need}, which will build because {why}")
        elif upstream.status == MAY:
            # Name the root cause once rather than nesting the chain.
            for reason in upstream.reasons:
                if reason not in pending:
                    pending.append(reason)
    return pending


# --------------------------------------------------------------------------- sources

EXECUTABLE = " executable"


def source_component(sha256: str, mode: int) -> str:
    """A source file as its step's derivation takes it. Nix copies the file into the store
    as a NAR, which keeps its bytes and whether its owner may execute it, nothing else of
    its mode: `chmod +x` makes another derivation, `chmod g+w` does not."""
    return sha256 + EXECUTABLE if executable(mode) else sha256


def executable(mode: int) -> bool:
    """Whether Nix's copy of a file of this mode is executable: its owner's bit."""
    return bool(mode & 0o100)


def _describe_source(name: str, old: str, new: str) -> str:
    old_sha, old_x = old.removesuffix(EXECUTABLE), old.endswith(EXECUTABLE)
    new_sha, new_x = new.removesuffix(EXECUTABLE), new.endswith(EXECUTABLE)
    mode = ""
    if old_x != new_x:
        mode = "became executable" if new_x else "is no longer executable"
    if old_sha == new_sha:
        return f"{name} {mode}"
    changed = f"{name} changed (sha256 {old_sha[:4]}… → {new_sha[:4]}…)"
    return f"{changed} and {mode}" if mode else changed


# --------------------------------------------------------------------------- in words


def describe(key: str, old: str | None, new: str | None) -> str:
    """One change in plain words."""
    kind, _, name = key.partition(":")
    if old is None:
        return f"{_noun(kind, name)} was added"
    if new is None:
        return f"{_noun(kind, name)} was removed"
    if kind == "source":
        return _describe_source(name, old, new)
    if kind in ("deb", "wheel"):
        return f"{_noun(kind, name)} changed ({old.split()[0]} → {new.split()[0]})"
    if kind == "input":
        return f"input {name} changed ({_short(old)}… → {_short(new)}…)"
    if kind == "variable":
        return f"variable {name} changed ({old!r} → {new!r})"
    if kind == "need":
        return f"the output of {name} changed"
    if kind == "hardware":
        return f"hardware constraints changed ({old} → {new})"
    return f"{key} changed"


def _noun(kind: str, name: str) -> str:
    return {
        "source": f"source file {name}",
        "deb": f"Debian package {name}",
        "wheel": f"wheel {name}",
        "input": f"input {name}",
        "variable": f"variable {name}",
        "need": f"needed step {name}",
    }.get(kind, kind)


def _short(value: str) -> str:
    from reproflake.lock.hashing import short

    first = value.split()[0]
    return short(first) if first.startswith("sha256-") else first[:8]


def keyed_changes(
    old: Mapping[str, str],
    new: Mapping[str, str],
    envs: Mapping[str, Mapping[str, str]] | None = None,
) -> Changes:
    """What differs, in words, by component key (sorted). ``envs`` maps environment
    digests to their pins, so a changed environment is told package by package."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) == new.get(k):
            continue
        if k == "environment-pins" and envs is not None:
            a, b = envs.get(old.get(k) or ""), envs.get(new.get(k) or "")
            if a is not None and b is not None:
                found.append((k, changes(a, b)))
            else:
                found.append((k, ("the environment's packages changed",)))
            continue
        found.append((k, (describe(k, old.get(k), new.get(k)),)))
    return tuple(found)


def changes(
    old: Mapping[str, str],
    new: Mapping[str, str],
    envs: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[str, ...]:
    """What differs, in words (see keyed_changes)."""
    return tuple(text for _key, texts in keyed_changes(old, new, envs) for text in texts)


def with_source(found: Changes, rel: str, recorded: str | None, now: str) -> Changes:
    """``found`` with source file ``rel`` compared again: its component (source_component)
    is now ``now``."""
    key = f"source:{rel}"
    kept = [entry for entry in found if entry[0] != key]
    if recorded != now:
        kept.append((key, (describe(key, recorded, now),)))
        kept.sort(key=lambda entry: entry[0])
    return tuple(kept)


# --------------------------------------------------------------------------- as printed

_SHORT = {BUILT: "built", WILL: "will build", MAY: "may build", BLOCKED: "cannot build here"}


def render(plans: Sequence[StepPlan], form: str) -> list[str]:
    """What `plan` (``form`` "plan" or "json") and `status` ("status") print."""
    if form == "json":
        doc = [
            {"step": pl.step, "status": pl.status, "reasons": list(pl.reasons), "output": pl.output}
            for pl in plans
        ]
        return [json.dumps(doc, indent=2)]
    width = max((len(pl.step) for pl in plans), default=0)
    # `status`: one word per step, for a quick look; `plan`: the reasons too. One write:
    # a line at a time costs more than the plan itself at 10,000 steps.
    short = form == "status"
    lines = [f"{pl.step:<{width}}  {_SHORT[pl.status]}" if short else pl.line() for pl in plans]
    printed = ["\n".join(lines)] if lines else []
    counts = {k: sum(1 for pl in plans if pl.status == k) for k in _SHORT}
    blocked = f", {counts[BLOCKED]} cannot build here" if counts[BLOCKED] else ""
    printed.append(
        f"summary: {counts[WILL]} will build, {counts[MAY]} may build "
        f"(if what they need changes), {counts[BUILT]} already built{blocked}"
    )
    return printed
