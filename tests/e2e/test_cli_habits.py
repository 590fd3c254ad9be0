"""Commands users look for by name: `status`, `log`."""

from __future__ import annotations

from pathlib import Path

from conftest import needs_nix, reproflake

pytestmark = needs_nix


def test_status_is_plan_in_one_word_per_step(python_project: Path) -> None:
    out = reproflake("status", cwd=python_project).stdout
    assert out.splitlines()[:3] == ["prepare  built", "fit      built", "report   built"]
    assert out.splitlines()[-1].startswith("summary: 0 will build")


def test_log_prints_a_steps_whole_log_failed_or_not(project_copy: Path) -> None:
    out = reproflake("log", "prepare", cwd=project_copy).stdout
    assert "kept " in out and "reproflake: step 'prepare' finished" in out
    with open(project_copy / "reproflake.toml", "a") as f:
        f.write(
            '\n[steps.broken]\nenv = "py"\nrun = "echo line-one; echo line-two; exit 3"\n'
            'outputs = ["x"]\n'
        )
    assert reproflake("build", "broken", cwd=project_copy, check=False).returncode == 1
    out = reproflake("log", "broken", cwd=project_copy).stdout
    assert "line-one\nline-two\n" in out
    assert "its command exited with status 3" in out
    run = reproflake("log", "nosuch", cwd=project_copy, check=False)
    assert run.returncode == 2 and "unknown step: nosuch" in run.stderr


def test_dry_run_is_plan_and_quiet_keeps_only_results(project_copy: Path) -> None:
    with open(project_copy / "src/fit.py", "a") as f:
        f.write("# an edit\n")
    dry = reproflake("build", "--dry-run", cwd=project_copy)
    assert dry.stdout == reproflake("plan", cwd=project_copy).stdout
    assert "fit: will build" in dry.stdout
    assert not list((project_copy / "results").glob(".*"))
    run = reproflake("build", "-q", cwd=project_copy)
    assert run.stderr == ""
    assert run.stdout.startswith("summary: ")
