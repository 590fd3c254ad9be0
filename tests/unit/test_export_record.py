"""An image export's record of the store paths it took: a new export (the file removed,
another format or compression) writes again without Nix while it holds."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from reproflake import fsclock
from reproflake.artifacts.recipe import Recipe, Resolved
from reproflake.commands import _image_stamp as stamp
from reproflake.commands import _noop


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, stamp.Built]:
    # The files count as quiet: a recent one is compared by its bytes (tests/unit/test_noop.py).
    monkeypatch.setattr(fsclock, "RACY_NS", 0)
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "reproflake.toml").write_text("[project]\n")
    (root / "reproflake.lock").write_text("{}\n")
    (root / "src" / "a.py").write_text("print(1)\n")
    store = tmp_path / "store"
    for name in ("out-a", "env", "x.deb"):
        (store / name).mkdir(parents=True)
    built = stamp.Built({"a": str(store / "out-a")}, str(store / "env"), [str(store / "x.deb")])
    req = stamp.Request("img", "oci-archive", "zstd", root / "results" / "img.oci.tar")
    req.dest.parent.mkdir()
    req.dest.write_bytes(b"image")
    resolved = {"envRoot": built.env_root, "debs": built.debs, "outputs": built.outputs,
                "workspace": [["src/a.py", str(root / "src/a.py")]],
                "sources": {"src/a.py": str(root / "src/a.py")}}  # fmt: skip
    written = cast(tuple[Recipe, Resolved], ({"image": "p/img"}, resolved))
    stamp.remember(root, req, _noop.snapshot(root, ["src/*.py"], []), built, "sha256:m", written)
    return root, built


def test_the_store_paths_are_known_while_nothing_changed(
    exported: tuple[Path, stamp.Built],
) -> None:
    root, built = exported
    (root / "results" / "img.oci.tar").unlink()  # the image itself may be gone
    assert stamp.built(root, "img") == built
    found = stamp.recorded(root, "img")
    assert found is not None and found[1] == built and found[2] == {"image": "p/img"}
    assert stamp.recorded(root, "other") is None
    assert stamp.built(root, "other") is None
    # The image is gone: the no-op answer is not given, only the build is spared.
    assert stamp.check(root, "img", "oci-archive", "zstd", None) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda root, built: (root / "src" / "a.py").write_text("print(2)\n"),
        lambda root, built: (root / "src" / "b.py").write_text(""),  # the glob matches more
        lambda root, built: (root / "reproflake.lock").write_text("{ }\n"),
        lambda root, built: Path(built.outputs["a"]).rmdir(),  # collected
        lambda root, built: Path(built.env_root).rmdir(),
        lambda root, built: Path(built.debs[0]).rmdir(),
    ],
)
def test_a_change_or_a_collected_path_asks_nix_again(
    exported: tuple[Path, stamp.Built], change: object
) -> None:
    root, built = exported
    change(root, built)  # type: ignore[operator]
    assert stamp.built(root, "img") is None
    assert stamp.recorded(root, "img") is None
