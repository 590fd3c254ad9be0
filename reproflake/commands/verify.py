"""`reproflake verify`: build steps a second time, independently, and compare bytes.

Step outputs are content-addressed, so Nix's own ``--check`` cannot see a
difference (a different output is simply another valid path). Instead the
flake exposes each step again with one extra attribute: Nix must run it
afresh, and a reproducible step lands on exactly the same store path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reproflake import executor
from reproflake.commands._project import Log, generate, labels, load_project, store_items
from reproflake.commands.build import Progress, hardware_features, link_results, select
from reproflake.errors import BuildError


def run(start: Path, steps: Sequence[str], *, log: Log, out: Log, jobs: int | None = None) -> int:
    executor.require_nix()
    p = load_project(start, log, steps=steps)
    wanted = select(p, steps)
    generate(p)
    needed = sorted(p.graph.upstream(wanted))
    executor.ensure_in_store(store_items(p, needed, seed=True))
    features, _host = hardware_features(p, needed)
    first = executor.build(
        p.root, wanted, Progress(log), labels=labels(p), features=features, jobs=jobs
    )
    if first.failed:
        raise BuildError(
            f"cannot verify: step(s) failed to build: {', '.join(sorted(first.failed))}"
        )
    link_results(p, first.outputs)
    second = executor.build(
        p.root, wanted, Progress(log), which=executor.VERIFY, features=features, jobs=jobs
    )
    bad: list[str] = []
    unverified: list[str] = []
    for step in wanted:
        a = first.outputs.get(step)
        b = second.outputs.get(step)
        if step in second.failed or b is None:
            # A build that did not finish says nothing about the bytes.
            unverified.append(step)
            out(f"  {step}: could not verify: the second build failed")
            for line in second.failed.get(step, second.errors[-10:]):
                out(f"    | {line}")
            if step in second.drvs:
                out(f"    full log: {executor.log_command(second.drvs[step])}")
        elif a != b:
            bad.append(step)
            out(f"  {step}: NOT reproducible: first build {a}, second build {b}")
            out(f"    compare them: diff -r {a} {b}")
        else:
            out(f"  {step}: reproducible (built twice, identical bytes: {a})")
    for env in sorted({p.spec.steps[s].env for s in wanted}):
        what = f"environment {env}"
        check = executor.rebuild_matches(p.root, f"legacyPackages.x86_64-linux.environments.{env}")
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
    origin = f"./bin/busybox in its pinned {seed.package} {seed.version}"
    if check.same:
        out(f"  seed: .reproflake/seed/busybox is identical to {origin}")
    elif check.differs:
        bad.append("seed")
        out(f"  seed: .reproflake/seed/busybox DIFFERS from {origin}")
    else:
        unverified.append("seed")
        _could_not(out, "seed", check)
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
