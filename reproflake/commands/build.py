"""`reproflake build`: build steps in Nix's sandbox and link their results."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from reproflake import executor, gcroots, state
from reproflake.artifacts.provenance import build_record
from reproflake.commands import _noop, _remote
from reproflake.commands._project import (
    Log,
    Project,
    generate,
    labels,
    load_project,
    store_items,
)
from reproflake.commands._steps import (
    RESULTS,
    Progress,
    files_to_fetch,
    hardware_features,
    link_results,
    select,
    unlink_stale_result,
)
from reproflake.errors import BuildError
from reproflake.fingerprint import (
    Components,
    environment_components,
    environment_digest,
    own_components,
)
from reproflake.fsutil import write_atomic
from reproflake.hardware import HostProfile
from reproflake.remote import Remote

JSON_STATUSES = ("built", "fetched", "already-built", "failed", "not-built")


def provenance(p: Project, host: HostProfile, outcome: executor.BuildOutcome) -> None:
    """Record where and from what each result was built (deterministic JSON, local cache)."""
    gpu_steps = [
        s for s, step in p.spec.steps.items() if step.hardware and step.hardware.gpu is not None
    ]
    doc = build_record(
        host,
        hashlib.sha256((p.root / "reproflake.lock").read_bytes()).hexdigest(),
        outcome.outputs,
        outcome.built,
        outcome.machines,
        gpu_steps,
    )
    write_atomic(
        p.root / ".reproflake/cache/provenance.json",
        json.dumps(doc, indent=2, sort_keys=True) + "\n",
    )


def snapshot(p: Project, order: Sequence[str]) -> dict[str, object]:
    """What the no-op stamp compares next time, taken before the build reads anything."""
    patterns = [pat for s in order for pat in p.spec.steps[s].sources]
    paths: list[str] = []
    for name in {i for s in order for i in p.spec.steps[s].inputs}:
        item = p.spec.inputs[name]
        if item.path is not None and not item.is_url:
            (patterns if item.is_glob else paths).append(item.path)
    paths += [".reproflake/lib"]
    # The globs as this command matched them: what the build reads is what is recorded.
    return _noop.snapshot(p.root, patterns, paths, globs=p.facts.globs)


def record(p: Project, own: dict[str, Components], outputs: dict[str, str]) -> None:
    """Remember what each step was built from, for `reproflake plan`.

    ``own`` was computed before the build, so an edit during it is not mistaken for
    what was built."""
    built, environments = state.load_all(p.root)
    for step, comps in own.items():
        if step in outputs and all(n in outputs for n in p.spec.steps[step].needs):
            full = {**comps, **{f"need:{n}": outputs[n] for n in p.spec.steps[step].needs}}
            built[step] = state.Built(outputs[step], full)
    for env in {p.spec.steps[s].env for s in own}:
        environments[environment_digest(p.lock, env)] = environment_components(p.lock, env)
    state.save(p.root, built, environments)


def _build(
    p: Project,
    order: Sequence[str],
    progress: Progress,
    remote: Remote,
    features: Sequence[str],
    jobs: int | None,
    keep_going: bool,
    log: Log,
) -> executor.BuildOutcome:
    """Nix builds the steps; what a cache offered unsigned is built here instead."""
    outcome = executor.build(
        p.root, order, progress, on_status=progress.status, labels=labels(p),
        features=features, jobs=jobs, keep_going=keep_going,
    )  # fmt: skip
    if _remote.refuse_unsigned(remote, outcome, order, log):
        # Built here instead, with no cache: what the cache offered is not used again.
        executor.configure_remote(builders=remote.builders_setting())
        again = executor.build(
            p.root, order, progress, on_status=progress.status, labels=labels(p),
            features=features, jobs=jobs,
        )  # fmt: skip
        again.substituted |= outcome.substituted
        outcome = again
    return outcome


def run(
    start: Path,
    steps: Sequence[str],
    *,
    log: Log,
    out: Log,
    jobs: int | None = None,
    keep_going: bool = True,
    as_json: bool = False,
) -> int:
    executor.require_nix()
    p = load_project(start, log, steps=steps)
    wanted = select(p, steps)
    generate(p)
    # Ask for what the wanted steps need too, so every output is known and recorded.
    needed = p.graph.upstream(wanted)
    order = [s for s in p.graph.order() if s in needed]
    added = executor.ensure_in_store(store_items(p, order))
    for what in added:
        log(f"added {what} to the Nix store")
    progress = Progress(log)
    progress.expected_files = files_to_fetch(p, order)
    remote = _remote.setup(p, log)
    features, host = hardware_features(p, order, remote.offers())
    own = {s: own_components(p.spec, p.lock, p.facts, s) for s in order}
    before = snapshot(p, order)
    try:
        outcome = _build(p, order, progress, remote, features, jobs, keep_going, log)
    except BaseException:
        progress.clear()  # an error (or Ctrl-C) is not written after the status line
        raise
    record(p, own, outcome.outputs)
    state.remember_built(p.root, outcome.drvs)
    provenance(p, host, outcome)
    link_results(p, outcome.outputs)

    # Every step involved counts: the requested ones and the steps they need.
    built = [s for s in order if s in outcome.outputs and s in outcome.built]
    fetched = [
        s
        for s in order
        if s in outcome.outputs
        and s not in outcome.built
        and outcome.outputs[s] in outcome.substituted
    ]
    already = [
        s for s in order if s in outcome.outputs and s not in outcome.built and s not in fetched
    ]
    progress.finish(len(built))
    human = out
    if as_json:
        out = lambda _line: None  # noqa: E731 - the JSON document below says it all
    for step, lines in sorted(outcome.failed.items()):
        out(f"\nstep {step} failed; last lines of its log:")
        for line in lines:
            out(f"  | {line}")
        out(f"  full log: {executor.log_command(outcome.drvs.get(step, '<drv>'))}")
    skipped = [s for s in order if s not in outcome.outputs and s not in outcome.failed]
    parts = [
        f"{len(built)} built",
        *([f"{len(fetched)} fetched from a cache"] if fetched else []),
        f"{len(already)} already built",
        f"{len(outcome.failed)} failed",
    ]
    if skipped:
        parts.append(f"{len(skipped)} not built (a step they need failed)")
    out("summary: " + ", ".join(parts))
    for step in order:
        if step in outcome.outputs:
            out(f"  {RESULTS}/{step} -> {outcome.outputs[step]}")
    for step in [*sorted(outcome.failed), *skipped]:
        if unlink_stale_result(p.root, step):
            out(f"  {RESULTS}/{step} removed: it was an older output, not what this spec builds")
    if not outcome.failed and not skipped:
        # What the next build needs (environments, fetched files) survives garbage collection.
        gcroots.keep_lock(p.root)
        outputs = {s: outcome.outputs[s] for s in order}
        _noop.record(p.root, steps, before, order, outputs, outcome.derivations)
    if as_json:
        status = {s: "built" for s in built}
        status.update({s: "fetched" for s in fetched})
        status.update({s: "already-built" for s in already})
        status.update({s: "failed" for s in outcome.failed})
        status.update({s: "not-built" for s in skipped})
        doc = {
            "steps": {
                s: {
                    "status": status[s],
                    "output": outcome.outputs.get(s),
                    "seconds": progress.seconds.get(s),
                    "log": executor.log_command(outcome.drvs[s]) if s in outcome.drvs else None,
                }
                for s in order
            },
            "summary": {k: sum(1 for v in status.values() if v == k) for k in JSON_STATUSES},
        }
        human(json.dumps(doc, indent=2, sort_keys=True))
        return 1 if outcome.failed or skipped else 0
    if outcome.failed or skipped:
        raise BuildError(
            f"{len(outcome.failed)} step(s) failed: {', '.join(sorted(outcome.failed))}",
            hint="fix the step and run `reproflake build` again; finished steps are not rebuilt",
        )
    return 0
