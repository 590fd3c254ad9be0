"""`reproflake image NAME`: deliver a step as a sealed OCI image.

The workflow: load the project; build the step (and what it needs) as `build` would;
realise its environment's root and the .debs it was unpacked from; split the root
into package layers, then the step's working directory and its outputs; write the
layers through the blob cache; write the config, the manifest and the provenance
referrer; write the layout; remember what it depended on, so that exporting again with
nothing changed is answered without Nix.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reproflake import executor, hardware, project
from reproflake._paths import user_cache_dir
from reproflake.artifacts import layers as layering
from reproflake.artifacts import oci, provenance
from reproflake.commands import _image_stamp as _stamp
from reproflake.commands import _noop
from reproflake.commands._project import Log, Project, generate, labels, load_project, store_items
from reproflake.errors import BuildError, HardwareError, UsageError
from reproflake.spec import SPEC_FILE, Image
from reproflake.spec import Spec as SpecType

TAG = "latest"
MANIFEST_MEDIA = oci.MANIFEST
PROVENANCE = "dev.reproflake.provenance"  # on an archive's image: its referrer's digest
LABEL = "dev.reproflake."
ENV_ATTR = "legacyPackages.x86_64-linux.environments."
DEB_ATTR = "legacyPackages.x86_64-linux.debs."


def run(
    start: Path,
    name: str,
    *,
    fmt: str,
    compression: str,
    output: Path | None,
    push: str | None,
    log: Log,
    out: Log,
) -> int:
    hit = _stamp.check(start, name, fmt, compression, output)
    if hit is not None:
        out(f"{hit[0].dest}: {hit[1]} (unchanged)")
        if push:
            _push(hit[0], push, log)
        return 0
    executor.require_nix()
    p = load_project(start, log)
    image = _image(p.spec, name)
    req = _stamp.Request(name, fmt, compression, _stamp.destination(p.root, name, fmt, output))
    generate(p)
    order = [s for s in p.graph.order() if s in p.graph.upstream([image.step])]
    before = _noop.snapshot(p.root, *_watched(p, order))
    outputs = _build(p, order, log)
    manifest, referrer = _export(p, image, req, outputs, log)
    _stamp.remember(p.root, req, before, outputs, manifest.digest)
    out(f"{req.dest}: {manifest.digest}")
    out(f"  provenance: {referrer.digest} (subject {manifest.digest})")
    if push:
        _push(req, push, log)
    return 0


# --------------------------------------------------------------------------- stages


def _image(spec: SpecType, name: str) -> Image:
    if name not in spec.images:
        known = ", ".join(sorted(spec.images)) or "none: add [images.NAME] to reproflake.toml"
        raise UsageError(f"unknown image {name!r}", hint=f"known images: {known}")
    return spec.images[name]


def _build(p: Project, order: Sequence[str], log: Log) -> dict[str, str]:
    """Build the step and what it needs (nothing, when built); their output paths."""
    executor.ensure_in_store(store_items(p, order))
    host = hardware.probe()
    wanted = {
        f for s in order if (hw := p.spec.steps[s].hardware) is not None for f in hw.features()
    }
    missing = host.missing(wanted)
    if missing and not hardware.remote_builders_configured():
        raise HardwareError(
            f"the image's steps need {', '.join(missing)}; this machine has {host.describe()}, "
            "and Nix has no remote builders",
            hint="export the image on a machine that can build the step, or add a Nix remote "
            "builder that advertises these system features",
        )

    def progress(kind: str, step: str, seconds: float) -> None:
        if kind == "start":
            log(f"building {step} …")
        elif kind in ("done", "failed"):
            log(f"{'finished' if kind == 'done' else 'failed'} {step} in {seconds:.1f}s")

    features = sorted(f for f in wanted if host.offers(f))
    outcome = executor.build(p.root, order, progress, labels=labels(p), features=features)
    if outcome.failed or any(s not in outcome.outputs for s in order):
        failed = sorted(outcome.failed) or [s for s in order if s not in outcome.outputs]
        raise BuildError(
            f"cannot export: step(s) {', '.join(failed)} did not build",
            hint="run `reproflake build` to see the step's log, fix it, and export again",
        )
    return dict(outcome.outputs)


def _sri(hex_digest: str) -> str:
    return "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _environment(p: Project, env: str) -> tuple[Path, dict[str, str]]:
    """The environment's root in the store, and path → package for every file in it."""
    locked = p.lock.environments[env]
    debs = {
        key: executor.fixed_path(_sri(p.lock.debs[key].sha256), key, recursive=False)
        for key in locked.debs
    }
    missing = sorted(executor.invalid_paths(debs.values()))
    attrs = [ENV_ATTR + env] + [DEB_ATTR + k for k, v in debs.items() if v in missing]
    built = executor.build_paths(p.root, attrs)
    root = Path(built[f"reproflake-env-{env}"])
    cache = user_cache_dir() / "deb-paths"

    def listing(item: tuple[str, str]) -> tuple[str, list[str]]:
        key, path = item
        deb = p.lock.debs[key]
        return deb.package, layering.deb_paths(Path(path), deb.sha256, cache)

    # In the order rootfs.sh unpacks them; read in parallel (lzma releases the GIL).
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        packages = list(pool.map(listing, debs.items()))
    python = locked.python_version
    if python:
        site = f"usr/local/lib/python{python}/dist-packages"
        packages.extend(sorted(layering.wheel_paths(root, site).items()))
    return root, layering.owners(packages)


def _workspace(p: Project, image: Image, outputs: dict[str, str]) -> layering.Layer:
    """What the step saw in its working directory: sources, inputs, needed outputs."""
    step = p.spec.steps[image.step]
    work = image.workdir.rstrip("/")
    items: list[tuple[str, Path]] = [
        (f"{work}/{rel}", p.root / rel) for rel in p.facts.sources.get(image.step, ())
    ]
    for name in step.inputs:
        for f in p.data["inputs"][name]["files"]:
            if f["kind"] == "url":
                store = executor.fixed_path(_sri(f["sha256"]), f["storeName"], recursive=False)
            else:
                store = executor.fixed_path(f["narHash"], f["storeName"], recursive=True)
            local = Path(store) if os.path.exists(store) else p.root / f["path"]
            items.append((f"{work}/{f['path']}", local))
    for need in step.needs:
        items.append((f"{work}/results/{need}", Path(outputs[need])))
    return layering.Layer(
        f"step {image.step}: working directory (sources, inputs, needed outputs)",
        layering.placed(items),
    )


def _runtime_env(p: Project, image: Image) -> dict[str, str]:
    """The variables the step ran with (as nix/step.sh sets them), then the image's own."""
    step = p.spec.steps[image.step]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "HOME": "/root",
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SOURCE_DATE_EPOCH": str(p.lock.source_date_epoch),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_CORETYPE": p.spec.environments[step.env].openblas_coretype,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OUT": image.outputs_path,
        "REPROFLAKE_STEP": image.step,
        **step.variables,
    }
    hw = step.hardware
    if hw is not None and hw.gpu == "nvidia":
        # The NVIDIA container toolkit reads these: it refuses to start the container on a
        # driver or GPU older than required, instead of the step failing at run time.
        env["NVIDIA_VISIBLE_DEVICES"] = "all"
        env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        if hw.cuda:
            env["NVIDIA_REQUIRE_CUDA"] = f"cuda>={hw.cuda}"
        if hw.compute_capability:
            env["NVIDIA_REQUIRE_ARCH"] = f"arch>={hw.compute_capability}"
    env.update(image.env)
    return env


def _git(root: Path) -> tuple[str, str]:
    """The commit checked out (or "") and where the source lives (origin's URL, or "")."""
    repo = project.repository(root)
    if repo is None or repo.head_is_unborn:
        return "", ""
    commit = str(repo.head.target)
    try:
        source = repo.remotes["origin"].url or ""
    except (KeyError, ValueError):
        source = ""
    return commit, source


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metadata(
    p: Project, image: Image, revision: str, source: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The image's labels and its manifest's annotations."""
    step = p.spec.steps[image.step]
    created = oci.rfc3339(p.lock.source_date_epoch)
    standard = {
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.title": f"{p.spec.name}/{image.name}",
    }
    if revision:
        standard["org.opencontainers.image.revision"] = revision
    if source:
        standard["org.opencontainers.image.source"] = source
    own = {
        LABEL + "step": image.step,
        LABEL + "environment": step.env,
        LABEL + "environment.packages.sha256": provenance.package_list_digest(p.lock, step.env),
        LABEL + "spec.sha256": _sha256(p.root / SPEC_FILE),
        LABEL + "lock.sha256": _sha256(p.root / "reproflake.lock"),
        LABEL + "hardware": json.dumps(step.hardware.as_dict(), sort_keys=True)
        if step.hardware
        else "{}",
        LABEL + "system-features": ",".join(step.hardware.features()) if step.hardware else "",
    }
    if step.hardware:
        for key, value in step.hardware.as_dict().items():
            shown = ",".join(value) if isinstance(value, list) else str(value)
            own[f"{LABEL}hardware.{key}"] = shown
    labels_ = {**standard, **image.labels, **own}
    annotations = {**standard, **own}
    return labels_, annotations


def _export(
    p: Project, image: Image, req: _stamp.Request, outputs: dict[str, str], log: Log
) -> tuple[oci.Descriptor, oci.Descriptor]:
    step = p.spec.steps[image.step]
    env_root, owner_of = _environment(p, step.env)
    plan = layering.environment_layers(env_root, owner_of, step.env)
    if image.workspace:
        workspace = _workspace(p, image, outputs)
        if workspace.entries:
            plan.append(workspace)
    plan.append(
        layering.Layer(
            f"step {image.step}: outputs",
            layering.placed([(image.outputs_path, Path(outputs[image.step]))]),
        )
    )
    store = oci.BlobStore(user_cache_dir() / "oci")
    sde = p.lock.source_date_epoch
    # Layers compress in parallel: zlib and zstd release the interpreter's lock.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        blobs = list(pool.map(lambda layer: store.layer(layer, sde, req.compression), plan))
    revision, source = _git(p.root)
    labels_, annotations = _metadata(p, image, revision, source)
    cfg = oci.ImageConfig(
        created=oci.rfc3339(sde),
        entrypoint=image.entrypoint,
        cmd=image.cmd,
        env=_runtime_env(p, image),
        workdir=image.workdir,
        labels=labels_,
        annotations=annotations,
    )
    manifest = oci.image(store, blobs, cfg)
    work = image.workdir.rstrip("/")
    facts = provenance.Facts(
        image=f"{p.spec.name}/{image.name}",
        step=image.step,
        env=step.env,
        revision=revision,
        spec_sha256=_sha256(p.root / SPEC_FILE),
        lock_sha256=_sha256(p.root / "reproflake.lock"),
        outputs={s: outputs[s] for s in [image.step, *step.needs]},
        sources={
            f"{work}/{rel}": _sha256(p.root / rel) for rel in p.facts.sources.get(image.step, ())
        },
    )
    statement = provenance.statement(facts, manifest, blobs, p.lock, step.inputs)
    referrer = oci.referrer(
        store,
        manifest,
        oci.IN_TOTO,
        statement,
        {"org.opencontainers.image.created": oci.rfc3339(sde)},
    )
    req.dest.parent.mkdir(parents=True, exist_ok=True)
    if req.fmt == "oci-dir":
        # The layout's index lists the referrer beside the image, as image-spec 1.1 has it.
        tagged = oci.Descriptor(MANIFEST_MEDIA, manifest.digest, manifest.size, {oci.REF_NAME: TAG})
        oci.write_dir(store, [tagged, referrer], req.dest)
    else:
        # An archive is what `podman load` reads, and it takes only an index of one image:
        # the referrer's blobs travel inside, named by an annotation on the image.
        tagged = oci.Descriptor(
            MANIFEST_MEDIA,
            manifest.digest,
            manifest.size,
            {oci.REF_NAME: TAG, PROVENANCE: referrer.digest},
        )
        oci.write_archive(store, [tagged], req.dest, sde, extra=[referrer])
    size = sum(b.descriptor.size for b in blobs)
    log(f"image {image.name}: {len(blobs)} layers, {size / 1e6:.1f} MB ({req.compression})")
    return manifest, referrer


# --------------------------------------------------------------------------- no-op exports


def _watched(p: Project, order: Sequence[str]) -> tuple[list[str], list[str]]:
    """What an export reads from the project: source globs, local inputs, the library,
    and git's record of the commit (the image names it)."""
    patterns = [pat for s in order for pat in p.spec.steps[s].sources]
    paths: list[str] = [".reproflake/lib"]
    for name in {i for s in order for i in p.spec.steps[s].inputs}:
        item = p.spec.inputs[name]
        if item.path is not None and not item.is_url:
            (patterns if item.is_glob else paths).append(item.path)
    repo = project.repository(p.root)
    if repo is not None:
        gitdir = Path(repo.path)
        paths += [str(gitdir / "HEAD"), str(gitdir / "packed-refs")]
        if not repo.head_is_unborn:
            paths.append(str(gitdir / repo.head.name))
        with_config = gitdir / "config"  # origin's URL is the image's source
        paths.append(str(with_config))
    return patterns, paths


# --------------------------------------------------------------------------- pushing


def _push(req: _stamp.Request, ref: str, log: Log) -> None:
    """The image by skopeo; then its provenance referrer, under the referrers tag schema's
    tag (``sha256-<manifest hex>``: an index of the image's referrers), since registries
    without the referrers API find referrers there."""
    import tempfile

    from reproflake import _proc

    target = ref if "://" in ref else f"docker://{ref}"
    tls = ["--dest-tls-verify=false"] if _local(target) else []
    kind = "oci" if req.fmt == "oci-dir" else "oci-archive"
    _proc.run(["skopeo", "copy", "--quiet", *tls, f"{kind}:{req.dest}:{TAG}", target])
    store = oci.BlobStore(user_cache_dir() / "oci")
    manifest, referrer = _exported(req)
    repository = target.rsplit("@", 1)[0]
    if ":" in repository.split("://", 1)[1].rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    listing = store.add(oci.index([referrer]), oci.INDEX)
    tagged = oci.Descriptor(oci.INDEX, listing.digest, listing.size, {oci.REF_NAME: "referrers"})
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        layout = Path(tmp) / "referrers"
        oci.write_dir(store, [tagged], layout, extra=[referrer])
        tag = manifest.replace(":", "-")
        _proc.run(
            ["skopeo", "copy", "--quiet", "--all", *tls, f"oci:{layout}:referrers",
             f"{repository}:{tag}"]
        )  # fmt: skip
    log(f"pushed {req.dest} to {target} (provenance under tag {tag})")


def _exported(req: _stamp.Request) -> tuple[str, oci.Descriptor]:
    """The image manifest's digest and its referrer's descriptor, read from the export."""
    import tarfile

    if req.fmt == "oci-dir":
        listed = json.loads((req.dest / "index.json").read_bytes())["manifests"]
        image_entry = next(m for m in listed if oci.REF_NAME in m.get("annotations", {}))
        ref_entry = next(m for m in listed if m.get("artifactType") == oci.IN_TOTO)
        ref_digest, ref_size = ref_entry["digest"], ref_entry["size"]
        annotations = ref_entry.get("annotations", {})
    else:
        with tarfile.open(req.dest) as tar:
            member = tar.extractfile("index.json")
            assert member is not None
            image_entry = json.loads(member.read())["manifests"][0]
            ref_digest = image_entry["annotations"][PROVENANCE]
            blob = tar.extractfile(f"blobs/sha256/{ref_digest.split(':', 1)[1]}")
            assert blob is not None
            doc = blob.read()
        ref_size = len(doc)
        annotations = json.loads(doc).get("annotations", {})
    referrer = oci.Descriptor(oci.MANIFEST, ref_digest, ref_size, annotations, oci.IN_TOTO)
    return str(image_entry["digest"]), referrer


def _local(target: str) -> bool:
    """A registry on this machine is reached over plain HTTP (as in tests); others over TLS."""
    host = target.split("://", 1)[-1].split("/", 1)[0]
    return host.startswith(("127.0.0.1", "localhost", "[::1]"))
