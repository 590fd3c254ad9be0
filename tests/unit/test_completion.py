"""Shell completion of step, environment and image names, through click's completion
protocol as bash, zsh and fish drive it (a real `python -m reproflake` process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """\
[project]
name = "demo"
[environments.py]
debian = ["python3"]
[environments.tools]
debian = []
[steps.prepare]
env = "py"
run = "true"
[steps.fit]
env = "py"
run = "true"
[steps.figures]
env = "tools"
run = "true"
[images.serve]
step = "fit"
"""


def complete(words: str, cwd: Path, shell: str = "bash") -> list[str]:
    """What the shell would offer for the last word of ``words`` (bash: by index)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMP_")}
    env["_REPROFLAKE_COMPLETE"] = f"{shell}_complete"
    parts = words.split(" ")
    env["COMP_WORDS"] = words
    # bash and zsh give the index of the word being completed, fish the word itself.
    env["COMP_CWORD"] = parts[-1] if shell == "fish" else str(len(parts) - 1)
    result = subprocess.run(
        [sys.executable, "-m", "reproflake"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = [line for line in result.stdout.splitlines() if line]
    if shell == "zsh":  # type, value, help: three lines per item
        return lines[1::3]
    return [line.split(",", 1)[1] for line in lines]  # bash and fish: type,value


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "reproflake.toml").write_text(SPEC)
    return tmp_path


@pytest.mark.parametrize("command", ["build", "verify", "plan", "status", "push", "pull"])
def test_steps_are_completed(project: Path, command: str) -> None:
    assert complete(f"reproflake {command} ", project) == ["figures", "fit", "prepare"]
    assert complete(f"reproflake {command} f", project) == ["figures", "fit"]


def test_steps_already_given_are_not_offered_again(project: Path) -> None:
    assert complete("reproflake build fit ", project) == ["figures", "prepare"]


def test_single_step_arguments(project: Path) -> None:
    assert complete("reproflake log p", project) == ["prepare"]
    assert complete("reproflake shell f", project) == ["figures", "fit"]


def test_environments_and_images(project: Path) -> None:
    assert complete("reproflake shell --env ", project) == ["py", "tools"]
    assert complete("reproflake shell --env t", project) == ["tools"]
    assert complete("reproflake image ", project) == ["serve"]


def test_from_a_subdirectory_and_with_directory_option(project: Path, tmp_path: Path) -> None:
    (project / "src").mkdir()
    assert complete("reproflake log fi", project / "src") == ["figures", "fit"]
    elsewhere = tmp_path.parent
    assert complete(f"reproflake -C {project} log fi", elsewhere) == ["figures", "fit"]
    assert complete(f"reproflake build -C {project} fi", elsewhere) == ["figures", "fit"]


def test_zsh_and_fish_get_the_same_names(project: Path) -> None:
    assert complete("reproflake build f", project, "zsh") == ["figures", "fit"]
    assert complete("reproflake build f", project, "fish") == ["figures", "fit"]


@pytest.mark.parametrize(
    "text",
    [
        None,  # no spec at all
        "[steps\nbroken = ",  # not TOML
        "steps = 3\n",  # not a table
        "[steps]\nfit = 1\n",  # not a step table
    ],
)
def test_no_names_and_no_error_without_a_usable_spec(tmp_path: Path, text: str | None) -> None:
    if text is not None:
        (tmp_path / "reproflake.toml").write_text(text)
    assert complete("reproflake build ", tmp_path) == []


def test_half_edited_spec_still_completes(project: Path) -> None:
    # The validator would refuse this (no env, no run): completion only needs the names.
    (project / "reproflake.toml").write_text(SPEC + "[steps.draft]\n")
    assert complete("reproflake build d", project) == ["draft"]


def test_source_scripts_are_printed_for_each_shell(project: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        env = {**os.environ, "_REPROFLAKE_COMPLETE": f"{shell}_source"}
        result = subprocess.run(
            [sys.executable, "-m", "reproflake"],
            cwd=project, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "_REPROFLAKE_COMPLETE" in result.stdout
        assert f"{shell}_complete" in result.stdout
