"""`reproflake release`: one deterministic archive of the project at its git commit.

Stages: the project and its commit (a dirty tree is refused unless allowed) → every
step built (Nix is not asked while the last build's record still holds) → the files
(sources tracked at the commit, the generated flake, outputs, and with --vendor every
pinned file the build used) → provenance, README, entries, SHA256SUMS → the archive, written
atomically.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pygit2

from reproflake import __version__, _proc, executor, hardware, nixgen, project
from reproflake._paths import user_cache_dir
from reproflake.artifacts import release as rel
from reproflake.artifacts import signing
from reproflake.artifacts.provenance import input_material, wheel_material
from reproflake.commands import _noop, _remote
from reproflake.commands._project import (
    Log,
    Project,
    generate,
    labels,
    load_project,
    render,
    store_items,
)
from reproflake.commands._steps import build_steps, hardware_features
from reproflake.errors import BuildError, UsageError
from reproflake.fsutil import write_atomic
from reproflake.lock.model import LOCK_FILE
from reproflake.spec import SPEC_FILE

# Not part of "dirty": files git does not track (an archive written here, for one).
_CLEAN = pygit2.GIT_STATUS_CURRENT | pygit2.GIT_STATUS_IGNORED | pygit2.GIT_STATUS_WT_NEW


def run(
    start: Path,
    *,
    log: Log,
    out: Log,
    output: Path | None = None,
    fmt: str = "tar.zst",
    vendor: bool = False,
    allow_dirty: bool = False,
    sign: Path | None = None,
) -> int:
    executor.require_nix()
    p = load_project(start, log)
    repo, commit = _commit(p, allow_dirty)
    rev = str(commit.id)
    files = render(p)
    generate(p, files)
    outputs = _build(p, log)
    # Generated files replace their tracked copies: they must agree with the lock carried.
    items = _sources(p, repo, commit, set(files)) + _generated(files)
    for step, path in sorted(outputs.items()):
        items += rel.tree(f"results/{step}", Path(path))
    if vendor:
        items += _vendored(p)
    # reproflake's own files must not collide with a tracked one either.
    names = {rel.README, rel.PROVENANCE, rel.ENTRIES, rel.SUMS, signing.SIGNATURE}
    twice = rel.duplicates(items) + sorted(i.path for i in items if i.path in names)
    if twice:
        raise UsageError(
            f"the release would hold {', '.join(twice[:5])} twice",
            hint="rename the tracked file that collides with reproflake's own "
            f"(results/, vendor/, {', '.join(sorted(names))})",
        )
    items.append(
        rel.memory(rel.README, rel.readme(p.spec.name, p.graph.order(), vendor, sign is not None))
    )
    items.append(
        rel.memory(rel.PROVENANCE, rel.statement(_provenance(p, rev, commit, outputs), items))
    )
    # Not the signature: it is the envelope of what they list, as SHA256SUMS omits it.
    items.append(rel.memory(rel.ENTRIES, rel.entries_record(items, [rel.ENTRIES, rel.SUMS])))
    items.append(rel.memory(rel.SUMS, rel.sums(items)))
    if sign is not None:  # over SHA256SUMS, which names every other file by its hash
        items.append(rel.memory(signing.SIGNATURE, signing.sign(sign, items[-1].content or b"")))
    items.sort(key=lambda i: i.path)
    mtime = _epoch(commit)
    top = f"{p.spec.name}-{rev[:12]}"
    dest = output or Path.cwd() / f"{top}.{fmt}"
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            size = rel.write(f, top, items, mtime, fmt)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    out(f"wrote {dest} ({size} bytes)")
    out(f"  {len(items)} files, commit {rev}" + (", vendored: builds offline" if vendor else ""))
    if sign is not None:
        out(f"  signed: {top}/{signing.SIGNATURE} (ssh-keygen -Y verify -n {signing.NAMESPACE})")
    return 0


def _commit(p: Project, allow_dirty: bool) -> tuple[pygit2.Repository, pygit2.Commit]:
    repo = project.repository(p.root)
    if repo is None or repo.head_is_unborn:
        raise UsageError(
            f"{p.root} is not in a git repository with a commit: a release is of a commit",
            hint="git init; git add -A; git commit, then release again",
        )
    if not allow_dirty:
        dirty = sorted(path for path, flags in repo.status().items() if flags & ~_CLEAN)
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            raise UsageError(
                f"the work tree has changes not committed: {shown}",
                hint="commit them (the release holds the commit, not the work tree), "
                "or pass --allow-dirty",
            )
    commit = repo[repo.head.target]
    assert isinstance(commit, pygit2.Commit)
    return repo, commit


def _epoch(commit: pygit2.Commit) -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    if raw:
        if not raw.isdigit():
            raise UsageError(
                f"SOURCE_DATE_EPOCH is {raw!r}, expected whole seconds since 1970",
                hint="unset it to use the commit's time",
            )
        return int(raw)
    return int(commit.commit_time)


def _build(p: Project, log: Log) -> dict[str, str]:
    order = p.graph.order()
    # What the last `reproflake build` of every step recorded, while nothing it read has
    # changed and its outputs are still in the store: Nix would build nothing (the
    # no-op build's own test), so it is not asked.
    done, touched = _noop.check(p.root, [])
    if done is not None and not touched and set(order) <= set(done["outputs"]):
        return {s: str(done["outputs"][s]) for s in order}
    executor.ensure_in_store(store_items(p, order, seed=True))
    features, _host = hardware_features(p, order, _remote.builders_only(p).offers())
    outcome = build_steps(p.root, order, log, labels=labels(p), features=features)
    missing = sorted(outcome.failed) or [s for s in order if s not in outcome.outputs]
    if missing:
        raise BuildError(
            f"cannot release: step(s) {', '.join(missing)} did not build",
            hint="run `reproflake build` to see the logs, fix the steps, commit, release again",
        )
    return dict(outcome.outputs)


def _sources(
    p: Project, repo: pygit2.Repository, commit: pygit2.Commit, generated: set[str]
) -> list[rel.Item]:
    """The project's files as the commit holds them (not as the work tree has them),
    but for the ``generated`` ones (not read: the generated copies replace them)."""
    prefix = project.in_repo(repo, p.root, "")
    found: list[rel.Item] = []

    def walk(tree: pygit2.Tree, base: str) -> None:
        for entry in tree:
            path = base + str(entry.name)
            if entry.filemode == pygit2.GIT_FILEMODE_TREE:
                if prefix.startswith(path + "/") or path.startswith(prefix):
                    sub = repo[entry.id]
                    assert isinstance(sub, pygit2.Tree)
                    walk(sub, path + "/")
                continue
            if not path.startswith(prefix) or entry.filemode == pygit2.GIT_FILEMODE_COMMIT:
                continue  # outside the project, or a submodule (no content here)
            name = path[len(prefix) :]
            if name.startswith("results/") or name in generated:
                continue  # outputs come from the store, generated files as rendered
            blob = repo[entry.id]
            assert isinstance(blob, pygit2.Blob)
            if entry.filemode == pygit2.GIT_FILEMODE_LINK:
                target = blob.data.decode("utf-8", "surrogateescape")
                found.append(rel.Item(name, hashlib.sha256(blob.data).hexdigest(), link=target))
            else:
                executable = entry.filemode == pygit2.GIT_FILEMODE_BLOB_EXECUTABLE
                found.append(rel.memory(name, blob.data, executable=executable))

    walk(commit.tree, "")
    return found


def _generated(files: dict[str, tuple[bytes, int]]) -> list[rel.Item]:
    """The flake as reproflake generates it for this spec and lock (whether or not the
    commit tracks it: it must match the lock the release carries)."""
    return [
        rel.memory(path, data, executable=bool(mode & 0o111))
        for path, (data, mode) in files.items()
    ]


def _sri(hex_digest: str) -> str:
    return "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _store_file(sha256: str, name: str, what: str) -> Path:
    path = Path(executor.fixed_path(_sri(sha256), name, recursive=False))
    if not path.exists():
        raise BuildError(
            f"cannot vendor {what}: {path} is not in the Nix store",
            hint="run `reproflake build` (it fetches every pinned file), then release again",
        )
    return path


def _vendored(p: Project) -> list[rel.Item]:
    """Every pinned file the build used, named as the flake's data names it in vendor/."""
    found = []
    for key, deb in sorted(p.lock.debs.items()):
        path = _store_file(deb.sha256, key, f"{deb.package} {deb.version}")
        found.append(rel.on_disk(f"{rel.VENDOR}/{key}", path, sha256=deb.sha256))
    for key, wheel in sorted(p.lock.wheels.items()):
        path = _store_file(wheel.sha256, key, f"{wheel.name} {wheel.version}")
        found.append(rel.on_disk(f"{rel.VENDOR}/{key}", path, sha256=wheel.sha256))
    for name, data in sorted(p.data["inputs"].items()):
        for f in data["files"]:
            if f["kind"] == "url":
                path = _store_file(f["sha256"], f["storeName"], f"input {name}")
                found.append(
                    rel.on_disk(f"{rel.VENDOR}/{f['storeName']}", path, sha256=f["sha256"])
                )
            elif f["kind"] == "external":  # outside git: the file itself, at its path
                found.append(rel.on_disk(f["path"], p.root / f["path"]))
    return found


def _provenance(
    p: Project, rev: str, commit: pygit2.Commit, outputs: dict[str, str]
) -> rel.Provenance:
    return rel.Provenance(
        project=p.spec.name,
        commit=rev,
        commit_time=int(commit.commit_time),
        spec_sha256=_file_sha256(p.root / SPEC_FILE),
        lock_sha256=_file_sha256(p.root / LOCK_FILE),
        materials=_materials(p),
        builder={"reproflake": __version__, "nix": _nix_version()},
        host=hardware.probe().as_dict(),
        outputs=outputs,
    )


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nix_version() -> str:
    """`nix --version`, remembered per Nix binary (its resolved path, size, change time
    and inode: another Nix, or the same path installed again, asks again). A fact of
    the provenance that would otherwise cost a process in every release."""
    nix = os.path.realpath(executor.require_nix())
    st = os.stat(nix)
    key = f"{nix} {st.st_size} {st.st_ctime_ns} {st.st_ino}"
    cache = user_cache_dir() / "nix-version.json"
    try:
        known = json.loads(cache.read_text())
        if known["key"] == key:
            return str(known["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    version = _proc.run(["nix", "--version"]).stdout.strip()
    with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
        write_atomic(cache, json.dumps({"key": key, "version": version}, sort_keys=True) + "\n")
    return version


def _materials(p: Project) -> list[dict[str, Any]]:
    lock = p.lock
    found: list[dict[str, Any]] = []
    for d in sorted(lock.debs.values(), key=lambda d: d.key):
        found.append(
            {"name": f"deb:{d.package}={d.version}:{d.architecture}", "uri": d.url,
             "digest": {"sha256": d.sha256}}
        )  # fmt: skip
    found += [wheel_material(w) for w in sorted(lock.wheels.values(), key=lambda w: w.key)]
    found += [input_material(name, pinned) for name, pinned in sorted(lock.inputs.items())]
    seed = lock.seed
    found.append(
        {"name": f"seed:{seed.package}={seed.version}", "uri": lock.debs[seed.deb].url,
         "digest": {"sha256": seed.sha256},
         "annotations": {"member": seed.member, "narHash": seed.nar_hash}}
    )  # fmt: skip
    for name, content in sorted(nixgen.library().items()):
        found.append(
            {
                "name": f"nix-library:{name}",
                "digest": {"sha256": hashlib.sha256(content).hexdigest()},
            }
        )
    return found
