"""The CI examples and the pre-commit hook parse, and run commands that exist."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from reproflake.cli import main

REPO = Path(__file__).resolve().parents[2]


def commands(lines: list[str]) -> list[str]:
    return [line.strip() for text in lines for line in text.splitlines() if line.strip()]


def test_github_workflow() -> None:
    doc = yaml.safe_load((REPO / "docs/ci/github-actions.yml").read_text())
    steps = doc["jobs"]["pipeline"]["steps"]
    runs = commands([s["run"] for s in steps if "run" in s])
    assert "reproflake lock --check" in runs
    assert any(r.endswith("reproflake build") for r in runs)
    assert any(r.endswith("reproflake verify") for r in runs)
    assert doc[True] == {"push": None, "pull_request": None}  # YAML reads `on:` as true


def test_gitlab_job() -> None:
    doc = yaml.safe_load((REPO / "docs/ci/gitlab-ci.yml").read_text())
    assert doc["reproflake"]["script"] == [
        "reproflake lock --check",
        "reproflake build",
        "reproflake verify",
    ]


def test_pre_commit_hook_runs_lock_check() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "reproflake-lock-check"
    assert hook["entry"] == "reproflake lock --check"
    assert hook["pass_filenames"] is False
    help_text = CliRunner().invoke(main, ["lock", "--help"]).stdout
    assert "--check" in help_text
