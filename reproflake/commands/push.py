"""`reproflake push`: sign and upload steps' results, and what they need, to a binary cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reproflake import executor
from reproflake.commands import _remote
from reproflake.commands._project import Log, load_project
from reproflake.commands._steps import select
from reproflake.errors import BuildError, UsageError


def run(start: Path, steps: Sequence[str], *, to: str | None, log: Log, out: Log) -> int:
    executor.require_nix()
    p = load_project(start, log, steps=steps)
    wanted = select(p, steps)
    order = [s for s in p.graph.order() if s in p.graph.upstream(wanted)]
    r = _remote.setup(p, log)
    url = to or r.push_to
    if not url:
        raise UsageError(
            "no cache to push to",
            hint=f"set [cache] push = URL in {r.source}, or pass --to URL",
        )
    if r.secret_key is None or not r.secret_key.is_file():
        where = f"a missing file ({r.secret_key})" if r.secret_key else "not set"
        raise UsageError(
            f"the signing key is {where}: reproflake pushes only signed results",
            hint="make one with `nix-store --generate-binary-cache-key NAME SECRET PUBLIC` and "
            f"set [cache] secret_key = SECRET in {r.source} (never in the repository); "
            "give PUBLIC to the cache's readers ([cache] public_keys)",
        )
    drvs = executor.derivations(p.root)
    known = executor.known_outputs(p.root, order, drvs)
    missing = [s for s in order if not known.get(s)]
    missing += sorted(executor.invalid_paths(str(known[s]) for s in order if known.get(s)))
    if missing:
        raise BuildError(
            f"not built here yet: {', '.join(missing)}", hint="run `reproflake build` first"
        )
    # The steps' derivations stand for their outputs and realisations; their build-time
    # closure brings environments, fetched files and sources along.
    closure = executor.closure_for_push([drvs[s] for s in order])
    sources = [c for c in closure if not c.endswith(".drv")]
    installables = [c for c in closure if c.endswith(".drv")] + sources
    result = executor.copy_to(url, installables, str(r.secret_key))
    if result.returncode != 0:
        lines = [x for x in result.stderr.splitlines() if x.strip()][-5:]
        raise BuildError(
            f"could not push to {url}:\n" + "\n".join(f"  {x}" for x in lines),
            hint="check the cache URL and your write access to it",
        )
    out(f"pushed {len(order)} step(s) and what they need to {url}: {', '.join(order)}")
    return 0
