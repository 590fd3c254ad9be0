"""The rule for reading outside the project: links and file:// URLs (docs/spec.md)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from reproflake import _confine
from reproflake.errors import UsageError


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "inside.csv").write_text("in\n")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("secret\n")
    return root, secret


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_a_path_inside_the_project_is_read(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / "data" / "alias.csv").symlink_to("inside.csv")
    assert _confine.local_path(root, "data/alias.csv", "w") == (root / "data/inside.csv").resolve()


def test_a_link_out_of_a_project_without_git_is_refused(layout: tuple[Path, Path]) -> None:
    root, secret = layout
    (root / "data" / "leak").symlink_to(secret)
    with pytest.raises(UsageError) as info:
        _confine.local_path(root, "data/leak", "reproflake.toml:9: inputs.leak")
    assert info.value.exit_code == 2
    assert info.value.message.startswith(
        f"reproflake.toml:9: inputs.leak: data/leak is a link to {secret}, outside the project"
    )
    assert info.value.hint is not None and "REPROFLAKE_READ_OUTSIDE" in info.value.hint


def test_a_linked_directory_is_named_as_the_link(layout: tuple[Path, Path]) -> None:
    root, secret = layout
    (root / "stuff").symlink_to(secret.parent)
    with pytest.raises(UsageError, match=f"stuff is a link to {secret.parent}, outside"):
        _confine.local_path(root, "stuff/secret.txt", "w")


def test_a_tracked_link_is_refused_even_if_ignored(layout: tuple[Path, Path]) -> None:
    """A clone brings tracked links; .gitignore cannot launder a tracked one."""
    root, secret = layout
    git(root, "init", "-q")
    (root / "data" / "leak").symlink_to(secret)
    git(root, "add", "data/leak")
    (root / ".gitignore").write_text("/data/leak\n")
    with pytest.raises(UsageError, match="is a link to"):
        _confine.local_path(root, "data/leak", "w")


def test_an_ignored_untracked_link_is_this_machines_own(layout: tuple[Path, Path]) -> None:
    root, secret = layout
    git(root, "init", "-q")
    (root / "data" / "big").symlink_to(secret)
    with pytest.raises(UsageError):  # untracked but not ignored: could be anyone's
        _confine.local_path(root, "data/big", "w")
    (root / ".gitignore").write_text("/data/big\n")
    assert _confine.local_path(root, "data/big", "w") == secret.resolve()


def test_the_user_may_allow_a_directory(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root, secret = layout
    (root / "data" / "big").symlink_to(secret)
    monkeypatch.setenv(_confine.ENV_VAR, str(secret.parent))
    assert _confine.local_path(root, "data/big", "w") == secret.resolve()
    monkeypatch.delenv(_confine.ENV_VAR)
    with pytest.raises(UsageError):
        _confine.local_path(root, "data/big", "w")
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "reproflake" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'read_outside = ["{secret.parent}"]\n')
    assert _confine.local_path(root, "data/big", "w") == secret.resolve()


def test_file_urls_follow_the_same_rule(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, secret = layout
    assert _confine.file_url(root, "http://mirror.invalid/x", "w") is None
    inside = root / "data" / "inside.csv"
    assert _confine.file_url(root, f"file://{inside}", "w") == inside.resolve()
    with pytest.raises(UsageError) as info:
        _confine.file_url(root, f"file://{secret}", "reproflake.toml:3: inputs.x.url")
    assert info.value.message.startswith(f"reproflake.toml:3: inputs.x.url: file://{secret} is")
    # An escaped path is the same path.
    with pytest.raises(UsageError):
        _confine.file_url(root, f"file://{root!s}/%2E%2E/outside/secret.txt", "w")
    monkeypatch.setenv(_confine.ENV_VAR, str(secret.parent))
    assert _confine.file_url(root, f"file://{secret}", "w") == secret.resolve()


def test_a_fifo_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(AssertionError("blocked")))
    signal.alarm(5)
    try:
        with pytest.raises(UsageError, match="is a FIFO \\(named pipe\\), not a regular file"):
            _confine.regular_file(fifo, "inputs.x.url")
    finally:
        signal.alarm(0)
