"""Links and files written whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reproflake.errors import UsageError
from reproflake.fsutil import symlink_atomic


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
