"""The suite's own Nix store (tests/teststore.py): what a test builds lands there, never in
the machine's store, and seeding copies pinned downloads and nothing built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import teststore
from conftest import needs_nix, reproflake

pytestmark = needs_nix

NIX = ["nix", "--extra-experimental-features", "nix-command"]


def in_machine_store(store: teststore.IsolatedStore, path: str) -> bool:
    try:
        os.stat(f"store/{Path(path).name}", dir_fd=store.machine_nix)
    except FileNotFoundError:
        return False
    return True


def valid_paths(store_url: str) -> set[str]:
    proc = subprocess.run(
        [*NIX, "path-info", "--store", store_url, "--json", "--all"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {info["path"] for info in json.loads(proc.stdout)}


def test_a_build_lands_in_the_tests_store_and_not_the_machines(
    project_copy: Path, isolated_store: teststore.IsolatedStore
) -> None:
    assert (Path("/nix") / teststore.MARKER).is_file()
    assert os.fstat(isolated_store.machine_nix).st_ino != os.stat("/nix").st_ino
    # Build users are locked in the machine's pool, shared with builds outside the tests.
    machine_pool = os.stat("var/nix/userpool", dir_fd=isolated_store.machine_nix)
    assert os.stat("/nix/var/nix/userpool").st_ino == machine_pool.st_ino
    with open(project_copy / "reproflake.toml", "a") as f:
        f.write(f'\n[steps.unique]\nenv = "py"\nrun = "echo {uuid.uuid4()} > $OUT/x"\n')
        f.write('outputs = ["x"]\n')
    reproflake("build", cwd=project_copy)
    built = os.readlink(project_copy / "results" / "unique")
    assert built in valid_paths("local")
    assert (isolated_store.root / "nix/store" / Path(built).name / "x").is_file()
    assert not in_machine_store(isolated_store, built)
    # The environment the step ran in is in the tests' store too (the lock's root names it).
    (lock_root,) = (project_copy / ".reproflake/cache/gcroots").glob("lock-*")
    env = os.readlink(Path(os.readlink(lock_root)) / "env-py")
    assert env in valid_paths("local")


def test_seeding_copies_the_flat_pinned_files_and_nothing_built(
    python_project: Path, tmp_path: Path
) -> None:
    # The source is the store this process sees (the tests' own), which now holds the
    # python template's .debs and wheels and everything built from them.
    source = json.loads(
        subprocess.run(
            [*NIX, "path-info", "--json", "--all"], capture_output=True, text=True, check=True
        ).stdout
    )
    wanted = teststore.seed_paths(source)
    assert any(p.endswith(".deb") for p in wanted) and any(p.endswith(".whl") for p in wanted)
    root = tmp_path / "fresh"
    teststore.prepare(root)
    try:
        assert teststore.seed(root) == len(wanted)
        assert valid_paths(f"local?root={root}") == set(wanted)
        assert teststore.seed(root) == 0  # a second session copies nothing
    finally:
        shutil.rmtree(root)


def test_the_sessions_environments_and_downloads_are_kept_not_its_steps(
    python_project: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    assert teststore.keep(tmp_path_factory.getbasetemp(), nix=tmp_path) > 0
    kept = sorted(p.name.partition("-")[2] for p in (tmp_path / teststore.KEPT).iterdir())
    assert "reproflake-env-py" in kept
    assert any(name.endswith(".deb") for name in kept)
    assert any(name.endswith(".whl") for name in kept)
    assert not any(name.startswith("reproflake-step-") for name in kept)
    for link in (tmp_path / teststore.KEPT).iterdir():
        assert Path(os.readlink(link)).exists()
    # Another session's root stays until no session has used it for KEEP_DAYS.
    other = tmp_path / teststore.KEPT / "zzzz-reproflake-env-other"
    other.symlink_to("/nix/store/zzzz-reproflake-env-other")
    day = 86400.0
    recent = time.time() - day
    os.utime(other, (recent, recent), follow_symlinks=False)
    basetemp = tmp_path_factory.getbasetemp()
    assert teststore.keep(basetemp, nix=tmp_path) == len(kept)
    assert other.is_symlink()
    stale = time.time() - (teststore.KEEP_DAYS + 1) * day
    os.utime(other, (stale, stale), follow_symlinks=False)
    teststore.keep(basetemp, nix=tmp_path)
    assert not other.is_symlink()
    assert sorted(p.name.partition("-")[2] for p in (tmp_path / teststore.KEPT).iterdir()) == kept
