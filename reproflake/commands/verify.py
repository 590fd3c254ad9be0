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
    p = load_project(start, log)
    wanted = select(p, steps)
    generate(p)
    executor.ensure_in_store(store_items(p))
    features, _host = hardware_features(p, sorted(p.graph.upstream(wanted)))
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
    bad = []
    for step in wanted:
        a = first.outputs.get(step)
        b = second.outputs.get(step)
        if step in second.failed or a != b:
            bad.append(step)
            out(f"  {step}: NOT reproducible: first build {a}, second build {b or 'failed'}")
            if a and b:
                out(f"    compare them: diff -r {a} {b}")
        else:
            out(f"  {step}: reproducible (built twice, identical bytes: {a})")
    for env in sorted({p.spec.steps[s].env for s in wanted}):
        if executor.rebuild_matches(p.root, f"legacyPackages.x86_64-linux.environments.{env}"):
            out(f"  environment {env}: reproducible (root filesystem rebuilt, identical bytes)")
        else:
            bad.append(f"environment {env}")
            out(f"  environment {env}: NOT reproducible (its root filesystem differs when rebuilt)")
    seed = p.lock.seed
    if executor.check_seed(p.root):
        out(
            f"  seed: .reproflake/seed/busybox is identical to ./bin/busybox in its pinned "
            f"{seed.package} {seed.version}"
        )
    else:
        bad.append("seed")
        out(
            f"  seed: .reproflake/seed/busybox DIFFERS from ./bin/busybox in its pinned "
            f"{seed.package} {seed.version}"
        )
    if bad:
        raise BuildError(
            f"{len(bad)} step(s) are not bit-for-bit reproducible: {', '.join(bad)}",
            hint="look for timestamps, random seeds, thread counts or unordered output in these steps",
        )
    out(f"verified {len(wanted)} step(s): all reproducible")
    return 0
