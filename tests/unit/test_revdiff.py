"""`diff`'s comparison of two snapshots (reproflake/revdiff.py), on a locked project
without git or Nix: a snapshot's files and modes are what it reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake import revdiff
from reproflake.lock.model import Lock
from reproflake.spec import Spec
from tests.unit.locked_project import write_locked_project

SPEC = """
[project]
name = "p"
[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"
[environments.base]
debian = []
[steps.a]
env = "base"
run = "sh src/a.sh"
sources = ["src/a.sh"]
outputs = ["x"]
[steps.b]
env = "base"
run = "true"
needs = ["a"]
outputs = ["x"]
"""


@pytest.fixture
def root(tmp_path: Path, make_lock: Callable[[Spec], Lock]) -> Path:
    root = write_locked_project(tmp_path / "p", SPEC, make_lock)
    (root / "src").mkdir()
    (root / "src" / "a.sh").write_text("echo a\n")
    (root / "src" / "a.sh").chmod(0o644)
    return root


def as_now(root: Path) -> revdiff.Snapshot:
    """The working tree as it is now: its reads and modes fixed (a snapshot reads lazily)."""
    snap = revdiff.snapshot_worktree(root)
    data = {rel: snap.read(rel) for rel in snap.files}
    modes = {rel: snap.mode(rel) for rel in snap.files}
    return dataclasses.replace(snap, read=data.get, mode=lambda rel: modes.get(rel, 0))


@pytest.mark.parametrize(
    ("mode", "said"),
    [(0o755, "became executable"), (0o664, None)],
    ids=["chmod +x", "chmod g+w"],
)
def test_a_source_made_executable_is_a_changed_source(
    root: Path, mode: int, said: str | None
) -> None:
    """Nix copies a source with its executable bit: the change is named among the source
    files, as it is in the reasons of the step it affects."""
    before = as_now(root)
    (root / "src" / "a.sh").chmod(mode)
    report = revdiff.compare(before, as_now(root))
    if said is None:
        assert (report.sources, report.steps) == ([], {})
        return
    assert report.steps == {
        "a": [f"src/a.sh {said}"],
        "b": ["needs a, which is affected"],
    }
    assert report.sources == [f"src/a.sh {said}"]
    back = revdiff.compare(as_now(root), before)
    assert back.sources == ["src/a.sh is no longer executable"]


def test_bytes_and_bit_changed_together_are_both_named(root: Path) -> None:
    before = as_now(root)
    (root / "src" / "a.sh").write_text("echo b\n")
    (root / "src" / "a.sh").chmod(0o755)
    report = revdiff.compare(before, as_now(root))
    assert report.sources == ["src/a.sh changed and became executable"]
    assert report.steps["a"][0].endswith(" and became executable")
