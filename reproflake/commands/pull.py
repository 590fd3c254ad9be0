"""`reproflake pull`: fetch steps' results from the caches without building anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reproflake import executor
from reproflake.commands import _remote
from reproflake.commands._project import Log, generate, load_project
from reproflake.commands._steps import RESULTS, build_steps, link_results, select
from reproflake.errors import BuildError, UsageError


def run(start: Path, steps: Sequence[str], *, log: Log, out: Log) -> int:
    executor.require_nix()
    p = load_project(start, log, steps=steps)
    wanted = select(p, steps)
    generate(p)
    order = [s for s in p.graph.order() if s in p.graph.upstream(wanted)]
    r = _remote.setup(p, log)
    if not r.caches:
        if r.source and not (p.spec.cache.urls or r.caches):
            raise UsageError(
                "no binary cache is configured",
                hint=f"add [cache] urls and public_keys to reproflake.toml or {r.source}",
            )
        raise BuildError(
            f"no cache answers: could not get {', '.join(order)}",
            hint="check the cache (or the network) and try again, or `reproflake build`",
        )
    outcome = build_steps(p.root, order, log, substitute_only=True)
    _remote.refuse_unsigned(r, outcome, order, log)
    got = {s: outcome.outputs[s] for s in order if s in outcome.outputs}
    link_results(p, got)
    for step in order:
        if step in got:
            out(f"  {RESULTS}/{step} -> {got[step]}")
    lacking = [s for s in order if s not in got]
    out(f"summary: {len(got)} pulled, {len(lacking)} not in the cache")
    if lacking:
        raise BuildError(
            f"the cache lacks {len(lacking)} step(s): {', '.join(lacking)}",
            hint="build them with `reproflake build` (and `reproflake push` them)",
        )
    return 0
