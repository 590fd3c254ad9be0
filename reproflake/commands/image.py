"""`reproflake image NAME`: deliver a step as a sealed OCI image.

The workflow: load the project; build the step (and what it needs) as `build` would;
realise its environment's root and the .debs it was unpacked from; split the root
into package layers, then the step's working directory and its outputs; write the
layers through the blob cache; write the config, the manifest and the provenance
referrer; write the layout; remember what it depended on, so that exporting again with
nothing changed is answered without Nix, and writing it again (removed, or in another
format or compression) is done from that record alone (_image_write.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from reproflake import executor, project, remote
from reproflake._paths import LEGACY, user_cache_dir
from reproflake.artifacts import env_layers as env_split
from reproflake.artifacts import layers as layering
from reproflake.artifacts import oci
from reproflake.artifacts import recipe as _recipe
from reproflake.artifacts.recipe import PROVENANCE, TAG, Recipe, Resolved
from reproflake.commands import _image_stamp as _stamp
from reproflake.commands import _image_write, _noop
from reproflake.commands._project import Log, Project, generate, labels, load_project, store_items
from reproflake.commands._steps import hardware_features
from reproflake.errors import BuildError, UsageError
from reproflake.spec import SPEC_FILE, Image, listing, suggest
from reproflake.spec import Spec as SpecType

ENV_ATTR = f"{LEGACY}.environments."
DEB_ATTR = f"{LEGACY}.debs."


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
    built = _stamp.built(p.root, name)
    if built is None:
        outputs = _build(p, order, log)
        built = _stamp.Built(outputs, *_environment(p, p.data["images"][image.name]))
    manifest, referrer, written = _export(p, image, req, built, log)
    _stamp.remember(p.root, req, before, built, manifest.digest, written)
    out(f"{req.dest}: {manifest.digest}")
    out(f"  provenance: {referrer.digest} (subject {manifest.digest})")
    if push:
        _push(req, push, log)
    return 0


# --------------------------------------------------------------------------- stages


def _image(spec: SpecType, name: str) -> Image:
    if name not in spec.images:
        known = listing(spec.images) or "none: add [images.NAME] to reproflake.toml"
        close = suggest(name, spec.images)
        raise UsageError(f"unknown image {name!r}", hint=f"known images: {known}{close}")
    return spec.images[name]


def _build(p: Project, order: Sequence[str], log: Log) -> dict[str, str]:
    """Build the step and what it needs (nothing, when built); their output paths."""

    executor.ensure_in_store(store_items(p, order))
    # The one hardware gate, as `build` applies it; the user's builders are handed to Nix.
    builders = remote.load(p.spec.cache.urls, p.spec.cache.public_keys)
    executor.configure_remote(builders=builders.builders_setting())
    features, _host = hardware_features(p, order, builders.offers())

    def progress(kind: str, step: str, seconds: float) -> None:
        if kind == "start":
            log(f"building {step} …")
        elif kind in ("done", "failed"):
            log(f"{'finished' if kind == 'done' else 'failed'} {step} in {seconds:.1f}s")

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


def _environment(p: Project, recipe: Recipe) -> tuple[str, list[str]]:
    """The environment's root in the store and its .debs there (built or fetched)."""
    debs = [
        executor.fixed_path(_sri(p.lock.debs[key].sha256), key, recursive=False)
        for key in recipe["debs"]
    ]
    missing = executor.invalid_paths(debs)
    attrs = [ENV_ATTR + recipe["env"]]
    attrs += [DEB_ATTR + k for k, v in zip(recipe["debs"], debs, strict=True) if v in missing]
    built = executor.build_paths(p.root, attrs)
    return built[f"reproflake-env-{recipe['env']}"], debs


def _deb_lists(p: Project, recipe: Recipe, debs: list[str]) -> list[list[str]]:
    """Each .deb's paths (read once per .deb ever, then cached by its sha256)."""
    cache = user_cache_dir() / "deb-paths"
    shas = {path: p.lock.debs[key].sha256 for key, path in zip(recipe["debs"], debs, strict=True)}
    return _recipe.list_debs(debs, lambda d: layering.deb_paths(Path(d), shas[d], cache))


def _resolved(
    p: Project, recipe: Recipe, outputs: dict[str, str], env_root: str, debs: list[str]
) -> Resolved:
    """Where this export finds the recipe's parts (the same paths the derivation gets),
    and what the working tree says."""
    sources = {rel: str(p.root / rel) for rel in recipe["sources"]}
    workspace = [[rel, path] for rel, path in sources.items()]
    for name in recipe["inputs"]:
        for f in p.data["inputs"][name]["files"]:
            if f["kind"] == "url":
                store = executor.fixed_path(_sri(f["sha256"]), f["storeName"], recursive=False)
            else:
                store = executor.fixed_path(f["narHash"], f["storeName"], recursive=True)
            local = store if os.path.exists(store) else str(p.root / f["path"])
            workspace.append([f["path"], local])
    for need in recipe["needs"]:
        workspace.append([f"results/{need}", outputs[need]])
    revision, source = _git(p.root)
    return {
        "envRoot": env_root,
        "debs": debs,
        "workspace": workspace,
        "outputs": {s: outputs[s] for s in [recipe["step"], *recipe["needs"]]},
        "sources": sources,
        "specSha256": _sha256(p.root / SPEC_FILE),
        "lockSha256": _sha256(p.root / "reproflake.lock"),
        "revision": revision,
        "source": source,
    }


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


def _export(
    p: Project, image: Image, req: _stamp.Request, built: _stamp.Built, log: Log
) -> tuple[oci.Descriptor, oci.Descriptor, tuple[Recipe, Resolved]]:
    """The image written; its manifest, its referrer, and the recipe and parts it was
    written from (recorded, to write it again without loading the project)."""
    recipe = p.data["images"][image.name]
    resolved = _resolved(p, recipe, built.outputs, built.env_root, built.debs)
    env_layers = env_split.cached(
        user_cache_dir() / "env-layers", recipe, resolved, lambda: _deb_lists(p, recipe, built.debs)
    )
    manifest, referrer = _image_write.write(image.name, recipe, resolved, env_layers, req, log)
    return manifest, referrer, (recipe, resolved)


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
        # A linked work tree has its own HEAD; refs and config are in the common dir.
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = gitdir / (gitdir / "commondir").read_text().strip()
        paths += [str(gitdir / "HEAD"), str(common / "packed-refs")]
        # The branch's ref file even before the first commit (it does not exist yet):
        # that commit then changes the image's revision, and must void the record.
        head = (gitdir / "HEAD").read_text(errors="replace").strip()
        if head.startswith("ref: "):
            paths.append(str(common / head[5:].strip()))
        paths.append(str(common / "config"))  # origin's URL is the image's source
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
