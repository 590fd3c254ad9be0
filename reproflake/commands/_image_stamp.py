"""The no-op export, answered without Nix when nothing the last export read has changed.

After an export, a stamp records what it read (the build's snapshot of spec, lock,
sources, inputs and library, plus git's record of the commit and the origin), the
store paths it took outputs, the environment's root and the .debs from, and the stat
of every file it wrote. If all of that still holds, the image on disk is the one an
export would write again. Light on purpose: no spec parsing, no Nix, no git library.
If only the image is gone, or another format or compression is asked for, the recipe
and parts recorded still hold: the image is written again from them, without loading
the project or asking Nix (_image_write.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproflake.commands import _noop
from reproflake.fsutil import linked_own_dir, write_atomic

if TYPE_CHECKING:  # the no-op answer imports no writer
    from reproflake.artifacts.recipe import Recipe, Resolved

STAMP = Path(".reproflake/cache/images.json")
SPEC = "reproflake.toml"


@dataclass(frozen=True)
class Request:
    name: str
    fmt: str
    compression: str
    dest: Path

    @property
    def key(self) -> str:
        return f"{self.name} {self.fmt} {self.compression} {self.dest}"


def destination(root: Path, name: str, fmt: str, output: Path | None) -> Path:
    """``-o``, or results/NAME.oci (a directory) / results/NAME.oci.tar (an archive)."""
    if output is None:
        return root / "results" / (f"{name}.oci" if fmt == "oci-dir" else f"{name}.oci.tar")
    return output if output.is_absolute() else Path.cwd() / output


def _target(dest: Path) -> list[Any]:
    """The written image as the file system sees it (a rewritten file changes its stat)."""
    files = [dest]
    if dest.is_dir():
        files = [dest / "index.json", dest / "oci-layout"]
        blobs = dest / "blobs" / "sha256"
        files += sorted(blobs.iterdir()) if blobs.is_dir() else []
    rows = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            return []
        rows.append([str(f), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return rows


def _load(root: Path) -> dict[str, Any]:
    tool = _noop.tool()
    try:
        stamp = json.loads((root / STAMP).read_text())
        if stamp.get("tool") == tool and isinstance(stamp.get("exports"), dict):
            return dict(stamp)
    except (OSError, ValueError):
        pass
    return {"tool": tool, "exports": {}}


@dataclass(frozen=True)
class Built:
    """What an export took from the store: the steps' outputs, the environment's root
    and the .debs it was unpacked from."""

    outputs: dict[str, str]
    env_root: str
    debs: list[str]


def remember(
    root: Path,
    req: Request,
    before: dict[str, Any],
    built: Built,
    manifest: str,
    written: tuple[Recipe, Resolved],
) -> None:
    """Record an export: what it read, the store paths it took, the image's recipe and
    parts as it wrote them (``written``), and the stat of what it wrote."""
    stamp = _load(root)
    stamp["exports"][req.key] = {
        "image": req.name,
        "snapshot": _noop.settled(root, before),
        "outputs": built.outputs,
        "envRoot": built.env_root,
        "debs": built.debs,
        "recipe": written[0],
        "resolved": written[1],
        "target": _target(req.dest),
        "manifest": manifest,
    }
    write_atomic(root / STAMP, json.dumps(stamp, sort_keys=True) + "\n")


def recorded(root: Path, name: str) -> tuple[dict[str, Any], Built, Recipe, Resolved] | None:
    """An earlier export of image ``name`` whose snapshot still holds, with every file and
    store path it wrote from still there: its snapshot, recipe and parts, from which
    the same image is written again without loading the project (the recipe follows
    from the spec, the lock and the sources, all in the snapshot; the parts are the
    recorded store paths and files)."""
    for _key, entry in sorted(_load(root)["exports"].items()):
        if entry.get("image") != name or "recipe" not in entry:
            continue
        resolved = entry["resolved"]
        paths = [resolved["envRoot"], *resolved["debs"], *resolved["outputs"].values(),
                 *(src for _rel, src in resolved["workspace"]), *resolved["sources"].values()]  # fmt: skip
        if all(os.path.exists(path) for path in paths) and _noop.holds(root, entry["snapshot"]):
            built = Built(dict(entry["outputs"]), str(entry["envRoot"]), list(entry["debs"]))
            return entry["snapshot"], built, entry["recipe"], resolved
    return None


def built(root: Path, name: str) -> Built | None:
    """What an earlier export of image ``name`` (any format, compression or destination)
    took from the store, if nothing it read has changed since and all of it is still
    there: the same spec, lock, sources and library give the same derivations, so
    Nix need not be asked again. Only the writing is left to do."""
    for _key, entry in sorted(_load(root)["exports"].items()):
        if entry.get("image") != name:
            continue
        outputs, env_root, debs = entry["outputs"], entry["envRoot"], entry["debs"]
        if not all(os.path.exists(path) for path in [*outputs.values(), env_root, *debs]):
            continue
        if _noop.holds(root, entry["snapshot"]):
            return Built(dict(outputs), str(env_root), list(debs))
    return None


def _still(root: Path, req: Request) -> str | None:
    entry = _load(root)["exports"].get(req.key)
    if not entry or not entry["target"] or _target(req.dest) != entry["target"]:
        return None
    if not _noop.holds(root, entry["snapshot"]):
        return None
    if not all(os.path.exists(path) for path in entry["outputs"].values()):
        return None
    return str(entry["manifest"])


def check(
    start: Path, name: str, fmt: str, compression: str, output: Path | None
) -> tuple[Request, str] | None:
    """The request and its image's manifest digest, if its last export still holds."""
    here = start.resolve()
    root = next((d for d in (here, *here.parents) if (d / SPEC).is_file()), None)
    if root is None or linked_own_dir(root) is not None:
        return None
    req = Request(name, fmt, compression, destination(root, name, fmt, output))
    digest = _still(root, req)
    return None if digest is None else (req, digest)
