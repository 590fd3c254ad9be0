"""The lock file: every input pinned by content, as deterministic JSON.

``reproflake.lock`` is what makes a build repeatable years later: Debian
packages by pool path and sha256, wheels by URL and sha256, URL inputs by
sha256, local inputs by NAR hash, and the bootstrap seed by NAR hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reproflake.errors import InvalidLockError, LockError, StaleLockError
from reproflake.fsutil import project_tmp, write_atomic
from reproflake.spec import Spec

LOCK_FILE = "reproflake.lock"
LOCK_VERSION = 1


def store_name(filename: str) -> str:
    """A Nix store path name for a file name: Debian versions carry '~', ':' and '%3a'."""
    name = filename.replace("%3a", "-").replace("%3A", "-")
    name = re.sub(r"[^A-Za-z0-9+\-._?=]", "-", name)
    # Nix allows 211 characters; keep the end, where the extension is.
    return name.lstrip(".")[-200:].lstrip(".") or "file"


@dataclass(frozen=True)
class LockedDeb:
    package: str
    version: str
    architecture: str
    filename: str
    url: str
    size: int
    sha256: str

    @property
    def key(self) -> str:
        return store_name(self.filename.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class LockedWheel:
    name: str
    version: str
    filename: str
    url: str
    sha256: str

    @property
    def key(self) -> str:
        return store_name(self.filename)


@dataclass(frozen=True)
class LockedEnv:
    debian: tuple[str, ...]
    python: tuple[str, ...]
    debs: tuple[str, ...]
    wheels: tuple[str, ...]
    python_version: str
    pylock: str


@dataclass(frozen=True)
class LockedInput:
    kind: str  # "local" or "url"
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    nar_hash: str | None = None
    # For a glob input: every file it matched → its NAR hash (nar_hash then covers them all).
    files: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Seed:
    package: str
    version: str
    deb: str  # key into Lock.debs
    member: str
    sha256: str  # of the busybox binary itself
    nar_hash: str  # of the seed directory holding it


@dataclass(frozen=True)
class DebianPin:
    mirror: str
    suite: str
    components: tuple[str, ...]
    architecture: str


@dataclass(frozen=True)
class Lock:
    debian: DebianPin
    python_index: Mapping[str, Any]
    source_date_epoch: int
    seed: Seed
    debs: Mapping[str, LockedDeb]
    wheels: Mapping[str, LockedWheel]
    environments: Mapping[str, LockedEnv]
    inputs: Mapping[str, LockedInput]
    version: int = LOCK_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_inputs(self, inputs: Mapping[str, LockedInput]) -> Lock:
        from dataclasses import replace

        return replace(self, inputs=dict(inputs))


# --------------------------------------------------------------------------- (de)serialisation


def dumps(lock: Lock) -> str:
    doc: dict[str, Any] = {
        "version": lock.version,
        "debian": asdict(lock.debian),
        "python-index": dict(lock.python_index),
        "source-date-epoch": lock.source_date_epoch,
        "seed": asdict(lock.seed),
        "environments": {k: asdict(v) for k, v in lock.environments.items()},
        "inputs": {
            k: {a: b for a, b in asdict(v).items() if b is not None} for k, v in lock.inputs.items()
        },
        "debs": {k: asdict(v) for k, v in lock.debs.items()},
        "wheels": {k: asdict(v) for k, v in lock.wheels.items()},
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def loads(text: str, path: Path) -> Lock:
    try:
        doc = json.loads(text)
        if doc.get("version") != LOCK_VERSION:
            shown = json.dumps(doc.get("version"))[:40]
            raise InvalidLockError(
                f'{path}: "version": {shown} is not a lock format this reproflake reads '
                f"(it reads version {LOCK_VERSION})",
                hint="a newer reproflake may have written it: use that one; or restore the lock "
                "from version control, or run `reproflake lock --upgrade` to write it anew",
            )
        lock = Lock(
            debian=DebianPin(**{**doc["debian"], "components": tuple(doc["debian"]["components"])}),
            python_index=doc["python-index"],
            source_date_epoch=int(doc["source-date-epoch"]),
            seed=Seed(**doc["seed"]),
            environments={
                k: LockedEnv(
                    **{**v, **{f: tuple(v[f]) for f in ("debian", "python", "debs", "wheels")}}
                )
                for k, v in doc["environments"].items()
            },
            inputs={k: LockedInput(**v) for k, v in doc["inputs"].items()},
            debs={k: LockedDeb(**v) for k, v in doc["debs"].items()},
            wheels={k: LockedWheel(**v) for k, v in doc["wheels"].items()},
        )
        _check_consistent(lock, path)
        return lock
    except LockError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # RecursionError: JSON nested thousands deep (a lock comes with a cloned repository).
        raise InvalidLockError(
            f"{path}: not a valid reproflake lock ({type(exc).__name__}: {exc})",
            hint="restore it from version control, or delete it and run `reproflake lock`",
        ) from None


def _check_consistent(lock: Lock, path: Path) -> None:
    """Every key the lock refers to must be in it (a hand-edited or merged lock may not)."""
    missing = [] if lock.seed.deb in lock.debs else [f"seed.deb {lock.seed.deb}"]
    for name, env in lock.environments.items():
        missing += [f"environments.{name}: deb {k}" for k in env.debs if k not in lock.debs]
        missing += [f"environments.{name}: wheel {k}" for k in env.wheels if k not in lock.wheels]
    if missing:
        raise InvalidLockError(
            f"{path}: refers to entries it does not contain: {', '.join(missing[:5])}",
            hint="restore it from version control, or run `reproflake lock --upgrade`",
        )


def read(root: Path) -> Lock | None:
    path = root / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return loads(text, path)


def require(root: Path) -> Lock:
    lock = read(root)
    if lock is None:
        raise StaleLockError(
            f"{root / LOCK_FILE} does not exist",
            hint="run `reproflake lock` to pin the project's inputs",
        )
    return lock


def write(root: Path, lock: Lock) -> bool:
    """Write the lock atomically; True if its bytes changed."""
    path = root / LOCK_FILE
    text = dumps(lock)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, text, tmp_dir=project_tmp(root))
    return True


# --------------------------------------------------------------------------- staleness


def python_index_request(spec: Spec) -> dict[str, Any]:
    idx = spec.python_index
    return {"index_url": idx.index_url, "extra_index_urls": list(idx.extra_index_urls)}


def stale_entries(spec: Spec, lock: Lock) -> list[str]:
    """What in the lock no longer matches the spec (no network, no hashing)."""
    problems: list[str] = []
    d = spec.debian
    if (d.mirror, d.suite, d.components, d.architecture) != (
        lock.debian.mirror,
        lock.debian.suite,
        lock.debian.components,
        lock.debian.architecture,
    ):
        problems.append("debian: mirror, suite, components or architecture changed")
    if python_index_request(spec) != dict(lock.python_index):
        problems.append("python: package index settings changed")
    for name in sorted(set(spec.environments) | set(lock.environments)):
        env = spec.environments.get(name)
        locked = lock.environments.get(name)
        if env is None:
            problems.append(f"environments.{name}: in the lock but no longer in the spec")
        elif locked is None:
            problems.append(f"environments.{name}: not locked yet")
        else:
            if tuple(env.all_debian) != locked.debian:
                problems.append(f"environments.{name}.debian: packages changed")
            if tuple(env.python) != locked.python:
                problems.append(f"environments.{name}.python: requirements changed")
    for name in sorted(set(spec.inputs) | set(lock.inputs)):
        item = spec.inputs.get(name)
        pinned = lock.inputs.get(name)
        if item is None:
            problems.append(f"inputs.{name}: in the lock but no longer in the spec")
        elif pinned is None:
            problems.append(f"inputs.{name}: not locked yet")
        elif item.is_url and (item.url, item.sha256) != (pinned.url, pinned.sha256):
            problems.append(f"inputs.{name}: url or sha256 changed")
        elif not item.is_url and item.path != pinned.path:
            problems.append(f"inputs.{name}: path changed")
    if spec.source_date_epoch is not None and spec.source_date_epoch != lock.source_date_epoch:
        problems.append("project.source_date_epoch changed")
    return problems
