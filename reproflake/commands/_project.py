"""Loading a project and bringing its generated flake up to date (shared by commands)."""

from __future__ import annotations

import base64
import functools
import hashlib
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reproflake import _confine, executor, graph, hardware, nixgen, project
from reproflake.errors import HashMismatchError, InvalidLockError, StaleLockError, UsageError
from reproflake.fsutil import refuse_linked_own_dir, sweep_temporaries
from reproflake.lock import inputs as input_pins
from reproflake.lock import model
from reproflake.lock.hashing import nar_hash, short
from reproflake.spec import SPEC_FILE, Spec, find_spec, listing, load, suggest

Log = Callable[[str], None]


@dataclass(frozen=True)
class Project:
    spec: Spec
    lock: model.Lock
    graph: graph.Graph
    facts: nixgen.Facts

    @property
    def root(self) -> Path:
        return self.spec.root

    @functools.cached_property
    def data(self) -> nixgen.BuildData:
        """The generated flake's data (build.json), computed once per command."""
        return nixgen.build_data(self.spec, self.lock, self.facts)


def load_spec(start: Path) -> tuple[Spec, graph.Graph]:
    spec = hardware.resolve_pins(load(find_spec(start)))
    refuse_linked_own_dir(spec.root)
    sweep_temporaries(spec.root)
    return spec, graph.build(spec)


def check_steps(spec: Spec, steps: Sequence[str]) -> None:
    """Every step named on the command line exists (checked before anything is written)."""
    unknown = [s for s in steps if s not in spec.steps]
    if unknown:
        close = suggest(unknown[0], spec.steps) if len(unknown) == 1 else ""
        raise UsageError(
            f"unknown step{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            hint=f"known steps: {listing(spec.steps)}{close}",
        )


def load_project(
    start: Path, log: Log, *, write_lock: bool = True, steps: Sequence[str] = ()
) -> Project:
    """The stages every building command starts with, in order: the spec and its graph,
    the steps asked for, the lock (which must match the spec), the globs matched once,
    the local inputs' hashes refreshed (and written to the lock when ``write_lock``:
    `build` and `verify` keep it current, `plan` and `graph` only read), the facts."""
    spec, dag = load_spec(start)
    check_steps(spec, steps)
    lock = model.require(spec.root)
    check_fresh(spec, lock)
    globs = project.match_globs(spec)
    lock = refresh_inputs(spec, lock, globs, log, write=write_lock)
    return Project(spec, lock, dag, project.facts(spec, globs))


def check_fresh(spec: Spec, lock: model.Lock) -> None:
    """The lock pins what the spec asks for (nothing to resolve again)."""
    stale = model.stale_entries(spec, lock)
    if stale:
        raise StaleLockError(
            f"{spec.root / model.LOCK_FILE} is out of date with {SPEC_FILE}:\n"
            + "\n".join(f"  {line}" for line in stale),
            hint="run `reproflake lock` to update it",
        )


def refresh_inputs(
    spec: Spec, lock: model.Lock, globs: project.Globs, log: Log, *, write: bool
) -> model.Lock:
    """The lock with local inputs hashed as they are now; written back when ``write``."""
    inputs = input_pins.pin_inputs(spec, input_pins.hash_cache(spec.root), globs)
    for name in sorted(inputs):
        old = lock.inputs[name].nar_hash
        new = inputs[name].nar_hash
        if old != new and old is not None and new is not None:
            done = "lock updated" if write else "`reproflake build` updates the lock"
            log(f"input {name} changed ({short(old)}… → {short(new)}…); {done}")
    if inputs == dict(lock.inputs):
        return lock
    lock = lock.with_inputs(inputs)
    if write:
        model.write(spec.root, lock)
    return lock


def seed_bytes(root: Path, lock: model.Lock) -> bytes:
    """The seed: the project's own copy when it matches the lock (no network needed),
    else extracted again from its pinned .deb."""
    vendored = root / ".reproflake/seed/busybox"
    try:
        data = vendored.read_bytes()
        if hashlib.sha256(data).hexdigest() == lock.seed.sha256:
            return data
    except OSError:
        pass
    deb = lock.debs[lock.seed.deb]
    from reproflake.lock import (
        pin,  # the resolver's module: only when the seed must be re-extracted
    )

    data = pin.seed_binary(deb, input_pins.cache_dir()).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != lock.seed.sha256:
        raise HashMismatchError(
            f"the bootstrap seed extracted from {deb.url} does not match seed.sha256 in "
            f"{root / model.LOCK_FILE}",
            hint=f"expected sha256 {lock.seed.sha256}, got {got}",
        )
    return data


def check_seed_pin(root: Path, lock: model.Lock) -> None:
    """The flake takes .reproflake/seed by the lock's NAR hash; a wrong one would reach the
    user as Nix's bare 'store path mismatch'. Name the lock entry instead."""
    seed_dir = root / ".reproflake/seed"
    got = nar_hash(seed_dir)
    if got != lock.seed.nar_hash:
        raise InvalidLockError(
            f"{root / model.LOCK_FILE}: seed.nar_hash is {lock.seed.nar_hash}, but the seed "
            f"(.reproflake/seed, its busybox matching seed.sha256) hashes to {got}",
            hint="restore reproflake.lock from version control, or run `reproflake lock "
            "--upgrade` to pin the seed again; .reproflake/seed must hold only busybox",
        )


def refuse_foreign_flake(root: Path) -> None:
    """Stop before writing anything over a project's own flake (exit 2)."""
    why = nixgen.foreign_flake(root)
    if why is not None:
        raise UsageError(
            f"{why}: reproflake generates flake.nix and flake.lock here and would write over it",
            hint="move your flake elsewhere (e.g. `git mv flake.nix nix/flake.nix`, with "
            "its flake.lock), or delete it if it is an old copy of reproflake's, then run "
            "again",
        )


def render(p: Project) -> dict[str, tuple[bytes, int]]:
    """The flake and its data as reproflake generates them: path → (bytes, mode)."""
    return nixgen.render(p.spec, p.lock, p.facts, seed_bytes(p.root, p.lock), data=p.data)


def generate(p: Project, files: dict[str, tuple[bytes, int]] | None = None) -> list[str]:
    """Write the flake and its data (``files``, when rendered already); stage what the
    flake must see; returns the files written."""
    refuse_foreign_flake(p.root)
    if files is None:
        files = render(p)
    written = nixgen.write(p.root, files)
    check_seed_pin(p.root, p.lock)
    tracked = [SPEC_FILE, model.LOCK_FILE, *files]
    for sources in p.facts.sources.values():
        tracked.extend(sources)
    for entry in p.data["inputs"].values():
        tracked.extend(f["path"] for f in entry["files"] if f["kind"] == "tracked")
    project.stage(p.root, tracked)
    return written


def store_items(
    p: Project, steps: Iterable[str], *, seed: bool = False
) -> list[executor.StoreItem]:
    """What must be put in the store by us for ``steps`` (and only them): large local data,
    files from file:// mirrors. A CPU step does not pull in another environment's wheels."""
    items = []
    data = p.data
    steps = set(steps)
    envs = {p.spec.steps[s].env for s in steps}
    wanted_debs = {k for e in envs for k in p.lock.environments[e].debs}
    if seed:  # the seed check re-extracts it from its .deb
        wanted_debs.add(p.lock.seed.deb)
    wanted_wheels = {k for e in envs for k in p.lock.environments[e].wheels}
    wanted_inputs = {i for s in steps for i in p.spec.steps[s].inputs}
    inputs = [
        (name, f)
        for name, entry in data["inputs"].items()
        if name in wanted_inputs
        for f in entry["files"]
    ]
    for name, f in inputs:
        if f["kind"] == "external":
            where = f"{p.spec.where('inputs', name, 'path')}: inputs.{name}"
            items.append(
                executor.StoreItem(
                    local=_confine.local_path(p.root, f["path"], where),
                    name=f["storeName"],
                    sri=f["narHash"],
                    recursive=True,
                    what=f"input {name}"
                    + (f" ({f['path']})" if p.spec.inputs[name].is_glob else ""),
                )
            )
    # Pinned flat files: (what, store name, url, sha256).
    flat = [
        *((f"Debian package {k}", k, v["url"], v["sha256"]) for k, v in data["debs"].items()
          if k in wanted_debs),
        *((f"wheel {k}", k, v["url"], v["sha256"]) for k, v in data["wheels"].items()
          if k in wanted_wheels),
        *((f"input {name}", f["storeName"], f["url"], f["sha256"]) for name, f in inputs
          if f["kind"] == "url"),
    ]  # fmt: skip
    for what, name, url, sha256 in flat:
        if url.startswith("file://"):
            sri = "sha256-" + base64.b64encode(bytes.fromhex(sha256)).decode()
            local = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            items.append(executor.StoreItem(local, name, sri, False, what))
    return items


def labels(p: Project) -> dict[str, str]:
    """Store names of fetched files → what the user calls them, for error messages."""
    data = p.data
    found = {k: f"Debian package {d.package} {d.version}" for k, d in p.lock.debs.items()}
    found.update({k: f"wheel {w.name} {w.version}" for k, w in p.lock.wheels.items()})
    found.update(
        {f["storeName"]: f"input {k}" for k, v in data["inputs"].items() for f in v["files"]}
    )
    return found
