"""Writing an image from its recipe and parts; and writing it again, when only the image
is missing, without loading the project.

`reproflake image` loads the project (the spec, the lock, git, the generated flake),
builds, and then writes. When the export record says nothing the last export read has
changed (:func:`_image_stamp.recorded`) and the image is gone or wanted in another
format or compression, all of that would give the same recipe and parts again: they
are taken from the record and only the writing is done, with none of the project's
modules imported. Imports stay light here for that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from reproflake._paths import user_cache_dir
from reproflake.artifacts import env_layers as env_split
from reproflake.artifacts import layers, oci
from reproflake.artifacts import recipe as _recipe
from reproflake.artifacts.recipe import Recipe, Resolved
from reproflake.commands import _image_stamp as _stamp

Log = Callable[[str], None]


def write(
    name: str,
    recipe: Recipe,
    resolved: Resolved,
    env_layers: Sequence[layers.Layer],
    req: _stamp.Request,
    log: Log,
) -> tuple[oci.Descriptor, oci.Descriptor]:
    """The image through the blob cache to ``req.dest``; its manifest's and provenance
    referrer's descriptors. ``env_layers``: the environment's split (env_layers.py)."""
    store = oci.BlobStore(user_cache_dir() / "oci")
    manifest, referrer, blobs = _recipe.write_image(
        store, recipe, resolved, env_layers, req.compression
    )
    req.dest.parent.mkdir(parents=True, exist_ok=True)
    _recipe.write_layout(store, manifest, referrer, req.fmt, req.dest, recipe["sourceDateEpoch"])
    size = sum(b.descriptor.size for b in blobs)
    log(f"image {name}: {len(blobs)} layers, {size / 1e6:.1f} MB ({req.compression})")
    return manifest, referrer


def again(
    start: Path, name: str, fmt: str, compression: str, output: Path | None, *, log: Log, out: Log
) -> bool:
    """Write the image from the last export's record; False when it does not hold (the
    full path then loads the project, and builds what is needed)."""
    here = start.resolve()
    root = next((d for d in (here, *here.parents) if (d / _stamp.SPEC).is_file()), None)
    if root is None:
        return False
    found = _stamp.recorded(root, name)
    if found is None:
        return False
    snapshot, built, recipe, resolved = found
    req = _stamp.Request(name, fmt, compression, _stamp.destination(root, name, fmt, output))
    # Kept when the record was written; without it the .debs would have to be listed.
    env_layers = env_split.lookup(user_cache_dir() / "env-layers", recipe, resolved)
    if env_layers is None:
        return False
    manifest, referrer = write(name, recipe, resolved, env_layers, req, log)
    _stamp.remember(root, req, snapshot, built, manifest.digest, (recipe, resolved))
    out(f"{req.dest}: {manifest.digest}")
    out(f"  provenance: {referrer.digest} (subject {manifest.digest})")
    return True
