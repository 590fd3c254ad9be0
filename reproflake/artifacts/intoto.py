"""An image's in-toto statement (SLSA provenance v1 predicate), from facts alone.

Standard library only: this module also runs inside Nix's sandbox, where the image
derivation writes the same statement (see recipe.py). The materials list and the
package-list digest come in ready-made (provenance.py derives them from the lock).
Nothing in the statement depends on the machine or the time of the export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reproflake.artifacts.oci import Descriptor, LayerBlob, canonical

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


def statement(
    facts: Facts,
    manifest: Descriptor,
    layers: Sequence[LayerBlob],
    materials: Sequence[Mapping[str, Any]],
    package_list_sha256: str,
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
                    "package_list_sha256": package_list_sha256,
                },
                "resolvedDependencies": [dict(m) for m in materials],
            },
            "runDetails": {
                "builder": {"id": "urn:reproflake:nix-sandbox"},
                "byproducts": byproducts,
            },
        },
    }
    return canonical(doc)
