"""`reproflake gc` with Nix's real collector: what the lock needs survives, the rest goes.

This runs Nix's garbage collector over the store the tests see at /nix, their own
(tests/teststore.py), never the machine's: paths that no root reaches are deleted, so later
tests may fetch again what earlier ones left unrooted; nothing that any project roots is
touched.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from conftest import needs_nix, reproflake

pytestmark = needs_nix


def test_gc_keeps_what_the_lock_needs_and_drops_removed_steps(project_copy: Path) -> None:
    spec = project_copy / "reproflake.toml"
    original = spec.read_text()
    spec.write_text(
        original + f'\n[steps.extra]\nenv = "py"\nrun = "echo {uuid.uuid4()} > $OUT/x"\n'
        'outputs = ["x"]\n'
    )
    reproflake("build", cwd=project_copy)
    extra = os.readlink(project_copy / "results" / "extra")
    spec.write_text(original)  # the step is gone from the spec

    dry = reproflake("gc", "--dry-run", cwd=project_copy).stdout
    assert "would remove root results/extra" in dry
    assert os.path.exists(extra)

    run = reproflake("gc", cwd=project_copy)
    assert "removed root results/extra" in run.stdout
    assert run.stdout.splitlines()[-1].startswith("summary: removed 1 root(s); Nix freed ")
    assert not (project_copy / "results" / "extra").is_symlink()
    assert not os.path.exists(extra)
    # What the next build needs is still there: environment root, .debs, wheels, seed.
    (lock_root,) = (project_copy / ".reproflake/cache/gcroots").glob("lock-*")
    kept = sorted(p.name for p in Path(os.readlink(lock_root)).iterdir())
    assert "env-py" in kept and "seed" in kept and any(k.startswith("deb-") for k in kept)
    for name in kept:
        assert os.path.exists(os.readlink(Path(os.readlink(lock_root)) / name)), name
    for step in ("prepare", "fit", "report"):
        assert os.path.exists(os.readlink(project_copy / "results" / step))
    assert "0 built" in reproflake("build", cwd=project_copy).stdout
