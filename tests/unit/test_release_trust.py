"""Which of a release's files Nix would evaluate are reproflake's own, and which pinned
files it would read from this machine (artifacts/trust.py), and what reproduce does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reproflake import nixgen
from reproflake.artifacts import trust
from reproflake.commands.reproduce import _evaluated_code
from reproflake.errors import ArchiveError


def _ours(top: Path) -> Path:
    (top / trust.LIB).mkdir(parents=True)
    (top / "flake.nix").write_text(nixgen.flake_nix(None))
    (top / "flake.lock").write_text(nixgen.FLAKE_LOCK)
    for name, content in nixgen.library().items():
        (top / trust.LIB / name).write_bytes(content)
    return top


def test_reproflakes_own_code_is_recognised(tmp_path: Path) -> None:
    assert trust.foreign_code(_ours(tmp_path)) == []


def test_every_difference_is_named(tmp_path: Path) -> None:
    top = _ours(tmp_path)
    (top / trust.LIB / "default.nix").write_text("{ }: builtins.fetchTree /etc\n")
    (top / trust.LIB / "extra.nix").write_text("{ }\n")
    (top / "flake.lock").unlink()
    (top / "flake.nix").unlink()
    (top / "real.nix").write_text(nixgen.flake_nix(None))
    (top / "flake.nix").symlink_to("real.nix")  # the right bytes, through a link
    assert trust.foreign_code(top) == [
        ".reproflake/lib/default.nix",
        ".reproflake/lib/extra.nix",
        "flake.lock",
        "flake.nix",
    ]


def test_a_flake_with_a_library_from_a_url_is_not_reproflakes(tmp_path: Path) -> None:
    top = _ours(tmp_path)
    (top / "flake.nix").write_text(nixgen.flake_nix("git+file:///somewhere"))
    assert trust.foreign_code(top) == ["flake.nix"]


def _data(top: Path, data: dict[str, Any]) -> Path:
    (top / ".reproflake").mkdir(exist_ok=True)
    (top / trust.BUILD_DATA).write_text(json.dumps(data))
    return top


WHEEL = {"name": "w.whl", "url": "file:///srv/index/w.whl", "sha256": "0" * 64}


def test_local_pins_not_carried_are_named(tmp_path: Path) -> None:
    top = _data(tmp_path, {
        "debs": {"d.deb": {"name": "d.deb", "url": "http://mirror.invalid/d.deb"}},
        "wheels": {"w.whl": WHEEL},
        "inputs": {"x": {"files": [{"kind": "url", "storeName": "x.csv", "url": "FILE:/x.csv"},
                                   {"kind": "tracked", "path": "data/y.csv"}]}},
    })  # fmt: skip
    assert trust.local_urls_not_carried(top) == [
        "w.whl (file:///srv/index/w.whl)",
        "x.csv (FILE:/x.csv)",
    ]
    (top / "vendor").mkdir()
    (top / "vendor" / "w.whl").write_bytes(b"wheel")
    (top / "vendor" / "x.csv").symlink_to("/etc/hostname")  # a link is no copy
    assert trust.local_urls_not_carried(top) == ["x.csv (FILE:/x.csv)"]


@pytest.mark.parametrize("name", ["../w.whl", "", "a/b.whl", ".."])
def test_a_name_that_is_not_a_file_in_vendor_is_not_carried(tmp_path: Path, name: str) -> None:
    (tmp_path / "vendor").mkdir()
    top = _data(tmp_path, {"wheels": {"w": {**WHEEL, "name": name}}})
    assert len(trust.local_urls_not_carried(top)) == 1


def test_build_data_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / ".reproflake").mkdir()
    (tmp_path / trust.BUILD_DATA).write_text("{")
    assert trust.local_urls_not_carried(tmp_path) == [".reproflake/build.json (not JSON)"]


def _decide(top: Path, status: str, trusted: bool) -> tuple[ArchiveError | None, dict[str, Any]]:
    doc: dict[str, Any] = {"signature": {"status": status}}
    return _evaluated_code(top, doc, lambda _line: None, trusted), doc


def test_foreign_code_needs_a_required_signer_or_trust(tmp_path: Path) -> None:
    top = _data(_ours(tmp_path), {"wheels": {}})
    assert _decide(top, "none", False)[0] is None  # reproflake's own: evaluated
    (top / trust.LIB / "default.nix").write_text("{ }\n")
    for status in ("none", "intact, signer not checked"):
        refused, doc = _decide(top, status, False)
        assert refused is not None and refused.exit_code == 2
        assert "--trust-nix-code" in (refused.hint or "")
        assert doc["nix_code"] == {
            "reproflakes_own": False,
            "differs": [f"{trust.LIB}/default.nix"],
        }
    assert _decide(top, "good", False)[0] is None
    assert _decide(top, "none", True)[0] is None


def test_local_pins_are_refused_whatever_the_trust(tmp_path: Path) -> None:
    top = _data(_ours(tmp_path), {"wheels": {"w.whl": WHEEL}})
    for status, trusted in (("good", False), ("none", True)):
        refused, _doc = _decide(top, status, trusted)
        assert refused is not None and "by file:// URL without carrying" in refused.message
