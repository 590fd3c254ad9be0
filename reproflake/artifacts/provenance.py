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
from dataclasses import dataclass
from typing import Any

from reproflake.artifacts.oci import Descriptor, LayerBlob, canonical
from reproflake.lock.model import Lock

STATEMENT = "https://in-toto.io/Statement/v1"
SLSA = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:reproflake:image:v1"


@dataclass(frozen=True)
class Facts:
    """The facts of one export that the statement records."""

    image: str
    step: str
    env: str
    revision: str
    spec_sha256: str
    lock_sha256: str
    outputs: Mapping[str, str]  # step → store path (the step and what it needs)
    sources: Mapping[str, str]  # path in the image → sha256


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
    for key in locked.wheels:
        w = lock.wheels[key]
        found.append(
            {"name": f"wheel:{w.name}=={w.version}", "uri": w.url, "digest": {"sha256": w.sha256}}
        )
    for name in sorted(step_inputs):
        pinned = lock.inputs[name]
        entry: dict[str, Any] = {"name": f"input:{name}"}
        if pinned.url:
            entry.update(uri=pinned.url, digest={"sha256": pinned.sha256})
        else:
            entry.update(digest={"narHash": pinned.nar_hash})
            if pinned.path:
                entry["annotations"] = {"path": pinned.path}
        found.append(entry)
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
    byproducts = [
        {
            "name": f"layer {i}: {b.layer.comment}",
            "digest": {"sha256": b.descriptor.digest.split(":", 1)[1]},
            "annotations": {"packages": list(b.layer.owners), "diff_id": b.diff_id},
        }
        for i, b in enumerate(layers)
    ]
    doc = {
        "_type": STATEMENT,
        "subject": [{"name": facts.image, "digest": {"sha256": manifest.digest.split(":", 1)[1]}}],
        "predicateType": SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "image": facts.image,
                    "step": facts.step,
                    "environment": facts.env,
                    "revision": facts.revision,
                    "spec_sha256": facts.spec_sha256,
                    "lock_sha256": facts.lock_sha256,
                },
                "internalParameters": {
                    "outputs": dict(sorted(facts.outputs.items())),
                    "sources": dict(sorted(facts.sources.items())),
                    "package_list_sha256": package_list_digest(lock, facts.env),
                },
                "resolvedDependencies": materials(lock, facts.env, inputs),
            },
            "runDetails": {
                "builder": {"id": "urn:reproflake:nix-sandbox"},
                "byproducts": byproducts,
            },
        },
    }
    return canonical(doc)
