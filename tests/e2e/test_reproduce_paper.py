"""The promise of a paper's release: the `paper` template (numpy, matplotlib, TeX Live,
latexmk with bibtex), released with everything it used, is reproduced by someone else in
another directory with no network at all, and every file, the PDF included, comes back
byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import git, reproflake

pytestmark = pytest.mark.slow

# The date test_configured_envs gives its paper project: the environment's root (configured
# with the clock frozen at this date) is the same one, built once for both.
EPOCH = 1700000000


def test_a_vendored_paper_release_reproduces_offline(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    reproflake("init", "--template", "paper", str(root), cwd=tmp_path)
    spec = root / "reproflake.toml"
    text = spec.read_text()
    spec.write_text(
        text.replace('name = "paper"', f'name = "paper"\nsource_date_epoch = {EPOCH}', 1)
    )
    reproflake("lock", cwd=root)
    if not (root / ".git").exists():
        git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "the paper", cwd=root)
    archive = tmp_path / "paper.tar.zst"
    reproflake("release", "--vendor", "-o", str(archive), cwd=root)

    where = tmp_path / "reader" / "paper"
    where.parent.mkdir()
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "reproflake", "reproduce", str(archive),
         "--dir", str(where)],
        cwd=where.parent, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    steps = json.loads((root / ".reproflake/build.json").read_text())["steps"]
    assert {"analysis", "figures", "table", "paper"} <= set(steps)
    for step in steps:
        assert any(line.split()[:2] == [step, "identical"] for line in out.splitlines()), out
    assert f"reproduced {len(steps)} step(s) bit for bit" in out
    (top,) = where.iterdir()
    pdf = top / "results/paper/paper.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and b"D:20231114221320" in pdf.read_bytes()
