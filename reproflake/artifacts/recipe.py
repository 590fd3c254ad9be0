"""One image, written from its recipe and the store paths it names: the single writer
behind both `reproflake image NAME` and `nix build .#image-NAME`.

Standard library only. The recipe (``Recipe``, build.json's ``images.NAME``) holds what
follows from the spec and the lock; ``Resolved`` holds what the store holds (the
environment's root, the .debs, the outputs) and what the source tree says (the spec's
and the lock's digests, the commit). The CLI fills ``Resolved`` from its own build;
the image derivation (nix/image.sh) from Nix, and runs :func:`main` with the
environment's own python3 inside the sandbox. Same recipe, same paths, same bytes.

zstd needs the ``zstandard`` module, which the sandbox's Python lacks: the derivation
writes gzip or uncompressed layers only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypedDict

from reproflake.artifacts import intoto, layers, oci

TAG = "latest"
PROVENANCE = "dev.reproflake.provenance"  # on an archive's image: its referrer's digest
LABEL = "dev.reproflake."
FORMATS = ("oci-dir", "oci-archive")
SANDBOX_COMPRESSIONS = ("gzip", "none")  # what the sandbox's Python can write


class Recipe(TypedDict):
    """What an image follows from in the spec and the lock (build.json's ``images.NAME``)."""

    image: str  # "PROJECT/NAME", its title
    step: str
    env: str
    pythonEnv: str  # the environment whose python3 writes it in the sandbox ("" for none)
    debs: list[str]  # the environment's .debs (build.json keys), in unpack order
    packages: list[str]  # each one's package name
    python: str  # the environment's Python version ("" without wheels)
    sourceDateEpoch: int
    workspace: bool
    workdir: str
    outputsPath: str
    sources: list[str]  # the step's source files, relative to the project
    inputs: list[str]  # the step's inputs' names
    needs: list[str]
    entrypoint: list[str]
    cmd: list[str]
    containerEnv: dict[str, str]  # the container's environment
    labels: dict[str, str]  # the user's labels
    own: dict[str, str]  # reproflake's labels (also annotations), less the files' digests
    materials: list[dict[str, Any]]
    packageListSha256: str


class Resolved(TypedDict):
    """Where the recipe's parts are, and what the source tree says."""

    envRoot: str
    debs: list[str]  # store paths, in Recipe.debs order
    workspace: list[list[str]]  # [path under the workdir, file or tree to copy there]
    outputs: dict[str, str]  # step → store path: the image's step and what it needs
    sources: dict[str, str]  # path under the workdir → the file (its digest is recorded)
    specSha256: str
    lockSha256: str
    revision: str  # the commit, "" when not known
    source: str  # where the source lives (origin's URL), "" when not known


def metadata(recipe: Recipe, resolved: Resolved) -> tuple[dict[str, str], dict[str, str]]:
    """The image's labels and its manifest's annotations."""
    standard = {
        "org.opencontainers.image.created": oci.rfc3339(recipe["sourceDateEpoch"]),
        "org.opencontainers.image.title": recipe["image"],
    }
    if resolved["revision"]:
        standard["org.opencontainers.image.revision"] = resolved["revision"]
    if resolved["source"]:
        standard["org.opencontainers.image.source"] = resolved["source"]
    own = {
        **recipe["own"],
        LABEL + "spec.sha256": resolved["specSha256"],
        LABEL + "lock.sha256": resolved["lockSha256"],
    }
    return {**standard, **recipe["labels"], **own}, {**standard, **own}


def environment(
    recipe: Recipe, resolved: Resolved, deb_lists: Sequence[Sequence[str]]
) -> list[layers.Layer]:
    """The environment's package and configuration layers. ``deb_lists``: each .deb's
    paths, in Recipe.debs order."""
    root = Path(resolved["envRoot"])
    packages: list[tuple[str, Sequence[str]]] = list(
        zip(recipe["packages"], deb_lists, strict=True)
    )
    if recipe["python"]:
        site = f"usr/local/lib/python{recipe['python']}/dist-packages"
        packages.extend(sorted(layers.wheel_paths(root, site).items()))
    return layers.environment_layers(root, layers.owners(packages), recipe["env"])


def plan(
    recipe: Recipe, resolved: Resolved, env_layers: Sequence[layers.Layer]
) -> list[layers.Layer]:
    """The layers: the environment's packages and configuration (:func:`environment`),
    the working directory, the outputs."""
    result = list(env_layers)
    if recipe["workspace"]:
        work = recipe["workdir"].rstrip("/")
        items = [(f"{work}/{rel}", Path(src)) for rel, src in resolved["workspace"]]
        workspace = layers.Layer(
            f"step {recipe['step']}: working directory (sources, inputs, needed outputs)",
            layers.placed(items),
        )
        if workspace.entries:
            result.append(workspace)
    result.append(
        layers.Layer(
            f"step {recipe['step']}: outputs",
            layers.placed([(recipe["outputsPath"], Path(resolved["outputs"][recipe["step"]]))]),
        )
    )
    return result


def list_debs(paths: Sequence[str], lister: Callable[[str], list[str]]) -> list[list[str]]:
    # In parallel: lzma releases the interpreter's lock.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(lister, paths))


def _write_layers(
    store: oci.BlobStore, todo: Sequence[layers.Layer], mtime: int, compression: str
) -> list[oci.LayerBlob]:
    """The layers, the largest first, each writer taking the next when it is done.

    zstd compresses in worker threads, but a stream hands a worker only a full job
    (8 MiB at our level) or its end: most layers are one job, compressed by one worker
    while their writer waits, after that writer alone read and hashed them. Two writers
    overlap one layer's reading and hashing with another's compression, and the cores
    are shared between them (one zstd worker each on 2 cores: fewer threads and buffers
    than a worker per core each, measured 3 % more CPU than one writer with two workers,
    for 12 % less wall time at load 4-5). More writers would contend for the
    interpreter's lock. zlib has no workers: there, one thread per core writes a layer
    at a time (zlib, hashing and reads release the lock). The bytes depend on neither
    count (tests/unit pin them)."""
    cores = max(1, os.cpu_count() or 1)
    writers = min(2, cores) if compression == "zstd" else cores
    workers = max(1, cores // writers) if compression == "zstd" else 1
    by_size = sorted(range(len(todo)), key=lambda i: -len(todo[i].entries))
    with ThreadPoolExecutor(max_workers=writers) as pool:
        started = {
            i: pool.submit(store.layer, todo[i], mtime, compression, workers) for i in by_size
        }
        return [started[i].result() for i in range(len(todo))]


def write_image(
    store: oci.BlobStore,
    recipe: Recipe,
    resolved: Resolved,
    env_layers: Sequence[layers.Layer],
    compression: str,
) -> tuple[oci.Descriptor, oci.Descriptor, list[oci.LayerBlob]]:
    """The layers, config, manifest and provenance referrer into ``store``: the image
    manifest's and the referrer's descriptors, and the layers. ``env_layers``: the
    environment's, from :func:`environment`."""
    sde = recipe["sourceDateEpoch"]
    work = recipe["workdir"].rstrip("/")
    todo = plan(recipe, resolved, env_layers)
    blobs = _write_layers(store, todo, sde, compression)
    labels, annotations = metadata(recipe, resolved)
    cfg = oci.ImageConfig(
        created=oci.rfc3339(sde),
        entrypoint=recipe["entrypoint"],
        cmd=recipe["cmd"],
        env=recipe["containerEnv"],
        workdir=recipe["workdir"],
        labels=labels,
        annotations=annotations,
    )
    manifest = oci.image(store, blobs, cfg)
    facts = intoto.Facts(
        image=recipe["image"],
        step=recipe["step"],
        env=recipe["env"],
        revision=resolved["revision"],
        spec_sha256=resolved["specSha256"],
        lock_sha256=resolved["lockSha256"],
        outputs=resolved["outputs"],
        sources={
            f"{work}/{rel}": oci.file_sha256(path) for rel, path in resolved["sources"].items()
        },
    )
    statement = intoto.statement(
        facts, manifest, blobs, recipe["materials"], recipe["packageListSha256"]
    )
    referrer = oci.referrer(
        store,
        manifest,
        oci.IN_TOTO,
        statement,
        {"org.opencontainers.image.created": oci.rfc3339(sde)},
    )
    return manifest, referrer, blobs


def write_layout(
    store: oci.BlobStore,
    manifest: oci.Descriptor,
    referrer: oci.Descriptor,
    fmt: str,
    dest: Path,
    mtime: int,
) -> None:
    if fmt == "oci-dir":
        # The layout's index lists the referrer beside the image, as image-spec 1.1 has it.
        tagged = oci.Descriptor(oci.MANIFEST, manifest.digest, manifest.size, {oci.REF_NAME: TAG})
        oci.write_dir(store, [tagged, referrer], dest)
    else:
        # An archive is what `podman load` reads, and it takes only an index of one image:
        # the referrer's blobs travel inside, named by an annotation on the image.
        tagged = oci.Descriptor(
            oci.MANIFEST,
            manifest.digest,
            manifest.size,
            {oci.REF_NAME: TAG, PROVENANCE: referrer.digest},
        )
        oci.write_archive(store, [tagged], dest, mtime, extra=[referrer])


def main(argv: Sequence[str]) -> int:
    """In the sandbox: ``JOB.json DEST``; the job is {recipe, resolved, format, compression}."""
    job_file, dest = argv
    job = json.loads(Path(job_file).read_text())
    recipe: Recipe = job["recipe"]
    resolved: Resolved = job["resolved"]
    fmt, compression = job["format"], job["compression"]
    if fmt not in FORMATS or compression not in SANDBOX_COMPRESSIONS:
        print(f"reproflake: cannot write a {fmt} image with {compression} layers here "
              f"(formats {', '.join(FORMATS)}; compressions {', '.join(SANDBOX_COMPRESSIONS)})",
              file=sys.stderr)  # fmt: skip
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        store = oci.BlobStore(Path(tmp) / "store")
        lists = list_debs(resolved["debs"], lambda p: layers.deb_listing(Path(p).read_bytes()))
        env_layers = environment(recipe, resolved, lists)
        manifest, referrer, _ = write_image(store, recipe, resolved, env_layers, compression)
        # Written beside the blobs, then copied: only $out itself may be made in the store.
        image = Path(tmp) / "image"
        write_layout(store, manifest, referrer, fmt, image, recipe["sourceDateEpoch"])
        if fmt == "oci-dir":
            shutil.copytree(image, dest)
        else:
            shutil.copyfile(image, dest)
    print(f"{dest}: {manifest.digest}")
    return 0
