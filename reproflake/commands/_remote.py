"""Caches and builders for a building command: configured once, checked after the build."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reproflake import executor, remote
from reproflake.commands._project import Log, Project


def builders_only(p: Project) -> remote.Remote:
    """The user's builders handed to Nix, and no cache: for commands that must build here
    or on a builder, never take a result from a cache (verify, release)."""
    r = remote.load(p.spec.cache.urls, p.spec.cache.public_keys)
    executor.configure_remote(builders=r.builders_setting())
    return r


def setup(p: Project, log: Log) -> remote.Remote:
    """The project's and the user's caches and builders, handed to Nix. A cache that does
    not answer is left out with a one-line warning: the build goes on locally."""
    r = remote.load(p.spec.cache.urls, p.spec.cache.public_keys)
    live = []
    for url in r.caches:
        why = remote.reachable(url)
        if why is None:
            live.append(url)
        else:
            log(f"warning: cache {url} is unreachable ({why}); building without it")
    keys = list(r.public_keys)
    secret = r.secret_key if r.secret_key is not None and r.secret_key.is_file() else None
    if secret is not None:
        keys.append(remote.public_key_of(secret))  # what this user signs is trusted here
    executor.configure_remote(
        substituters=live,
        public_keys=keys,
        builders=r.builders_setting(),
        secret_key=str(secret) if secret else None,
    )
    return replace(r, caches=tuple(live), public_keys=tuple(dict.fromkeys(keys)))


def refuse_unsigned(
    r: remote.Remote, outcome: executor.BuildOutcome, steps: Sequence[str], log: Log
) -> list[str]:
    """Steps Nix took from a cache whose outputs no trusted key signed: removed again.

    Nix 2.8 takes content-addressed outputs (and their realisations) from a cache without
    checking any signature; reproflake checks them here, and refuses what fails."""
    taken = {s: outcome.outputs[s] for s in steps if outcome.outputs.get(s) in outcome.substituted}
    if not taken:
        return []
    infos = executor.path_infos(sorted(taken.values()))
    bad = set(remote.unsigned(infos.values(), r.public_keys))
    refused = sorted(s for s, path in taken.items() if path in bad)
    if refused:
        log(
            f"warning: refused {len(refused)} step result(s) from the cache, not signed by a "
            f"trusted key: {', '.join(refused)}"
        )
        executor.delete_paths([taken[s] for s in refused])
        for s in refused:
            del outcome.outputs[s]
    return refused
