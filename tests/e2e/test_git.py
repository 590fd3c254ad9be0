"""reproflake leaves the user's git alone: nothing staged, edits still undoable."""

from __future__ import annotations

import uuid
from pathlib import Path

from conftest import git, needs_nix, reproflake

pytestmark = needs_nix


def test_build_stages_no_content_and_an_edit_stays_undoable(project_copy: Path) -> None:
    git("add", "-A", cwd=project_copy)
    git("commit", "-q", "--allow-empty", "-m", "the project", cwd=project_copy)
    spec = project_copy / "reproflake.toml"
    committed = spec.read_text()
    (project_copy / "src" / "extra.txt").write_text(f"{uuid.uuid4()}\n")
    spec.write_text(
        committed.replace('variables = { DEGREE = "2" }', 'variables = { DEGREE = "3" }')
        + '\n[steps.extra]\nenv = "py"\nsources = ["src/extra.txt"]\n'
        'run = "cp src/extra.txt $OUT/e"\noutputs = ["e"]\n'
    )
    reproflake("build", cwd=project_copy)
    # The new source reached Nix, yet nothing of its content (nor the spec's) is staged.
    assert (project_copy / "results/extra/e").read_text() == (
        project_copy / "src/extra.txt"
    ).read_text()
    assert git("diff", "--cached", "--name-only", cwd=project_copy) == ""
    assert "reproflake.toml" in git("diff", "--name-only", cwd=project_copy)
    # The user's own undo still works.
    git("checkout", "--", "reproflake.toml", cwd=project_copy)
    assert spec.read_text() == committed
    # And what the user staged stays exactly as they staged it.
    (project_copy / "src" / "fit.py").write_text(
        (project_copy / "src" / "fit.py").read_text() + "# staged edit\n"
    )
    git("add", "src/fit.py", cwd=project_copy)
    staged = git("diff", "--cached", cwd=project_copy)
    (project_copy / "src" / "fit.py").write_text(
        (project_copy / "src" / "fit.py").read_text() + "# unstaged edit\n"
    )
    reproflake("build", cwd=project_copy)
    assert git("diff", "--cached", cwd=project_copy) == staged
