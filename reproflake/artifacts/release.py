"""A release archive: the project at a commit, its outputs, their hashes and provenance.

One deterministic tar (zstd or gzip) under one top directory. Its bytes depend only on
the files put in it and the one time every entry carries (the commit's, or
SOURCE_DATE_EPOCH): entries are normalised and sorted by :mod:`tarball`. Besides the
files, the archive holds ``SHA256SUMS`` (every other file, as ``sha256sum -c`` reads
it), ``provenance.json`` (an in-toto statement, SLSA provenance v1) and a README that
says how to reproduce it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from reproflake.artifacts import tarball
from reproflake.artifacts.oci import canonical

FORMATS = {"tar.zst": "zstd", "tar.gz": "gzip"}
SUMS = "SHA256SUMS"
PROVENANCE = "provenance.json"
ENTRIES = "entries.json"
README = "README.release.md"
STATEMENT = "https://in-toto.io/Statement/v1"
SLSA = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:reproflake:release:v1"
VENDOR = "vendor"
# Files whose bytes are compressed already (package archives, compressed data, images):
# the archive stores them in zstd's raw blocks instead of compressing them again, which
# would take most of the packing time and save under one percent of their size.
COMPRESSED = (
    ".7z", ".bz2", ".deb", ".gz", ".jar", ".jpeg", ".jpg", ".lz", ".lzma", ".png",
    ".tgz", ".txz", ".udeb", ".webp", ".whl", ".xz", ".zip", ".zst",
)  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One file of the release: its bytes in memory (``content``) or in a file (``source``)."""

    path: str  # inside the top directory
    sha256: str
    content: bytes | None = None
    source: str = ""
    executable: bool = False
    link: str = ""  # a symbolic link's target (then sha256 is of the target text)


def memory(path: str, content: bytes, *, executable: bool = False) -> Item:
    return Item(path, hashlib.sha256(content).hexdigest(), content=content, executable=executable)


def on_disk(path: str, source: Path, *, sha256: str | None = None) -> Item:
    """A file read when the archive is written; ``sha256`` when known already (a file in
    the store under its content-addressed path)."""
    if source.is_symlink():
        target = os.readlink(source)
        return Item(path, hashlib.sha256(target.encode()).hexdigest(), link=target)
    if sha256 is None:
        digest = hashlib.sha256()
        with source.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        sha256 = digest.hexdigest()
    return Item(path, sha256, source=str(source), executable=os.access(source, os.X_OK))


def tree(prefix: str, root: Path) -> list[Item]:
    """Every file and link under ``root`` (a store path: a file or a directory)."""
    if not root.is_dir() or root.is_symlink():
        return [on_disk(prefix, root)]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        links = [d for d in dirnames if (base / d).is_symlink()]
        for name in sorted(filenames + links):
            rel = (base / name).relative_to(root).as_posix()
            found.append(on_disk(f"{prefix}/{rel}", base / name))
    return found


def sums(items: Iterable[Item]) -> bytes:
    """``sha256sum`` format: every regular file; `sha256sum -c` checks them."""
    lines = sorted(f"{i.sha256}  {i.path}\n" for i in items if not i.link)
    return "".join(lines).encode()


def entries_record(items: Iterable[Item], later: Iterable[str]) -> bytes:
    """entries.json: every path of the release (but its top directory) with what
    SHA256SUMS cannot say: its kind, a file's mode, a link's target. SHA256SUMS lists
    this file, so a signature over SHA256SUMS covers links, modes and directories too.
    ``later``: the plain files added after it (itself, SHA256SUMS; not the signature,
    the envelope around them, which SHA256SUMS does not list either)."""
    found = [
        tarball.Entry(i.path, "symlink", target=i.link)
        if i.link
        else tarball.Entry(i.path, "file", executable=i.executable)
        for i in items
    ]
    found += [tarball.Entry(name, "file") for name in later]
    record: dict[str, dict[str, str]] = {}
    for e in tarball.with_parents(found):
        if e.kind == "symlink":
            record[e.path] = {"kind": "symlink", "target": e.target}
        elif e.kind == "file":
            record[e.path] = {"kind": "file", "mode": f"{e.mode():04o}"}
        else:
            record[e.path] = {"kind": "dir"}
    return canonical({"entries": record})


@dataclass(frozen=True)
class Provenance:
    """The facts the statement records besides the files themselves."""

    project: str
    commit: str
    commit_time: int
    spec_sha256: str
    lock_sha256: str
    materials: Sequence[Mapping[str, Any]]
    builder: Mapping[str, str]  # reproflake and Nix versions
    host: Mapping[str, object]  # the hardware profile of the machine that built it
    outputs: Mapping[str, str]  # step → store path


def statement(facts: Provenance, items: Sequence[Item]) -> bytes:
    """An in-toto Statement v1, SLSA provenance v1 predicate; subjects: every output file."""
    subjects = [
        {"name": i.path, "digest": {"sha256": i.sha256}}
        for i in sorted(items, key=lambda i: i.path)
        if i.path.startswith("results/") and not i.link
    ]
    doc = {
        "_type": STATEMENT,
        "subject": subjects,
        "predicateType": SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "project": facts.project,
                    "commit": facts.commit,
                    "spec": {"path": "reproflake.toml", "sha256": facts.spec_sha256},
                    "lock": {"path": "reproflake.lock", "sha256": facts.lock_sha256},
                },
                "internalParameters": {"outputs": dict(sorted(facts.outputs.items()))},
                "resolvedDependencies": list(facts.materials),
            },
            "runDetails": {
                "builder": {
                    "id": "urn:reproflake:nix-sandbox",
                    "version": dict(sorted(facts.builder.items())),
                },
                "metadata": {"invocationId": facts.commit},
                "byproducts": [{"name": "host", "annotations": {"hardware": facts.host}}],
            },
        },
    }
    return canonical(doc)


def readme(project: str, steps: Sequence[str], vendored: bool, signed: bool = False) -> bytes:
    first = steps[0] if steps else "STEP"
    offline = (
        "Every .deb, wheel and URL input the build used is in vendor/: nothing is downloaded."
        if vendored
        else "The pinned .debs, wheels and URL inputs are downloaded from the URLs in "
        "reproflake.lock (release with --vendor to carry them)."
    )
    check_signature = (
        """
SHA256SUMS is signed (SHA256SUMS.sig, an SSH signature): check it against the
signer's public key before trusting the hashes:

    echo "signer $(cat signer_key.pub)" > allowed_signers
    ssh-keygen -Y verify -f allowed_signers -I signer -n reproflake-release \\
      -s SHA256SUMS.sig < SHA256SUMS
"""
        if signed
        else ""
    )
    text = f"""# {project}: a reproflake release

This directory is the project at one git commit, with what its build produced
(results/), the hashes of every file (SHA256SUMS) and an in-toto provenance
statement (provenance.json). {offline}

Check the files:

    sha256sum -c SHA256SUMS
{check_signature}
Reproduce with reproflake (extracts safely, builds offline, compares every output):

    reproflake reproduce ARCHIVE

Reproduce with Nix alone (Nix 2.8 or later, sandbox on), in this directory:

    nix --extra-experimental-features 'nix-command flakes ca-derivations' \\
      --option substituters '' build .#{first}

Steps are content-addressed: a reproduced step has the store path recorded in
provenance.json (internalParameters.outputs); its files match SHA256SUMS.
"""
    return text.encode()


def entries(top: str, items: Sequence[Item]) -> list[tarball.Entry]:
    found = []
    for i in items:
        path = f"{top}/{i.path}"
        if i.link:
            found.append(tarball.Entry(path, "symlink", target=i.link))
        else:
            found.append(
                tarball.Entry(
                    path,
                    "file",
                    source=i.source,
                    executable=i.executable,
                    content=i.content,
                    stored=i.path.lower().endswith(COMPRESSED),
                )
            )
    return tarball.with_parents(found)


def write(dest: BinaryIO, top: str, items: Sequence[Item], mtime: int, fmt: str) -> int:
    """The archive into ``dest``; its size.

    No digest of the archive itself: SHA256SUMS (inside it) names every file by its hash,
    and the archive is deterministic, so `sha256sum` of it is the user's when wanted.
    Hashing the whole stream cost about as much CPU as compressing it (its files are
    mostly compressed .debs and wheels, which zstd passes through quickly)."""
    written = tarball.write_tar(
        entries(top, items), mtime, dest, FORMATS[fmt], diff_id=False, digest=False
    )
    return written.size


def duplicates(items: Sequence[Item]) -> list[str]:
    seen: set[str] = set()
    twice = []
    for i in items:
        if i.path in seen:
            twice.append(i.path)
        seen.add(i.path)
    return twice
