"""Adopting an existing repository: init --from its requirements, then lock and build."""

from __future__ import annotations

from pathlib import Path

from conftest import git, needs_nix, reproflake


@needs_nix
def test_adopt_a_repository_from_its_requirements(tmp_path: Path) -> None:
    root = tmp_path / "study"
    root.mkdir()
    (root / "analysis.py").write_text("import six\nprint(six.__version__)\n")
    (root / "requirements.txt").write_text("six==1.17.0  # pinned for the paper\n-e .\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "the study", cwd=root)
    own = {p: (root / p).read_bytes() for p in ("analysis.py", "requirements.txt")}

    made = reproflake("init", ".", "--from", "requirements.txt", cwd=root)
    assert "added reproflake.toml" in made.stderr
    assert 'note: requirements.txt:2: skipped "-e ."' in made.stderr
    assert (root / ".gitignore").read_text().startswith("__pycache__/\n# reproflake")
    reproflake("lock", cwd=root)
    reproflake("build", cwd=root)

    # The starter step ran in the sandbox, with the wheel the requirements pin.
    listed = (root / "results" / "start" / "packages.txt").read_text().splitlines()
    assert "six 1.17.0" in listed
    assert {p: (root / p).read_bytes() for p in own} == own
    # Of the files the repository had, only .gitignore changed (and it was not staged).
    committed = git("ls-tree", "-r", "--name-only", "HEAD", cwd=root).split()
    status = git("status", "--porcelain", "--", *committed, cwd=root).splitlines()
    assert status == [" M .gitignore"]
