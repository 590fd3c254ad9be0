"""Which files go into which layer of an image.

Layers follow the build. An environment's root is split by the package each file came
from: a package (Debian package or wheel) always lands in the same one of
``GROUPS`` layers, chosen by its name alone. Two environments sharing most packages
therefore share most layers byte for byte, and a version bump changes one layer. What
no package shipped (the linker cache, alternatives, /etc/passwd, console scripts) is
the environment's configuration layer. The step's working directory and its outputs
come last, each in a layer of its own, so a changed output leaves every environment
layer's digest as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reproflake.artifacts.tarball import Entry, with_parents

GROUPS = 16  # package layers at most: bounded, and enough that one new package moves little


@dataclass(frozen=True)
class Layer:
    """A layer to write: what it is (for the image's history), what it holds, and whose."""

    comment: str
    entries: tuple[Entry, ...]  # sorted, parents included
    owners: tuple[str, ...] = ()  # packages whose files it holds, sorted


def group_of(owner: str) -> int:
    """A package's layer, from its name alone (never its version or its neighbours)."""
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big") % GROUPS


def walk(top: Path, prefix: str) -> list[Entry]:
    """Every path under ``top`` as entries placed under ``prefix`` (a file: itself).

    Symbolic links are kept as links; hard links become separate files, so the bytes
    do not depend on how a store was optimised. (``os.scandir``: its entries know their
    type, which saves three system calls per file on a root of thousands.)"""
    result: list[Entry] = []

    def add(full: str, rel: str) -> None:
        if os.path.islink(full):
            result.append(Entry(rel, "symlink", target=os.readlink(full)))
        elif os.path.isdir(full):
            result.append(Entry(rel, "dir"))
        elif os.path.isfile(full):
            executable = bool(os.stat(full).st_mode & 0o111)  # any x bit, whoever runs this
            result.append(Entry(rel, "file", source=full, executable=executable))
        # sockets, FIFOs and devices cannot be in a Nix store path: nothing to do

    if not top.is_dir() or top.is_symlink():
        add(str(top), prefix)
        return result

    def scan(directory: str, base: str) -> None:
        with os.scandir(directory) as it:
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            rel = f"{base}/{e.name}" if base else e.name
            if e.is_symlink():
                result.append(Entry(rel, "symlink", target=os.readlink(e.path)))
            elif e.is_dir(follow_symlinks=False):
                result.append(Entry(rel, "dir"))
                scan(e.path, rel)
            elif e.is_file(follow_symlinks=False):
                executable = bool(e.stat(follow_symlinks=False).st_mode & 0o111)
                result.append(Entry(rel, "file", source=e.path, executable=executable))

    scan(str(top), prefix)
    return result


def deb_listing(deb: bytes) -> list[str]:
    """The paths a .deb installs (normalised, directories too), sorted.

    Standard library only (the image derivation lists the .debs in the sandbox); the
    lock's own reader (lock/deb.py) checks far more, and has already accepted the file.
    (Its modules are imported here: once the lists are cached, exports never need them.)"""
    import bz2
    import gzip
    import io
    import lzma
    import tarfile

    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package: missing the '!<arch>' ar header")
    pos = 8
    while pos + 60 <= len(deb):
        head = deb[pos : pos + 60]
        name = head[:16].decode("ascii", "replace").rstrip(" ").rstrip("/")
        size = int(head[48:58].decode("ascii").strip())
        body = deb[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)  # members are 2-byte aligned
        if not name.startswith("data.tar"):
            continue
        opener: dict[str, Callable[[bytes], bytes]] = {".xz": lzma.decompress, ".lzma": lzma.decompress, ".gz": gzip.decompress,
                  ".bz2": bz2.decompress, "": lambda b: b}  # fmt: skip
        suffix = name[len("data.tar") :]
        if suffix not in opener:
            raise ValueError(f"cannot read the package's {name} (expected xz, gzip or bzip2)")
        with tarfile.open(fileobj=io.BytesIO(opener[suffix](body)), mode="r:") as tar:
            found = {posixpath.normpath(m.name).lstrip("/") for m in tar.getmembers()}
        return sorted(found - {".", ""})
    raise ValueError("not a Debian package: no data.tar member")


def deb_paths(deb: Path, sha256: str, cache: Path) -> list[str]:
    """deb_listing, cached by the .deb's sha256."""
    cached = cache / f"{sha256}.json"
    try:
        return list(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    from reproflake.fsutil import write_atomic

    paths = deb_listing(deb.read_bytes())
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cached, json.dumps(paths) + "\n")
    return paths


def wheel_paths(root: Path, site: str) -> dict[str, list[str]]:
    """Each installed wheel's files (from its RECORD), relative to ``root``: name → paths."""
    found: dict[str, list[str]] = {}
    base = root / site
    if not base.is_dir():
        return found
    for info in sorted(base.glob("*.dist-info")):
        record = info / "RECORD"
        if not record.is_file():
            continue
        name = info.name.split("-", 1)[0].lower().replace("_", "-")
        paths = []
        for line in record.read_text(errors="replace").splitlines():
            rel = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if rel:
                paths.append(posixpath.normpath(posixpath.join(site, rel)))
        found[f"wheel:{name}"] = paths
    return found


def owners(packages: Sequence[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """path → the package that put it there, in installation order (the last one wins,
    as when each package is unpacked over the previous ones)."""
    result: dict[str, str] = {}
    for owner, paths in packages:
        for path in paths:
            result[path] = owner
    return result


def environment_layers(root: Path, owner_of: Mapping[str, str], name: str) -> list[Layer]:
    """The environment's root in at most GROUPS package layers plus its configuration."""
    groups: dict[int, list[Entry]] = {}
    group_owners: dict[int, set[str]] = {}
    config: list[Entry] = []
    entries = walk(root, "")
    nonempty = {posixpath.dirname(e.path) for e in entries}
    for entry in entries:
        if entry.kind == "dir" and entry.path in nonempty:
            continue  # comes as a parent of what it holds, in every layer that needs it
        owner = owner_of.get(entry.path)
        if owner is None:
            config.append(entry)
            continue
        g = group_of(owner)
        groups.setdefault(g, []).append(entry)
        group_owners.setdefault(g, set()).add(owner)
    layers = [
        Layer(
            f"environment {name}: packages, group {g + 1} of {GROUPS}",
            tuple(with_parents(groups[g])),
            tuple(sorted(group_owners[g])),
        )
        for g in sorted(groups)
    ]
    if config:
        layers.append(Layer(f"environment {name}: configuration", tuple(with_parents(config))))
    return layers


def placed(items: Iterable[tuple[str, Path]]) -> tuple[Entry, ...]:
    """Files and trees from the store placed at absolute image paths, sorted with parents."""
    entries: list[Entry] = []
    for dest, source in items:
        entries.extend(walk(source, dest.strip("/")))
    return tuple(with_parents(entries))
