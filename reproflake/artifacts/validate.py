"""An OCI layout checked the way the strictest clients check it, plus referrers.

Every blob's digest and size against its descriptor, media types, each layer's diff_id
against its uncompressed bytes, and each referrer's ``subject`` against the manifest it
names. Returns the problems found (empty: valid).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from reproflake.artifacts import oci

CHUNK = 1 << 20


def _layer_reader(media_type: str) -> Callable[[BinaryIO], Iterator[bytes]]:
    def plain(f: BinaryIO) -> Iterator[bytes]:
        while block := f.read(CHUNK):
            yield block

    def gz(f: BinaryIO) -> Iterator[bytes]:
        with gzip.GzipFile(fileobj=f) as g:
            yield from plain(g)  # type: ignore[arg-type]

    def zst(f: BinaryIO) -> Iterator[bytes]:
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(f) as z:
            yield from plain(z)

    return {oci.LAYER_MEDIA["gzip"]: gz, oci.LAYER_MEDIA["zstd"]: zst}.get(media_type, plain)


def check_layout(path: Path) -> list[str]:
    """Validate an OCI layout directory or an oci-archive tar."""
    if path.is_file():
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(path) as tar:
            tar.extractall(tmp, filter="data")
            return check_layout(Path(tmp))
    problems: list[str] = []
    try:
        layout = json.loads((path / "oci-layout").read_bytes())
        if layout.get("imageLayoutVersion") != "1.0.0":
            problems.append("oci-layout: imageLayoutVersion is not 1.0.0")
        top = json.loads((path / "index.json").read_bytes())
    except (OSError, ValueError) as exc:
        return [f"not an OCI layout: {exc}"]
    if top.get("schemaVersion") != 2:
        problems.append("index.json: schemaVersion is not 2")
    manifests: dict[str, dict[str, Any]] = {}
    for desc in top.get("manifests", []):
        doc = _blob_json(path, desc, problems)
        if doc is not None:
            manifests[desc["digest"]] = doc
            _check_manifest(path, desc, doc, problems)
        provenance = desc.get("annotations", {}).get("dev.reproflake.provenance")
        if provenance:  # an archive's referrer, named on its image
            size = (path / "blobs" / "sha256" / provenance.split(":", 1)[1]).stat().st_size
            ref = {"mediaType": oci.MANIFEST, "digest": provenance, "size": size}
            doc = _blob_json(path, ref, problems)
            if doc is not None:
                manifests[provenance] = doc
                _check_manifest(path, ref, doc, problems)
    for digest, doc in manifests.items():
        subject = doc.get("subject")
        if subject is None:
            continue
        target = manifests.get(subject["digest"])
        if target is None:
            problems.append(f"{digest}: subject {subject['digest']} is not in the layout")
            continue
        raw = (path / "blobs" / "sha256" / subject["digest"].split(":", 1)[1]).read_bytes()
        if subject.get("size") != len(raw) or subject.get("mediaType") != target.get("mediaType"):
            problems.append(f"{digest}: subject's size or media type does not match")
        if not doc.get("artifactType"):
            problems.append(f"{digest}: a referrer without artifactType")
    return problems


def _blob(path: Path, desc: dict[str, Any], problems: list[str]) -> Path | None:
    digest = str(desc.get("digest", ""))
    if not digest.startswith("sha256:"):
        problems.append(f"descriptor {desc}: not a sha256 digest")
        return None
    blob = path / "blobs" / "sha256" / digest.split(":", 1)[1]
    if not blob.is_file():
        problems.append(f"{digest}: blob missing")
        return None
    h = hashlib.sha256()
    size = 0
    with open(blob, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            size += len(block)
    if "sha256:" + h.hexdigest() != digest:
        problems.append(f"{digest}: content hashes to sha256:{h.hexdigest()}")
    if size != desc.get("size"):
        problems.append(f"{digest}: size {size}, descriptor says {desc.get('size')}")
    return blob


def _blob_json(path: Path, desc: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    blob = _blob(path, desc, problems)
    if blob is None:
        return None
    try:
        doc = json.loads(blob.read_bytes())
    except ValueError:
        problems.append(f"{desc['digest']}: not JSON")
        return None
    if doc.get("mediaType") != desc.get("mediaType"):
        problems.append(f"{desc['digest']}: media type differs from its descriptor's")
    return dict(doc)


def _check_manifest(
    path: Path, desc: dict[str, Any], doc: dict[str, Any], problems: list[str]
) -> None:
    if doc.get("mediaType") != oci.MANIFEST:
        problems.append(f"{desc['digest']}: not an image manifest")
        return
    config_desc = doc["config"]
    artifact = bool(doc.get("artifactType"))
    expected = oci.EMPTY if artifact else oci.CONFIG
    if config_desc.get("mediaType") != expected:
        problems.append(f"{desc['digest']}: config media type {config_desc.get('mediaType')}")
    config_blob = _blob(path, config_desc, problems)
    for layer in doc["layers"]:
        if not artifact and layer.get("mediaType") not in oci.LAYER_MEDIA.values():
            problems.append(f"{layer['digest']}: unknown layer media type {layer['mediaType']}")
    if artifact:
        for layer in doc["layers"]:
            _blob(path, layer, problems)
        return
    if config_blob is None:
        return
    config = json.loads(config_blob.read_bytes())
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(doc["layers"]):
        problems.append(f"{desc['digest']}: {len(doc['layers'])} layers, {len(diff_ids)} diff_ids")
        return
    for layer, diff_id in zip(doc["layers"], diff_ids, strict=True):
        blob = _blob(path, layer, problems)
        if blob is None:
            continue
        h = hashlib.sha256()
        try:
            with open(blob, "rb") as f:
                for block in _layer_reader(layer["mediaType"])(f):
                    h.update(block)
        except Exception as exc:  # any decoder's error means a corrupt layer
            problems.append(f"{layer['digest']}: cannot decompress: {exc}")
            continue
        if "sha256:" + h.hexdigest() != diff_id:
            problems.append(f"{layer['digest']}: uncompressed bytes do not match diff_id {diff_id}")
