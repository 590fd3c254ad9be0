"""Atomic writes leave nothing behind where git would see it; links and files written whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake import fsutil, nixgen
from reproflake.errors import UsageError
from reproflake.fsutil import symlink_atomic
from reproflake.lock import model
from reproflake.lock.model import Lock
from reproflake.spec import Spec, parse


def test_a_project_file_is_written_through_its_ignored_scratch_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(src)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    fsutil.write_atomic(tmp_path / "reproflake.lock", "{}", tmp_dir=fsutil.project_tmp(tmp_path))
    assert (tmp_path / "reproflake.lock").read_text() == "{}"
    assert Path(seen[0]).parent == tmp_path / ".reproflake/cache/tmp"
    assert f".reproflake.lock.{os.getpid()}." in seen[0]
    # Ignored in git whatever the project's own .gitignore says.
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".reproflake/cache/tmp/.reproflake.lock.1.x.tmp").write_text("left over")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert status.splitlines() == ["?? reproflake.lock"]


def test_the_lock_and_generated_files_are_written_through_the_scratch_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_lock: Callable[[Spec], Lock]
) -> None:
    sources: list[str] = []
    real = os.replace

    def spy(src: str, dst: str) -> None:
        sources.append(src)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    text = (
        '[project]\nname = "p"\n[debian]\nmirror = "http://m.invalid/debian"\n'
        'suite = "bookworm"\n[environments.e]\ndebian = []\n'
        '[steps.s]\nenv = "e"\nrun = "true"\noutputs = ["o"]\n'
    )
    spec = parse(text, tmp_path / "reproflake.toml")
    model.write(tmp_path, make_lock(spec))
    nixgen.write(tmp_path, {"flake.nix": (b"{}", 0o644), ".reproflake/build.json": (b"{}", 0o644)})
    assert sources and all(Path(s).parent == tmp_path / fsutil.PROJECT_TMP for s in sources)


def test_leftovers_of_killed_runs_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmp = fsutil.project_tmp(tmp_path)
    left = [
        tmp_path / f".reproflake.lock.{dead.pid}.abc12_x9.tmp",
        tmp_path / ".reproflake" / f".build.json.{dead.pid}.k_9xqqqq.tmp",
        tmp / f".reproflake.lock.{dead.pid}.zzzzzzzz.tmp",
    ]
    live = tmp / f".reproflake.lock.{os.getpid()}.zzzzzzzz.tmp"  # a run still writing
    mine = [
        tmp_path / ".notes.tmp",  # not ours: no pid in its name
        tmp_path / f".data.{dead.pid}.v2.tmp",  # the user's, however like ours it looks
        tmp_path / f".data.{dead.pid}.ABCDEFGH.tmp",
    ]
    for path in [*left, live, *mine]:
        path.write_text("x")
    fsutil.sweep_temporaries(tmp_path)
    assert [p for p in left if p.exists()] == []
    assert live.exists() and all(p.exists() for p in mine)
    # What write_atomic itself leaves is what the sweep knows.
    name = Path(tempfile.mkstemp(dir=tmp_path, prefix=f".x.{dead.pid}.", suffix=".tmp")[1]).name
    assert fsutil.TEMPORARY.match(name)


def test_new_link_is_made(tmp_path: Path) -> None:
    link = tmp_path / "results" / "a"
    symlink_atomic(link, "/nix/store/one")
    assert os.readlink(link) == "/nix/store/one"


def test_link_already_right_is_left_alone(tmp_path: Path) -> None:
    link = tmp_path / "a"
    symlink_atomic(link, "/nix/store/one")
    before = os.lstat(link).st_ino
    symlink_atomic(link, "/nix/store/one")
    assert os.lstat(link).st_ino == before  # not replaced by a new link


def test_link_elsewhere_is_replaced(tmp_path: Path) -> None:
    link = tmp_path / "a"
    symlink_atomic(link, "/nix/store/one")
    symlink_atomic(link, "/nix/store/two")
    assert os.readlink(link) == "/nix/store/two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary left behind


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "a"
    link.write_text("mine")
    with pytest.raises(UsageError, match="is not a link reproflake made"):
        symlink_atomic(link, "/nix/store/one")
    assert link.read_text() == "mine"


@pytest.mark.parametrize(
    "linked",
    [
        "results",
        ".reproflake",
        ".reproflake/cache",
        ".reproflake/cache/tmp",
        ".reproflake/cache/gcroots",
        ".reproflake/image/reproflake/artifacts",
        ".reproflake/lib",
    ],
)
def test_a_directory_reproflake_writes_in_is_never_a_link(tmp_path: Path, linked: str) -> None:
    """A cloned repository could commit `.reproflake -> ~/somewhere`: what reproflake
    writes there would land outside the project."""
    root = tmp_path / "proj"
    for rel in (".reproflake/cache/tmp", ".reproflake/cache/gcroots", ".reproflake/lib",
                ".reproflake/image/reproflake/artifacts", "results"):  # fmt: skip
        (root / rel).mkdir(parents=True)
    store = tmp_path / "store-output"
    store.mkdir()
    (root / ".reproflake/cache/gcroots/lock-1").symlink_to(store)  # its own links: fine
    (root / "results" / "step").symlink_to(store)
    assert fsutil.linked_own_dir(root) is None
    fsutil.refuse_linked_own_dir(root)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(root / linked), str(elsewhere))
    (root / linked).symlink_to(elsewhere)
    assert fsutil.linked_own_dir(root) == root / linked
    with pytest.raises(UsageError) as err:
        fsutil.refuse_linked_own_dir(root)
    assert f"{root / linked} is a symbolic link (to {elsewhere})" in err.value.message
