"""reproflake's own flake, for real and offline: its checks, its outputs, its templates
(copied by `nix flake init`, finished by `reproflake lock`, built by `reproflake build`) and
its library used through a flake input instead of the vendored copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import git, needs_nix, reproflake

pytestmark = [needs_nix, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
OPTIONS = [
    "--extra-experimental-features", "nix-command flakes ca-derivations",
    "--option", "sandbox", "true",
    "--option", "sandbox-fallback", "false",
    "--option", "substituters", "",
    "--option", "warn-dirty", "false",
]  # fmt: skip
PYTHON_STEPS = ("prepare", "fit", "report")


def nix(*args: str, cwd: Path = REPO) -> str:
    proc = subprocess.run(
        ["nix", *OPTIONS, *args], cwd=cwd, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, f"nix {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def drv_paths(project: Path, steps: tuple[str, ...]) -> dict[str, str]:
    """Every derivation the project's flake defines for these steps, by attribute."""
    attrs = [*steps, "default", *(f"legacyPackages.x86_64-linux.verify.{s}" for s in steps)]
    return {a: nix("eval", "--raw", f".#{a}.drvPath", cwd=project) for a in attrs}


def library_copy(tmp_path: Path) -> Path:
    """This reproflake's flake as the files the Python code uses now (tracked or not)."""
    target = tmp_path / "reproflake-src"
    for rel in ("flake.nix", "flake.lock"):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target / rel)
    for rel in ("nix", "templates", "tests/nix"):
        shutil.copytree(REPO / rel, target / rel)
    return target


def test_flake_check_and_show_offline() -> None:
    out = nix("flake", "check", "--no-write-lock-file")
    assert out == ""  # `nix flake check` reports only failures
    shown = json.loads(nix("flake", "show", "--json", "--no-write-lock-file"))
    assert sorted(shown) == ["checks", "lib", "templates"]
    assert sorted(shown["checks"]["x86_64-linux"]) == [
        "derivations", "entry", "hostile", "outputs", "templates"
    ]  # fmt: skip
    assert {"default", "minimal", "paper", "python"} <= set(shown["templates"])
    lib = json.loads(nix("eval", "--json", ".#lib", "--apply", "builtins.attrNames"))
    assert lib == ["dataVersion", "mkPipeline", "systems"]


@pytest.mark.parametrize("template", ["minimal", "python", "paper"])
def test_nix_flake_init_then_lock_and_build(
    template: str, tmp_path: Path, python_project: Path
) -> None:
    root = tmp_path / "study"
    root.mkdir()
    if template == "minimal":  # inside a repository, where Nix adds what it copies to git
        git("init", "-q", cwd=tmp_path)
    nix("flake", "init", "-t", f"git+file://{REPO}#{template}", cwd=root)
    assert "{{mirror}}" in (root / "reproflake.toml").read_text()  # copied verbatim

    unfinished = reproflake("build", cwd=root, check=False)
    assert unfinished.returncode == 2
    assert "is a template placeholder" in unfinished.stderr
    assert "reproflake lock" in unfinished.stderr

    locked = reproflake("lock", cwd=root)
    assert "filled the template's placeholders" in locked.stderr
    assert (root / ".gitignore").is_file() and not (root / "gitignore").exists()
    assert "gitignore" not in git("status", "--short", "--", "gitignore", cwd=root)
    built = reproflake("build", cwd=root)
    assert " 0 failed" in built.stdout
    if template == "minimal":
        hello = (root / "results/hello/hello.txt").read_text()
        assert hello == "hello from a hermetic build\n"
    elif template == "paper":
        assert (root / "results/paper/paper.pdf").read_bytes().startswith(b"%PDF-")
    else:
        # The same project `reproflake init` makes: the same derivations, the same outputs.
        assert drv_paths(root, PYTHON_STEPS) == drv_paths(python_project, PYTHON_STEPS)
        for step in PYTHON_STEPS:
            assert os.readlink(root / "results" / step) == os.readlink(
                python_project / "results" / step
            )


def test_library_from_a_flake_input_gives_the_same_store_paths(
    tmp_path: Path, python_project: Path
) -> None:
    source = library_copy(tmp_path)
    root = tmp_path / "with-input"
    reproflake(
        "init", "--template", "python", "--library", "input",
        "--library-url", f"path:{source}", str(root), cwd=tmp_path,
    )  # fmt: skip
    locked = reproflake("lock", cwd=root)
    assert "pinned reproflake's Nix library in flake.lock" in locked.stderr
    assert not (root / ".reproflake/lib").exists()
    pinned = json.loads((root / "flake.lock").read_text())["nodes"]["reproflake"]
    assert pinned["locked"]["type"] == "path" and pinned["locked"]["narHash"].startswith("sha256-")

    reproflake("build", cwd=root)
    assert drv_paths(root, PYTHON_STEPS) == drv_paths(python_project, PYTHON_STEPS)
    envs = "legacyPackages.x86_64-linux.environments.py.drvPath"
    assert nix("eval", "--raw", f".#{envs}", cwd=root) == nix(
        "eval", "--raw", f".#{envs}", cwd=python_project
    )
    for step in PYTHON_STEPS:
        assert os.readlink(root / "results" / step) == os.readlink(
            python_project / "results" / step
        )
