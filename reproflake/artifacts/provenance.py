"""What an image says about where its bytes came from.

Until releases carry the full SLSA provenance of a build, an image carries an in-toto
statement (SLSA provenance v1 predicate) naming its materials: every pinned .deb and
wheel by URL and sha256, the step's inputs by hash, the spec and the lock, and for
each layer the packages whose files it holds. Nothing in it depends on the machine or
the time of the export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from reproflake.artifacts import intoto
from reproflake.artifacts.intoto import BUILD_TYPE, SLSA, STATEMENT, Facts
from reproflake.artifacts.oci import Descriptor, LayerBlob
from reproflake.hardware import HostProfile
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


# --------------------------------------------------------------------------- builds


def gpu_profile(host: HostProfile) -> dict[str, Any]:
    """The probed GPUs and driver: what a GPU step built here ran against."""
    return {
        "nvidia": [
            {"name": g.name, "compute_capability": g.compute_capability, "driver": g.driver}
            for g in host.gpus
        ],
        "cuda": host.cuda,
        "amd": [{"name": g.name, "gfx": g.gfx, "driver": g.driver} for g in host.amd_gpus],
    }


def build_record(
    host: HostProfile,
    lock_sha256: str,
    outputs: Mapping[str, str],
    built: Sequence[str],
    machines: Mapping[str, str],
    gpu_steps: Sequence[str],
) -> dict[str, Any]:
    """Where and from what each result of a build came: this machine (with its GPU profile
    for a step that needs a GPU), a remote builder (by its URI), or the store already.

    ``machines``: the steps a remote builder ran, and which one."""
    steps: dict[str, Any] = {}
    for s in sorted(outputs):
        here = s in built and s not in machines
        entry: dict[str, Any] = {
            "output": outputs[s],
            "built_here": here,
            "built_on": machines.get(s, "this machine" if here else None),
        }
        if here and s in gpu_steps:
            entry["gpu_profile"] = gpu_profile(host)
        steps[s] = entry
    return {"host": host.as_dict(), "steps": steps, "lock_sha256": lock_sha256}
