"""What an image says about where its bytes came from.

Until releases carry the full SLSA provenance of a build, an image carries an in-toto
statement (SLSA provenance v1 predicate) naming its materials: every pinned .deb and
wheel by URL and sha256, the step's inputs by hash, the spec and the lock, and for
each layer the packages whose files it holds. Nothing in it depends on the machine or
the time of the export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from reproflake.artifacts import intoto
from reproflake.artifacts.intoto import BUILD_TYPE, SLSA, STATEMENT, Facts
from reproflake.artifacts.oci import Descriptor, LayerBlob
from reproflake.lock.model import Lock, LockedInput, LockedWheel

__all__ = ["BUILD_TYPE", "SLSA", "STATEMENT", "Facts", "materials", "package_list",
           "package_list_digest", "statement"]  # fmt: skip


def package_list(lock: Lock, env: str) -> list[str]:
    """The environment's packages, one line each: what its package-list digest covers."""
    locked = lock.environments[env]
    lines = []
    for key in locked.debs:
        d = lock.debs[key]
        lines.append(f"deb {d.package} {d.version} {d.architecture} {d.sha256}")
    for key in locked.wheels:
        w = lock.wheels[key]
        lines.append(f"wheel {w.name} {w.version} {w.filename} {w.sha256}")
    return sorted(lines)


def package_list_digest(lock: Lock, env: str) -> str:
    return hashlib.sha256("".join(f"{x}\n" for x in package_list(lock, env)).encode()).hexdigest()


def wheel_material(w: LockedWheel) -> dict[str, Any]:
    """A pinned wheel as an in-toto resource descriptor (images and releases alike)."""
    return {"name": f"wheel:{w.name}=={w.version}", "uri": w.url, "digest": {"sha256": w.sha256}}


def input_material(name: str, pinned: LockedInput) -> dict[str, Any]:
    """A pinned input: a download by its sha256, local data by its NAR hash and path."""
    entry: dict[str, Any] = {"name": f"input:{name}"}
    if pinned.url:
        entry.update(uri=pinned.url, digest={"sha256": pinned.sha256})
    else:
        entry.update(digest={"narHash": pinned.nar_hash})
        if pinned.path:
            entry["annotations"] = {"path": pinned.path}
    return entry


def materials(lock: Lock, env: str, step_inputs: Sequence[str]) -> list[dict[str, Any]]:
    locked = lock.environments[env]
    found: list[dict[str, Any]] = []
    for key in locked.debs:
        d = lock.debs[key]
        found.append(
            {
                "name": f"deb:{d.package}={d.version}",
                "uri": d.url,
                "digest": {"sha256": d.sha256},
            }
        )
    found += [wheel_material(lock.wheels[key]) for key in locked.wheels]
    found += [input_material(name, lock.inputs[name]) for name in sorted(step_inputs)]
    seed = lock.debs[lock.seed.deb]
    found.append(
        {"name": f"seed:{lock.seed.package}={lock.seed.version}", "uri": seed.url,
         "digest": {"sha256": seed.sha256}}
    )  # fmt: skip
    return found


def statement(
    facts: Facts,
    manifest: Descriptor,
    layers: Sequence[LayerBlob],
    lock: Lock,
    inputs: Sequence[str],
) -> bytes:
    return intoto.statement(
        facts,
        manifest,
        layers,
        materials(lock, facts.env, inputs),
        package_list_digest(lock, facts.env),
    )
