"""`reproflake release`: identical bytes from two clones, and a vendored archive that plain
Nix builds offline to the recorded store paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import git, reproflake


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    salt = f"{os.getpid()}.{time.time_ns()}"
    with (root / "reproflake.toml").open("a") as f:
        f.write(
            f'\n[steps.table]\nenv = "base"\nneeds = ["hello"]\n'
            f'run = "echo {salt} > $OUT/salt.txt; mkdir $OUT/sub; cp results/hello/hello.txt $OUT/sub/"\n'
            'outputs = ["salt.txt", "sub"]\n'
        )
    reproflake("lock", cwd=root)
    if not (root / ".git").exists():
        git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "release me", cwd=root)
    return root


def _release(clone: Path, out: Path, umask: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = f"umask {umask}; exec {sys.executable} -m reproflake release -o {out} " + " ".join(
        args
    )
    proc = subprocess.run(
        ["sh", "-c", command], cwd=clone, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_two_clones_give_identical_bytes_and_tar_reads_them(tmp_path: Path) -> None:
    origin = _project(tmp_path)
    archives = []
    for i, umask in enumerate(("022", "077")):
        clone = tmp_path / f"clone-{i}" / ("deeper/" * i) / "p"
        clone.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
        (clone / "untracked.txt").write_text("not in the commit\n")  # untracked: not dirty
        archives.append(tmp_path / f"r{i}.tar.zst")
        _release(clone, archives[-1], umask)
        time.sleep(1.1)  # a later wall clock: entries carry the commit's time, not now
    assert archives[0].read_bytes() == archives[1].read_bytes()
    listing = subprocess.run(
        ["tar", "-tvf", str(archives[0])], capture_output=True, text=True, check=True
    )
    assert " 0/0 " in listing.stdout and "untracked.txt" not in listing.stdout
    assert "2024-01-01 00:00" in listing.stdout  # the commit's time (conftest's git)
    raw = subprocess.run(["zstd", "-dc", str(archives[0])], capture_output=True, check=True).stdout
    assert raw[257:262] == b"ustar"


def test_dirty_tree_is_refused_unless_allowed(tmp_path: Path) -> None:
    origin = _project(tmp_path)
    (origin / "reproflake.toml").write_text((origin / "reproflake.toml").read_text() + "\n")
    run = reproflake("release", "-o", str(tmp_path / "r.tar.gz"), cwd=origin, check=False)
    assert run.returncode == 2
    assert "changes not committed: reproflake.toml" in run.stderr
    reproflake(
        "release",
        "--allow-dirty",
        "--format",
        "tar.gz",
        "-o",
        str(tmp_path / "r.tar.gz"),
        cwd=origin,
    )
    subprocess.run(["gzip", "-t", str(tmp_path / "r.tar.gz")], check=True)


def test_vendored_archive_builds_offline_with_plain_nix(tmp_path: Path) -> None:
    origin = _project(tmp_path)
    archive = tmp_path / "r.tar.zst"
    reproflake("release", "--vendor", "-o", str(archive), cwd=origin)
    target = tmp_path / "elsewhere"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target), "-f", str(archive)], check=True)
    (top,) = target.iterdir()
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=top, check=True)
    statement = json.loads((top / "provenance.json").read_text())
    recorded = statement["predicate"]["buildDefinition"]["internalParameters"]["outputs"]
    subjects = {s["name"] for s in statement["subject"]}
    assert "results/table/sub/hello.txt" in subjects
    names = {
        m["name"].split(":", 1)[0]
        for m in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    }
    assert {"deb", "seed", "nix-library"} <= names
    assert any(p.name.endswith(".deb") for p in (top / "vendor").iterdir())
    # Offline: no network namespace to reach anything; only Nix, no reproflake.
    proc = subprocess.run(
        ["unshare", "-n", "nix", "--extra-experimental-features", "nix-command flakes ca-derivations",
         "--option", "sandbox", "true", "--option", "sandbox-fallback", "false",
         "--option", "substituters", "", "build", ".#table", "--no-link", "--json"],
        cwd=top, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["outputs"]["out"] == recorded["table"]
    # The vendored .debs stand in for the downloads without changing a derivation: the
    # environment is the very root the original build made, not a rebuild of it.
    attr = ".#legacyPackages.x86_64-linux.environments.base.drvPath"
    drv = [_eval(where, attr) for where in (origin, top)]
    assert drv[0] == drv[1], drv


def _eval(flake: Path, attr: str) -> str:
    proc = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command flakes ca-derivations",
         "eval", "--raw", attr],
        cwd=flake, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
