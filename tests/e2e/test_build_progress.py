"""Progress while Nix builds, as a log (not a terminal) sees it: a step's start is said
when it starts, not when it ends, and the build ends with its total time."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from conftest import needs_nix, reproflake

pytestmark = needs_nix


def slow_project(tmp_path: Path) -> Path:
    root = tmp_path / "slow"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    set_nonce(root)
    reproflake("lock", cwd=root)
    return root


def set_nonce(root: Path) -> None:
    """A step Nix has never built (the store is shared between runs), sleeping 3 s."""
    spec = (root / "reproflake.toml").read_text().split("\n[steps.slow]")[0]
    spec += (
        '\n[steps.slow]\nenv = "base"\n'
        f'run = "sleep 3; echo {uuid.uuid4().hex} > \\"$OUT/slow.txt\\""\n'
        'outputs = ["slow.txt"]\n'
    )
    (root / "reproflake.toml").write_text(spec)


def test_a_log_shows_a_step_start_before_its_end_and_the_total_time(tmp_path: Path) -> None:
    root = slow_project(tmp_path)
    run = reproflake("build", "slow", cwd=root)
    lines = run.stderr.splitlines()
    start = lines.index("building slow …")
    end = next(i for i, line in enumerate(lines) if line.startswith("finished slow in "))
    assert start < end
    took = re.fullmatch(r"finished slow in ([\d.]+)s", lines[end])
    assert took is not None and float(took.group(1)) >= 3.0
    seconds = float(took.group(1))
    total = re.search(r"^built 1 step in ([\d.]+)s$", run.stderr, flags=re.M)
    assert total is not None and float(total.group(1)) >= seconds
    assert "\r" not in run.stderr and "\x1b[" not in run.stderr  # no redrawing in a log
    assert "summary: 1 built" in run.stdout


def test_json_output_is_unchanged_and_progress_stays_on_stderr(tmp_path: Path) -> None:
    root = slow_project(tmp_path)
    run = reproflake("build", "slow", "--json", cwd=root)
    doc = json.loads(run.stdout)  # the whole of standard output is the document
    assert doc["steps"]["slow"]["status"] == "built"
    assert doc["steps"]["slow"]["seconds"] >= 3.0
    assert "building slow …" in run.stderr
    assert re.search(r"^built 1 step in [\d.]+s$", run.stderr, flags=re.M)
    set_nonce(root)
    reproflake("lock", cwd=root)
    quiet = reproflake("build", "slow", "--json", "-q", cwd=root)
    assert json.loads(quiet.stdout)["steps"]["slow"]["status"] == "built"
    assert quiet.stderr == ""
