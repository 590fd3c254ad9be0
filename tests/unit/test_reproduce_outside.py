"""reproduce reads no file outside the release, whatever path the release names."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproflake.commands.reproduce import _refuse_outside
from reproflake.errors import ArchiveError
from reproflake.executor import StoreItem


def _item(path: Path) -> StoreItem:
    return StoreItem(path, path.name, "sha256-x", False, f"wheel {path.name}")


def test_files_inside_the_release_are_taken(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin").write_bytes(b"x")
    _refuse_outside(tmp_path, [_item(tmp_path / "data" / "big.bin")])


@pytest.mark.parametrize("where", ["absolute", "dotdot", "link"])
def test_a_path_outside_is_refused(tmp_path: Path, where: str) -> None:
    top = tmp_path / "release"
    top.mkdir()
    secret = tmp_path / "secret.whl"
    secret.write_bytes(b"x")
    path = {
        "absolute": secret,
        "dotdot": top / ".." / "secret.whl",
        "link": top / "vendor.whl",
    }[where]
    if where == "link":
        path.symlink_to(secret)
    with pytest.raises(ArchiveError, match=r"1 file\(s\) it does not carry") as caught:
        _refuse_outside(top, [_item(path)])
    assert caught.value.exit_code == 2
    assert "reproflake release --vendor" in (caught.value.hint or "")
