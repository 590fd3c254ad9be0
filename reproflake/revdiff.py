"""What changed between two revisions of a project, and which steps it affects.

A revision is a git commit (read with pygit2, nothing checked out) or the
working tree. Both sides are compared key by key: the spec, the lock's pins
(package and wheel versions, data hashes), and every step's source files;
then each step's components tell which steps a change reaches directly, and
the graph which ones follow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from reproflake import graph
from reproflake._globs import match_names
from reproflake.errors import UsageError
from reproflake.fingerprint import (
    environment_components,
    environment_digest,
    own_components,
)
from reproflake.lock import model
from reproflake.nixgen import Facts
from reproflake.spec import SPEC_FILE, Hardware, Spec, parse, parse_toml
from reproflake.verdicts import changes, executable, source_component

WORKTREE = "working tree"


@dataclass(frozen=True)
class Snapshot:
    label: str
    spec: Spec
    raw: Mapping[str, Any]
    lock: model.Lock | None
    files: tuple[str, ...]  # every file path in the revision
    read: Callable[[str], bytes | None]
    mode: Callable[[str], int]  # a file's mode there (0 if missing): its executable bit counts


def _commit(repo: pygit2.Repository, rev: str) -> pygit2.Commit:
    if repo.head_is_unborn:
        raise UsageError(
            "the repository has no commits yet, so there is nothing to compare with",
            hint="commit the project first (git add -A && git commit)",
        )
    try:
        obj = repo.revparse_single(rev)
        return obj.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        if repo.is_shallow:
            raise UsageError(
                f"revision {rev!r} is not in this shallow clone's history",
                hint="fetch the full history: git fetch --unshallow",
            ) from None
        raise UsageError(
            f"unknown revision {rev!r}",
            hint="give a commit, branch or tag (see `git log --oneline`)",
        ) from None


def _tree_files(tree: pygit2.Tree, prefix: str = "") -> list[str]:
    found = []
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.type_str == "tree":
            found.extend(_tree_files(entry, path + "/"))  # type: ignore[arg-type]
        else:
            found.append(path)
    return found


def snapshot_rev(repo: pygit2.Repository, root: Path, rev: str) -> Snapshot:
    commit = _commit(repo, rev)
    prefix = Path(repo.workdir).resolve()
    sub = root.resolve().relative_to(prefix).as_posix()
    tree = commit.tree
    if sub != ".":
        try:
            tree = tree[sub].peel(pygit2.Tree)
        except KeyError:
            raise UsageError(f"{rev}: the project directory {sub} does not exist there") from None

    def read(rel: str) -> bytes | None:
        try:
            return bytes(tree[rel].peel(pygit2.Blob).data)
        except (KeyError, ValueError):
            return None

    def mode(rel: str) -> int:
        try:
            return int(tree[rel].filemode)  # git keeps 100755 or 100644 for a file
        except KeyError:
            return 0

    label = f"{rev} ({str(commit.id)[:10]})"
    return _snapshot(label, root, read, mode, tuple(sorted(_tree_files(tree))))


def snapshot_worktree(root: Path) -> Snapshot:
    def read(rel: str) -> bytes | None:
        try:
            return (root / rel).read_bytes()
        except OSError:
            return None

    def mode(rel: str) -> int:
        try:
            return (root / rel).stat().st_mode
        except OSError:
            return 0

    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", "results/", ".reproflake/")):
            files.append(rel)
    return _snapshot(WORKTREE, root, read, mode, tuple(files))


def _snapshot(
    label: str,
    root: Path,
    read: Callable[[str], bytes | None],
    mode: Callable[[str], int],
    files: tuple[str, ...],
) -> Snapshot:
    text = read(SPEC_FILE)
    if text is None:
        raise UsageError(f"{label}: there is no {SPEC_FILE}")
    spec = parse(
        text.decode(), root / SPEC_FILE if label == WORKTREE else Path(f"{label}:{SPEC_FILE}")
    )
    raw = parse_toml(text.decode())
    lock_text = read(model.LOCK_FILE)
    lock = model.loads(lock_text.decode(), Path(model.LOCK_FILE)) if lock_text else None
    return Snapshot(label, spec, raw, lock, files, read, mode)


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = repr(value)
    return flat


def _sources(snap: Snapshot) -> dict[str, tuple[str, ...]]:
    return {
        name: tuple(sorted({f for p in step.sources for f in match_names(snap.files, p)}))
        for name, step in snap.spec.steps.items()
    }


def _source_change(a: Snapshot, b: Snapshot, rel: str) -> str:
    """How a source file differs, in words ("" if it does not): its bytes, and its
    executable bit, which Nix's copy of it keeps (verdicts.source_component)."""
    da, db = a.read(rel), b.read(rel)
    if da is None or db is None:
        return "" if da == db else "added" if da is None else "removed"
    xa, xb = (executable(snap.mode(rel)) for snap in (a, b))
    mode = "" if xa == xb else "became executable" if xb else "is no longer executable"
    if da == db:
        return mode
    return f"changed and {mode}" if mode else "changed"


def _versions(lock: model.Lock | None, env: str) -> dict[str, str]:
    if lock is None or env not in lock.environments:
        return {}
    e = lock.environments[env]
    found = {f"deb {lock.debs[k].package}": lock.debs[k].version for k in e.debs}
    found.update({f"wheel {lock.wheels[k].name}": lock.wheels[k].version for k in e.wheels})
    return found


def _counts(versions: Mapping[str, str]) -> str:
    debs = sum(1 for k in versions if k.startswith("deb "))
    wheels = len(versions) - debs
    return f"{debs} Debian packages" + (f", {wheels} wheels" if wheels else "")


@dataclass
class Report:
    a: str
    b: str
    spec: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    hardware: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    steps: dict[str, list[str]] = field(default_factory=dict)  # step → why it is affected

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.a,
            "to": self.b,
            "spec": self.spec,
            "packages": self.packages,
            "sources": self.sources,
            "inputs": self.inputs,
            "hardware": self.hardware,
            "affected_steps": self.steps,
            "affected_artifacts": self.artifacts,
        }


def compare(
    a: Snapshot, b: Snapshot, current_inputs: Mapping[str, model.LockedInput] | None = None
) -> Report:
    report = Report(a.label, b.label)
    fa, fb = _flatten(a.raw), _flatten(b.raw)
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            report.spec.append(f"{key}: {fa.get(key, '(absent)')} → {fb.get(key, '(absent)')}")

    for env in sorted(set(a.spec.environments) | set(b.spec.environments)):
        va, vb = _versions(a.lock, env), _versions(b.lock, env)
        if not va or not vb:
            # A whole environment appeared or went: one line, not one per package.
            if va or vb:
                what = "added" if vb else "removed"
                report.packages.append(f"{env}: environment {what} ({_counts(va or vb)})")
            continue
        for pkg in sorted(set(va) | set(vb)):
            if va.get(pkg) != vb.get(pkg):
                report.packages.append(
                    f"{env}: {pkg} {va.get(pkg, '(absent)')} → {vb.get(pkg, '(absent)')}"
                )

    sa, sb = _sources(a), _sources(b)
    for rel in sorted({f for fs in (*sa.values(), *sb.values()) for f in fs}):
        change = _source_change(a, b, rel)
        if change:
            report.sources.append(f"{rel} {change}")

    for step in sorted(set(a.spec.steps) | set(b.spec.steps)):
        ha, hb = (
            snap.spec.steps[step].hardware if step in snap.spec.steps else None for snap in (a, b)
        )
        if ha != hb:
            report.hardware.append(f"{step}: {_constraints(ha)} → {_constraints(hb)}")

    ia = dict(a.lock.inputs) if a.lock else {}
    ib = (
        dict(current_inputs)
        if current_inputs is not None
        else (dict(b.lock.inputs) if b.lock else {})
    )
    for name in sorted(set(ia) | set(ib)):
        if ia.get(name) != ib.get(name):
            report.inputs.append(
                f"{name} changed"
                if name in ia and name in ib
                else f"{name} {'added' if name in ib else 'removed'}"
            )

    if a.lock is None or b.lock is None:
        report.steps = {s: ["no lock to compare"] for s in sorted(b.spec.steps)}
        return report
    lock_b = b.lock.with_inputs(ib) if current_inputs is not None else b.lock
    direct: dict[str, list[str]] = {}
    for step in sorted(b.spec.steps):
        if step not in a.spec.steps:
            direct[step] = ["the step is new"]
            continue
        try:
            ca = own_components(a.spec, a.lock, Facts(sa, frozenset()), step, _reader(a))
            cb = own_components(b.spec, lock_b, Facts(sb, frozenset()), step, _reader(b))
        except KeyError:
            direct[step] = ["its environment or inputs are not locked on one side"]
            continue
        if a.spec.steps[step].needs != b.spec.steps[step].needs:
            direct.setdefault(step, []).append("the steps it needs changed")
        envs = {}
        for snap, lk in ((a, a.lock), (b, lock_b)):
            env = snap.spec.steps[step].env
            if env in lk.environments:
                envs[environment_digest(lk, env)] = environment_components(lk, env)
        found = changes(ca, cb, envs)
        if found:
            direct.setdefault(step, []).extend(found)
    dag = graph.build(b.spec)
    for step in dag.order():
        if step in direct:
            report.steps[step] = direct[step]
        else:
            ups = [n for n in b.spec.steps[step].needs if n in report.steps]
            if ups:
                report.steps[step] = [f"needs {n}, which is affected" for n in ups]
    report.artifacts = _artifacts(a, b, report)
    return report


def _artifacts(a: Snapshot, b: Snapshot, report: Report) -> list[str]:
    """What a build produces that the change reaches: environments, step results, the flake."""
    found = []
    for env in sorted(b.spec.environments):
        if _versions(a.lock, env) != _versions(b.lock, env):
            found.append(f"environment {env} (its root filesystem)")
    found.extend(f"results/{step}" for step in report.steps)
    if report.steps:
        found.append("the flake's default package (all steps)")
    return found


def _constraints(hw: Hardware | None) -> str:
    if hw is None:
        return "(none)"
    return ", ".join(f"{k} {v}" for k, v in hw.as_dict().items())


def _reader(snap: Snapshot) -> Callable[[str], str]:
    """A source file's component in ``snap`` (fingerprint.own_components' read_source)."""

    def read_source(rel: str) -> str:
        data = snap.read(rel)
        if data is None:
            return "(missing)"
        return source_component(hashlib.sha256(data).hexdigest(), snap.mode(rel))

    return read_source
