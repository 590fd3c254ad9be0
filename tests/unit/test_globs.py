"""One glob semantics for the working tree and for git revisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reproflake._globs import compile_pattern, match_files, match_names
from reproflake.errors import UsageError

CASES = [
    ("src/*.py", "src/a.py", True),
    ("src/*.py", "src/sub/b.py", False),
    ("src/**/*.py", "src/a.py", True),
    ("src/**/*.py", "src/x/y/b.py", True),
    ("**/*.txt", "a.txt", True),
    ("data/*.csv", "data/.hidden.csv", False),
    ("data/.*.csv", "data/.hidden.csv", True),
    ("data/[ab].csv", "data/a.csv", True),
    ("data/[!a].csv", "data/a.csv", False),
    ("data/?.csv", "data/ab.csv", False),
    ("src/**", "src/a/b", True),
    ("a+b(c).txt", "a+b(c).txt", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), CASES)
def test_pattern(pattern: str, name: str, expected: bool) -> None:
    assert bool(compile_pattern(pattern).match(name)) is expected


def tree(root: Path, files: list[str]) -> None:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def test_tree_and_revision_agree(tmp_path: Path) -> None:
    files = ["src/a.py", "src/sub/b.py", "src/.h.py", "docs/x.txt", "notes.txt"]
    tree(tmp_path, files)
    for pattern in ("src/*.py", "src/**/*.py", "**/*.txt", "src/**", "notes.txt"):
        assert match_files(tmp_path, pattern) == match_names(files, pattern), pattern


def test_results_and_tool_directories_are_never_matched(tmp_path: Path) -> None:
    tree(tmp_path, ["a.txt", ".reproflake/build.txt", "results/x/out.txt", ".git/HEAD.txt"])
    assert match_files(tmp_path, "**/*.txt") == ["a.txt"]
    assert match_names(["a.txt", "results/x/out.txt"], "**/*.txt") == ["a.txt"]


def test_links_to_directories_are_not_followed(tmp_path: Path) -> None:
    tree(tmp_path, ["data/a.txt", "elsewhere/b.txt"])
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "link")
    os.symlink(tmp_path / "elsewhere" / "b.txt", tmp_path / "data" / "file-link.txt")
    assert match_files(tmp_path, "data/**/*.txt") == ["data/a.txt", "data/file-link.txt"]


def test_a_fifo_a_pattern_matches_is_refused_not_read(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("1\n")
    os.mkfifo(tmp_path / "src" / "b.py")
    (tmp_path / "src" / "dangling.py").symlink_to("nowhere")
    with pytest.raises(UsageError, match=r"src/b.py is a FIFO \(named pipe\), not a regular file"):
        match_files(tmp_path, "src/*.py")
    with pytest.raises(UsageError, match="FIFO"):
        match_files(tmp_path, "src/b.py")
    # A pattern that does not reach it is unaffected, and a dangling link is no file.
    assert match_files(tmp_path, "src/[ad]*.py") == ["src/a.py"]
