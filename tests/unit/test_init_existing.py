"""`reproflake init` in a directory that has files already: a cloned repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner, Result

from reproflake import spec
from reproflake.cli import main

MIRROR = "http://mirror.invalid/debian"
SOURCE = ("--debian-mirror", MIRROR, "--suite", "bookworm")
RULES = ["/results/", "/.reproflake/cache/", "/result"]


def init(*args: str) -> Result:
    return CliRunner().invoke(main, ["init", *args, *SOURCE])


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def cloned(tmp_path: Path) -> tuple[Path, str]:
    """A repository with a commit: its own script, README and an ignore file."""
    root = tmp_path / "study"
    (root / "src").mkdir(parents=True)
    (root / "src" / "fit.py").write_text("print('the project's own fit')\n")
    (root / "README.md").write_text("# study\n")
    (root / ".gitignore").write_bytes(b"*.pyc\r\n/results/\n/data/raw")  # no final newline
    repo = pygit2.init_repository(str(root))
    repo.index.add_all()
    repo.index.write()
    sig = pygit2.Signature("t", "t@example.invalid", 0, 0)
    head = repo.create_commit("HEAD", sig, sig, "init", repo.index.write_tree(), [])
    return root, str(head)


def test_adds_only_what_is_missing(tmp_path: Path) -> None:
    root, head = cloned(tmp_path)
    before = files(root)
    result = init(str(root))
    assert result.exit_code == 0, result.output
    after = files(root)
    # The project's own files are byte for byte what they were.
    for rel in ("src/fit.py", "README.md"):
        assert after[rel] == before[rel]
    # Its ignore file keeps its bytes and gets the two rules it lacks, once each.
    assert after[".gitignore"].startswith(before[".gitignore"] + b"\n# reproflake")
    added = after[".gitignore"][len(before[".gitignore"]) :].decode().splitlines()
    assert added == [
        "",
        "# reproflake: build results (links into the Nix store) and local caches",
        "/.reproflake/cache/",
        "/result",
    ]
    assert after[".gitignore"].decode().count("/results/") == 1
    assert sorted(set(after) - set(before)) == [
        "data/measurements.csv",
        "reproflake.toml",
        "src/prepare.py",
        "src/report.py",
    ]
    lines = result.stderr.splitlines()
    assert "added reproflake.toml" in lines
    assert "appended to .gitignore: /.reproflake/cache/, /result" in lines
    assert "left alone src/fit.py: it exists" in lines
    assert "created a git repository" not in result.stderr
    assert str(pygit2.Repository(str(root)).head.target) == head
    assert spec.load(root / "reproflake.toml").name == "study"


def test_a_second_init_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    root, _ = cloned(tmp_path)
    assert init(str(root)).exit_code == 0
    before = files(root)
    result = init(str(root))
    assert result.exit_code == 2
    assert "this directory is a reproflake project already" in result.stderr
    assert files(root) == before


def test_ignore_file_with_every_rule_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / ".gitignore").write_text("  /results/\n/result\n/.reproflake/cache/\n")
    before = (root / ".gitignore").read_bytes()
    result = init(str(root), "-t", "minimal")
    assert result.exit_code == 0, result.output
    assert (root / ".gitignore").read_bytes() == before
    assert "left alone .gitignore: it has reproflake's rules already" in result.stderr


def test_ignore_file_linked_out_of_the_project_is_not_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside-ignore"
    outside.write_text("secret\n")
    root = tmp_path / "p"
    root.mkdir()
    (root / ".gitignore").symlink_to(outside)
    result = init(str(root), "-t", "minimal")
    assert result.exit_code == 0, result.output
    assert outside.read_text() == "secret\n"
    assert (root / ".gitignore").is_symlink()
    assert "left alone .gitignore: it is a link out of the project" in result.stderr


def test_directory_linked_out_of_the_project_is_not_written_into(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = tmp_path / "p"
    root.mkdir()
    (root / "src").symlink_to(outside)
    result = init(str(root))
    assert result.exit_code == 0, result.output
    assert list(outside.iterdir()) == []
    assert "left alone src/fit.py: a link takes its directory outside the project" in (
        result.stderr
    )


def test_mode_of_the_ignore_file_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / ".gitignore").write_text("*.o\n")
    os.chmod(root / ".gitignore", 0o600)
    assert init(str(root), "-t", "minimal").exit_code == 0
    assert (root / ".gitignore").stat().st_mode & 0o777 == 0o600
    assert (root / ".gitignore").read_text().startswith("*.o\n# reproflake")


@pytest.mark.parametrize("template", ["minimal", "python"])
def test_same_bytes_from_two_processes(tmp_path: Path, template: str) -> None:
    made = []
    for n in ("one", "two"):
        root = tmp_path / n / "study"
        root.mkdir(parents=True)
        (root / ".gitignore").write_text("*.pyc\n")
        (root / "requirements.txt").write_text("numpy==2.2.6\nscipy>=1.11\n")
        args = ["init", str(root), *SOURCE]
        args += ["--from", str(root / "requirements.txt")] if template == "python" else []
        args += ["-t", template] if template == "minimal" else []
        subprocess.run([sys.executable, "-m", "reproflake", *args], check=True,
                       capture_output=True)  # fmt: skip
        made.append(files(root))
    assert made[0] == made[1]
    assert set(made[0]) >= {"reproflake.toml", ".gitignore"}


# --------------------------------------------------------------------------- --from


def test_init_from_requirements_in_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, head = cloned(tmp_path)
    (root / "requirements.txt").write_text("numpy==2.2.6\n-e .\nscipy>=1.11  # fits\n")
    (root / "environment.yml").write_text("dependencies:\n  - graphviz\n  - cudatoolkit=12\n")
    before = files(root)
    monkeypatch.chdir(root)
    result = init(".", "--from", "requirements.txt", "--from", "environment.yml")
    assert result.exit_code == 0, result.output
    after = files(root)
    assert sorted(set(after) - set(before)) == ["reproflake.toml"]
    assert {k: v for k, v in after.items() if k in before and k != ".gitignore"} == {
        k: v for k, v in before.items() if k != ".gitignore"
    }
    parsed = spec.load(root / "reproflake.toml")
    assert parsed.environments["main"].python == ("numpy==2.2.6", "scipy>=1.11")
    assert parsed.environments["main"].debian == ("graphviz", "python3")
    assert list(parsed.steps) == ["start"]
    text = (root / "reproflake.toml").read_text()
    assert "#   cudatoolkit=12  (environment.yml:3)" in text
    lines = result.stderr.splitlines()
    assert "added reproflake.toml" in lines
    assert "not mapped: cudatoolkit=12 (environment.yml:3)" in lines
    assert any(line.startswith('note: requirements.txt:2: skipped "-e ."') for line in lines)
    assert "created 1 file in . from requirements.txt, environment.yml" in lines
    assert str(pygit2.Repository(str(root)).head.target) == head


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "requirements.txt", "-t", "minimal"], "--template does not go with it"),
        (["--extra", "test"], "--extra names optional dependencies of a pyproject.toml"),
        (["--from", "missing.txt"], "cannot read"),
        (["--from", "requirements.txt", "--from", "bad.txt"], "bad.txt:2: "),
        (["--from", "../outside.txt"], "outside the project directory"),
    ],
)
def test_init_from_refusals_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("numpy\n")
    (root / "requirements.txt").write_text("numpy\n")
    (root / "bad.txt").write_text("numpy\nnot a requirement\n")
    (root / ".gitignore").write_text("*.o\n")
    before = files(root)
    monkeypatch.chdir(root)
    if args == ["--extra", "test"]:
        args = ["--from", "requirements.txt", *args]
    result = init(".", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert files(root) == before
    assert not (root / ".git").exists()


def test_a_relative_from_is_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "requirements.txt").write_text("numpy\n")
    monkeypatch.chdir(tmp_path)
    result = init("p", "--from", "requirements.txt")
    assert result.exit_code == 2
    assert "hint: a relative --from is taken from the current directory: did you mean " \
        "--from p/requirements.txt?" in result.stderr  # fmt: skip
    assert init("p", "--from", "p/requirements.txt").exit_code == 0


def test_a_flake_of_the_project_is_warned_about(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "flake.nix").write_text("{ outputs = _: { }; }\n")
    result = init(str(root), "-t", "minimal")
    assert result.exit_code == 0, result.output
    assert (root / "flake.nix").read_text() == "{ outputs = _: { }; }\n"
    assert "is not one reproflake generated" in result.stderr
    assert "refuses to write over it; move your flake elsewhere first" in result.stderr
