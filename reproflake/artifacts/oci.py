"""OCI images (image-spec 1.1) written byte for byte deterministically.

Blobs live in a content-addressed store (the user's cache): a layer is written once
per recipe (its entries and where their bytes come from, the compression and the
time), so exporting again, or after only an output changed, compresses only what is
new. Manifests and configs are canonical JSON (sorted keys, no spaces).

Standard library only (like tarball.py, layers.py, intoto.py and recipe.py): the
image derivation runs these modules inside Nix's sandbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproflake.artifacts.layers import Layer
from reproflake.artifacts.tarball import Entry, with_parents, write_tar

FORMAT = 1  # bump when the bytes written for the same recipe change
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"  # the empty descriptor's blob, as image-spec 1.1 defines it
IN_TOTO = "application/vnd.in-toto+json"
LAYER_MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
REF_NAME = "org.opencontainers.image.ref.name"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""

    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            found["annotations"] = dict(sorted(self.annotations.items()))
        if self.artifact_type:
            found["artifactType"] = self.artifact_type
        return found


@dataclass(frozen=True)
class LayerBlob:
    descriptor: Descriptor
    diff_id: str
    layer: Layer


class BlobStore:
    """blobs/sha256/<hex>, plus the recipe → layer table that makes re-exports cheap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.recipes = root / "layers"

    def path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def add(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not (path.is_file() and path.stat().st_size == len(data)):
            self._put(path, lambda f: f.write(data))
        return Descriptor(media_type, digest, len(data))

    def _put(self, path: Path, fill: Any) -> Any:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                result = fill(f)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return result

    def layer(self, layer: Layer, mtime: int, compression: str, threads: int = 0) -> LayerBlob:
        """The layer's blob, written unless its recipe's is known; ``threads``: zstd's."""
        key = recipe_key(layer.entries, mtime, compression)
        media = LAYER_MEDIA[compression]
        known = self.recipes / f"{key}.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            row = json.loads(known.read_text())
            path = self.path(row["digest"])
            if path.stat().st_size == row["size"]:
                return LayerBlob(
                    Descriptor(media, row["digest"], row["size"]), row["diff_id"], layer
                )
        tmp = self.blobs / f".layer-{key}.{os.getpid()}.tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                written = write_tar(layer.entries, mtime, f, compression, threads=threads)
            os.replace(tmp, self.path(written.digest))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        row = {"digest": written.digest, "diff_id": written.diff_id, "size": written.size}
        self.recipes.mkdir(parents=True, exist_ok=True)
        known.write_text(json.dumps(row, sort_keys=True) + "\n")
        return LayerBlob(Descriptor(media, written.digest, written.size), written.diff_id, layer)


def recipe_key(entries: Iterable[Entry], mtime: int, compression: str) -> str:
    """What a layer's bytes follow from. A file in the Nix store never changes, so its
    path stands for its content; any other file is hashed. (One JSON document for the
    whole layer: encoding thousands of entries one by one cost more than the hash.)"""
    rows = []
    for e in entries:
        identity = e.source
        if e.kind == "file" and not e.source.startswith("/nix/store/"):
            identity = file_sha256(e.source)
        rows.append([e.path, e.kind, e.mode(), e.target, identity])
    return hashlib.sha256(canonical([FORMAT, compression, mtime, rows])).hexdigest()


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ImageConfig:
    """What the image says about itself and how it starts."""

    created: str
    entrypoint: Sequence[str]
    cmd: Sequence[str]
    env: Mapping[str, str]
    workdir: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def image(store: BlobStore, layers: Sequence[LayerBlob], cfg: ImageConfig) -> Descriptor:
    """Write the image's config and manifest; the manifest's descriptor."""
    runtime: dict[str, Any] = {
        "Env": [f"{k}={v}" for k, v in sorted(cfg.env.items())],
        "Labels": dict(sorted(cfg.labels.items())),
        "WorkingDir": cfg.workdir,
    }
    if cfg.entrypoint:
        runtime["Entrypoint"] = list(cfg.entrypoint)
    if cfg.cmd:
        runtime["Cmd"] = list(cfg.cmd)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": cfg.created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in layers]},
        "history": [
            {"created": cfg.created, "created_by": "reproflake", "comment": b.layer.comment}
            for b in layers
        ],
    }
    config_desc = store.add(canonical(config), CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_desc.json(),
        "layers": [b.descriptor.json() for b in layers],
        "annotations": dict(sorted(cfg.annotations.items())),
    }
    return store.add(canonical(manifest), MANIFEST)


def referrer(
    store: BlobStore,
    subject: Descriptor,
    artifact_type: str,
    payload: bytes,
    annotations: Mapping[str, str],
) -> Descriptor:
    """An artifact manifest (image-spec 1.1) whose ``subject`` is ``subject``."""
    empty = store.add(EMPTY_JSON, EMPTY)
    blob = store.add(payload, artifact_type)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": empty.json(),
        "layers": [blob.json()],
        "subject": subject.json(),
        "annotations": dict(sorted(annotations.items())),
    }
    desc = store.add(canonical(manifest), MANIFEST)
    return Descriptor(MANIFEST, desc.digest, desc.size, dict(annotations), artifact_type)


def closure(store: BlobStore, manifests: Sequence[Descriptor]) -> list[str]:
    """Every blob the manifests (or indexes of them) need: themselves, configs, layers."""
    found: set[str] = set()
    todo = [m.digest for m in manifests]
    while todo:
        digest = todo.pop()
        found.add(digest)
        doc = json.loads(store.path(digest).read_bytes())
        if doc.get("mediaType") == INDEX:
            todo.extend(m["digest"] for m in doc["manifests"])
            continue
        found.add(doc["config"]["digest"])
        found.update(layer["digest"] for layer in doc["layers"])
    return sorted(found)


def index(manifests: Sequence[Descriptor]) -> bytes:
    return canonical(
        {"schemaVersion": 2, "mediaType": INDEX, "manifests": [m.json() for m in manifests]}
    )


LAYOUT = canonical({"imageLayoutVersion": "1.0.0"})


def write_dir(
    store: BlobStore, manifests: Sequence[Descriptor], dest: Path, extra: Sequence[Descriptor] = ()
) -> None:
    """An OCI image layout directory listing ``manifests`` (and holding the blobs of
    ``extra`` too), replacing ``dest`` as a whole (never half-written)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "blobs" / "sha256").mkdir(parents=True)
    for digest in closure(store, [*manifests, *extra]):
        target = tmp / "blobs" / "sha256" / digest.split(":", 1)[1]
        try:
            os.link(store.path(digest), target)
        except OSError:  # another file system: copy
            shutil.copyfile(store.path(digest), target)
        os.chmod(target, 0o644)
    (tmp / "oci-layout").write_bytes(LAYOUT)
    (tmp / "index.json").write_bytes(index(manifests))
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    if dest.exists() or dest.is_symlink():
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


def write_archive(
    store: BlobStore,
    manifests: Sequence[Descriptor],
    dest: Path,
    mtime: int,
    extra: Sequence[Descriptor] = (),
) -> None:
    """The same layout as one uncompressed tar (what `skopeo` calls oci-archive)."""
    tmp_dir = dest.with_name(f".{dest.name}.{os.getpid()}.d")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        (tmp_dir / "oci-layout").write_bytes(LAYOUT)
        (tmp_dir / "index.json").write_bytes(index(manifests))
        entries = [
            Entry("oci-layout", "file", source=str(tmp_dir / "oci-layout")),
            Entry("index.json", "file", source=str(tmp_dir / "index.json")),
        ]
        for digest in closure(store, [*manifests, *extra]):
            name = digest.split(":", 1)[1]
            entries.append(Entry(f"blobs/sha256/{name}", "file", source=str(store.path(digest))))
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            # Unbuffered and with no digest (nothing names the archive by one): the
            # blobs are copied file to file by the kernel.
            with open(tmp, "wb", buffering=0) as f:
                write_tar(with_parents(entries), mtime, f, "none", diff_id=False, digest=False)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
