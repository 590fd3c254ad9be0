from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reproflake import spec
from reproflake.cli import main
from reproflake.errors import SpecError
from reproflake.lock import aptconfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MIRROR = "http://mirror.invalid/debian"


def init(*args: str) -> Result:
    return CliRunner().invoke(main, ["init", *args])


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def test_list_templates() -> None:
    result = init("--list")
    assert result.exit_code == 0
    assert result.stdout.split() == ["minimal", "paper", "python"]


def test_init_python_project(tmp_path: Path) -> None:
    target = tmp_path / "my-study"
    result = init(str(target), "--debian-mirror", MIRROR, "--suite", "bookworm")
    assert result.exit_code == 0, result.output
    assert "created 6 files" in result.stderr
    assert "reproflake lock" in result.stderr
    assert sorted(
        str(p.relative_to(target)) for p in target.rglob("*") if ".git" not in p.parts
    ) == [
        ".gitignore",
        "data",
        "data/measurements.csv",
        "reproflake.toml",
        "src",
        "src/fit.py",
        "src/prepare.py",
        "src/report.py",
    ]
    assert (target / ".git").is_dir()  # a fresh repository
    ignored = (target / ".gitignore").read_text().splitlines()
    assert "/results/" in ignored and "/result" in ignored and "/.reproflake/cache/" in ignored
    parsed = spec.load(target / "reproflake.toml")
    assert parsed.name == "my-study"
    assert parsed.debian.mirror == MIRROR
    assert parsed.debian.suite == "bookworm"
    assert list(parsed.steps) == ["fit", "prepare", "report"]


def test_init_minimal_with_a_directory_name_that_is_no_project_name(tmp_path: Path) -> None:
    target = tmp_path / "9lives"
    result = init(str(target), "-t", "minimal", "--debian-mirror", MIRROR, "--suite", "trixie")
    assert result.exit_code == 0, result.output
    parsed = spec.load(target / "reproflake.toml")
    assert parsed.name == "pipeline"
    assert parsed.debian.suite == "trixie"
    assert list(parsed.steps) == ["hello"]


@pytest.mark.parametrize(
    ("mirror", "suite"),
    [
        ('http://mirror.invalid/de"bian', "bookworm"),
        ("http://mirror.invalid/debian\\", 'book"worm'),
        ("http://mirror.invalid/dé bian\u007f", "bookworm\nextra = 1"),
        ("http://mirror.invalid/debian' # comment", "book'worm"),
    ],
)
def test_user_text_never_breaks_the_toml(tmp_path: Path, mirror: str, suite: str) -> None:
    target = tmp_path / "p"
    result = init(str(target), "-t", "minimal", "--debian-mirror", mirror, "--suite", suite)
    assert result.exit_code == 0, result.output
    doc = tomllib.loads((target / "reproflake.toml").read_text())
    assert doc["debian"] == {"mirror": mirror, "suite": suite}
    # Validation may reject an odd mirror, but only cleanly, never as broken TOML.
    try:
        parsed = spec.load(target / "reproflake.toml")
    except SpecError as exc:
        assert "not valid TOML" not in exc.message
    else:
        assert parsed.debian.mirror == mirror.rstrip("/")
        assert parsed.debian.suite == suite


def test_placeholder_lookalikes_in_user_text_stay_literal(tmp_path: Path) -> None:
    target = tmp_path / "p"
    mirror = "http://mirror.invalid/{{suite}}"
    result = init(str(target), "-t", "minimal", "--debian-mirror", mirror, "--suite", "bookworm")
    assert result.exit_code == 0, result.output
    doc = tomllib.loads((target / "reproflake.toml").read_text())
    assert doc["debian"]["mirror"] == mirror


def test_refuses_an_existing_spec(tmp_path: Path) -> None:
    target = tmp_path / "existing"
    (target / "src").mkdir(parents=True)
    (target / "reproflake.toml").write_text("# mine\n")
    (target / "notes.txt").write_text("unrelated\n")
    before = snapshot(target)
    result = init(str(target), "--debian-mirror", MIRROR, "--suite", "bookworm")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {target}/reproflake.toml: this directory is a reproflake project already\n"
    )
    assert "hint: edit its reproflake.toml" in result.stderr
    assert snapshot(target) == before
    assert not (target / ".git").exists()


def test_file_in_the_way_of_a_template_directory(tmp_path: Path) -> None:
    target = tmp_path / "p"
    target.mkdir()
    (target / "src").write_text("a file, not a directory\n")
    result = init(str(target), "--debian-mirror", MIRROR, "--suite", "bookworm")
    assert result.exit_code == 0, result.output
    assert (target / "src").read_text() == "a file, not a directory\n"
    assert "left alone src/fit.py: src is not a directory" in result.stderr
    assert (target / "reproflake.toml").is_file()


def test_unknown_template(tmp_path: Path) -> None:
    target = tmp_path / "p"
    result = init(str(target), "-t", "pyhton", "--debian-mirror", MIRROR, "--suite", "bookworm")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: unknown template 'pyhton'\n  hint: expected one of: minimal, paper, python\n"
    )
    assert not target.exists()


def test_no_mirror_and_no_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aptconfig, "default_source", lambda *a, **k: None)
    target = tmp_path / "p"
    result = init(str(target))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot find a Debian mirror")
    assert "--debian-mirror" in result.stderr
    assert not target.exists()


def test_init_inside_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkdir("here")
    monkeypatch.chdir("here")
    result = init("-t", "minimal", "--debian-mirror", MIRROR, "--suite", "bookworm")
    assert result.exit_code == 0, result.output
    assert spec.load(tmp_path / "here" / "reproflake.toml").name == "here"


def test_init_refuses_a_directory_nix_cannot_use(tmp_path: Path) -> None:
    result = init(str(tmp_path / "my project"), "--debian-mirror", MIRROR, "--suite", "bookworm")
    assert result.exit_code == 2
    assert "Nix cannot build a project in a directory whose path contains ' '" in result.output
    assert not (tmp_path / "my project").exists()
