"""`reproflake verify`: build steps a second time, independently, and compare bytes.

Step outputs are content-addressed, so Nix's own ``--check`` cannot see a
difference (a different output is simply another valid path). Instead the
flake exposes each step again with extra attributes: Nix must run it afresh,
and a reproducible step lands on exactly the same store path. The second build
varies what a step must not depend on, as reprotest does (the clock, the CPUs
visible, the host name, the umask, address randomisation: nix/step.sh), so
"reproducible" means more than "twice alike on one machine". Differing files are
named, with diffoscope's report when it is installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproflake import compare, executor
from reproflake._paths import LEGACY
from reproflake.commands import _remote
from reproflake.commands._project import (
    Log,
    Project,
    generate,
    labels,
    load_project,
    store_items,
)
from reproflake.commands._steps import build_steps, hardware_features, link_results, select
from reproflake.errors import BuildError

# What the varied rebuild changes (nix/step.sh applies each inside the sandbox).
VARIATIONS = ("aslr", "cpus", "hostname", "time", "umask")
DESCRIBE = {
    "aslr": "address space randomisation on (Nix builds without it)",
    "cpus": "the CPU count (OMP_NUM_THREADS=3, affinity narrowed to one CPU)",
    "hostname": "another host and domain name",
    "time": "the clock 400 days ahead (libfaketime)",
    "umask": "umask 0002",
}


def variation_set(vary: Sequence[str]) -> str:
    """The flake's name for a set of variations (legacyPackages.verifyVaried.NAME)."""
    chosen = sorted(set(vary))
    return "_".join(chosen) if chosen else "none"


def _cannot_vary(p: Project, wanted: Sequence[str], vary: Sequence[str]) -> dict[str, str]:
    """Variations asked for that cannot change anything here, and why: said, not hidden."""
    missing: dict[str, str] = {}
    if "time" in vary:
        envs = sorted({p.spec.steps[s].env for s in wanted})
        without = [
            e
            for e in envs
            if not any(p.lock.debs[k].package == "libfaketime" for k in p.lock.environments[e].debs)
        ]
        if without:
            missing["time"] = f"no libfaketime in environment(s) {', '.join(without)}"
    return missing


# A verdict per step, environment and the seed (`verify --json`, docs/commands.md).
IDENTICAL = "identical"
DIFFERENT = "different"
WITHIN_TOLERANCE = "within-tolerance"
COULD_NOT_VERIFY = "could-not-verify"
VERDICTS = (IDENTICAL, DIFFERENT, WITHIN_TOLERANCE, COULD_NOT_VERIFY)


@dataclass
class Report:
    """What verify found, for `--json`; the text output says the same as it goes."""

    varied: list[str]
    not_varied: dict[str, str]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        every = [*self.steps.values(), *self.environments.values(), self.seed]
        return {
            "varied": self.varied,
            "not_varied": self.not_varied,
            "steps": self.steps,
            "environments": self.environments,
            "seed": self.seed,
            "summary": {v: sum(1 for e in every if e["verdict"] == v) for v in VERDICTS},
        }


def _recheck_entry(check: executor.Recheck) -> dict[str, Any]:
    verdict = IDENTICAL if check.same else DIFFERENT if check.differs else COULD_NOT_VERIFY
    return {"verdict": verdict, "log_tail": list(check.detail)}


def run(
    start: Path,
    steps: Sequence[str],
    *,
    log: Log,
    out: Log,
    jobs: int | None = None,
    vary: Sequence[str] = VARIATIONS,
    as_json: bool = False,
) -> int:
    executor.require_nix()
    p = load_project(start, log, steps=steps)
    wanted = select(p, steps)
    generate(p)
    needed = sorted(p.graph.upstream(wanted))
    executor.ensure_in_store(store_items(p, needed, seed=True))
    features, _host = hardware_features(p, needed, _remote.builders_only(p).offers())
    first = build_steps(p.root, wanted, log, labels=labels(p), features=features, jobs=jobs)
    if first.failed:
        raise BuildError(
            f"cannot verify: step(s) failed to build: {', '.join(sorted(first.failed))}"
        )
    link_results(p, first.outputs)
    human = out
    if as_json:
        out = lambda _line: None  # noqa: E731 - the JSON document at the end says it all
    report = Report(sorted(vary), _cannot_vary(p, wanted, vary))
    out(
        "varied in the second build: " + ("; ".join(DESCRIBE[v] for v in sorted(vary)) or "nothing")
    )
    for what, why in sorted(report.not_varied.items()):
        out(f"  not varied: {what}: {why}")
    second = build_steps(
        p.root,
        wanted,
        log,
        which=f"{executor.VERIFY_VARIED}.{variation_set(vary)}",
        features=features,
        jobs=jobs,
    )
    bad: list[str] = []
    unverified: list[str] = []
    for step in wanted:
        a = first.outputs.get(step)
        b = second.outputs.get(step)
        entry: dict[str, Any] = {"first": a, "second": b, "files": [], "log": None}
        entry["log_tail"] = []
        if step in second.failed or b is None:
            # A build that did not finish says nothing about the bytes.
            unverified.append(step)
            entry["verdict"] = COULD_NOT_VERIFY
            entry["log_tail"] = list(second.failed.get(step, second.errors[-10:]))
            out(f"  {step}: could not verify: the second build failed")
            for line in entry["log_tail"]:
                out(f"    | {line}")
            if step in second.drvs:
                entry["log"] = executor.log_command(second.drvs[step])
                out(f"    full log: {entry['log']}")
        elif a != b:
            assert a is not None  # the first build succeeded for every wanted step
            failing, files = _report_files(p, step, Path(a), Path(b), out, explain=not as_json)
            entry["verdict"] = DIFFERENT if failing else WITHIN_TOLERANCE
            entry["files"] = files
            if failing:
                bad.append(step)
        else:
            entry["verdict"] = IDENTICAL
            out(f"  {step}: reproducible (built twice, identical bytes: {a})")
        report.steps[step] = entry
    for env in sorted({p.spec.steps[s].env for s in wanted}):
        what = f"environment {env}"
        check = executor.rebuild_matches(p.root, f"{LEGACY}.environments.{env}")
        report.environments[env] = _recheck_entry(check)
        if check.same:
            out(f"  {what}: reproducible (root filesystem rebuilt, identical bytes)")
        elif check.differs:
            bad.append(what)
            out(f"  {what}: NOT reproducible (its root filesystem differs when rebuilt)")
        else:
            unverified.append(what)
            _could_not(out, what, check)
    seed = p.lock.seed
    check = executor.check_seed(p.root)
    report.seed = _recheck_entry(check)
    origin = f"./bin/busybox in its pinned {seed.package} {seed.version}"
    if check.same:
        out(f"  seed: .reproflake/seed/busybox is identical to {origin}")
    elif check.differs:
        bad.append("seed")
        out(f"  seed: .reproflake/seed/busybox DIFFERS from {origin}")
    else:
        unverified.append("seed")
        _could_not(out, "seed", check)
    if as_json:
        human(json.dumps(report.document(), indent=2, sort_keys=True))
        return 1 if bad or unverified else 0
    if bad:
        raise BuildError(
            f"{len(bad)} step(s) are not bit-for-bit reproducible: {', '.join(bad)}",
            hint="look for timestamps, random seeds, thread counts or unordered output in these steps",
        )
    if unverified:
        raise BuildError(
            f"could not verify {len(unverified)} item(s): {', '.join(unverified)} "
            "(their rebuild failed; nothing is known about their bytes)",
            hint="see the output above; fix what stopped the rebuild and run verify again",
        )
    out(f"verified {len(wanted)} step(s): all reproducible")
    return 0


def _could_not(out: Log, what: str, check: executor.Recheck) -> None:
    out(f"  {what}: could not verify: the rebuild failed")
    for line in check.detail:
        out(f"    | {line}")


def _report_files(
    p: Project, step: str, a: Path, b: Path, out: Log, *, explain: bool = True
) -> tuple[bool, list[dict[str, str]]]:
    """Name every file the two builds disagree on. Whether any differs beyond what the
    spec declares acceptable, and each such file (``path``, ``verdict``, ``detail``)."""
    spec_step = p.spec.steps[step]
    policy = compare.Policy(spec_step.unreproducible, spec_step.tolerance)
    verdicts = compare.compare_trees(a, b, policy)
    failing = [v for v in verdicts if v.verdict not in OK]
    accepted = [v for v in verdicts if v.verdict in ACCEPTED]
    if failing:
        out(f"  {step}: NOT reproducible: first build {a}, second build {b}")
    else:
        out(f"  {step}: within tolerance (declared in the spec; the bytes differ: {a} vs {b})")
    files = []
    for v in accepted + failing:
        name = f"results/{step}/{v.path}" if v.path else f"results/{step}"
        files.append({"path": name, "verdict": v.verdict.replace(" ", "-"), "detail": v.detail})
        out(f"    {v.verdict}: {name}" + (f" ({v.detail})" if v.detail else ""))
        if explain and v.verdict == compare.DIFFERENT:
            for line in compare.explain(a / v.path if v.path else a, b / v.path if v.path else b):
                out(f"      {line}")
    if failing and compare.diffoscope_available() is None:
        out(f"    compare them: diff -r {a} {b} (or install diffoscope for a full report)")
    return bool(failing), files


ACCEPTED = frozenset({compare.WITHIN_TOLERANCE, compare.UNREPRODUCIBLE})
OK = ACCEPTED | {compare.IDENTICAL}
