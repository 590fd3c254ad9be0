"""`plan` predicts what Nix then builds, for each kind of edit; early cutoff holds."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from pathlib import Path

import pytest
from conftest import needs_nix, reproflake

from reproflake.fsclock import RACY_NS

pytestmark = needs_nix


def plan(root: Path) -> dict[str, dict[str, object]]:
    doc = json.loads(reproflake("plan", "--json", cwd=root).stdout)
    return {entry["step"]: entry for entry in doc}


def built_by_nix(root: Path) -> set[str]:
    run = reproflake("build", cwd=root)
    return set(re.findall(r"^finished (\S+) in", run.stderr, flags=re.M))


# The Nix store is shared by every run on a machine and outputs are content-addressed:
# an edit that produced the same bytes in an earlier run would find them built already.
# So each test starts from data no earlier run has seen, and each edit is unique too.
def unique_row() -> str:
    return f"{random.uniform(-5, 5):.6f},{random.uniform(0, 20):.6f}\n"


def edit_source(root: Path) -> None:
    # The new output must be new to the store too: truncating alone gave the same rows
    # as an earlier run whenever this run's unique row sorted past the first 100.
    extra = f"rows = rows[:100] + [(99.0, {random.uniform(0, 1):.9f})]"
    path = root / "src/prepare.py"
    path.write_text(path.read_text().replace("rows.sort()", f"rows.sort()\n{extra}"))


def comment_only(root: Path) -> None:
    with open(root / "src/prepare.py", "a") as f:
        f.write(f"# a comment changes the script, not its output ({uuid.uuid4()})\n")


def make_executable(root: Path) -> None:
    path = root / "src/prepare.py"
    path.chmod(path.stat().st_mode | 0o100)  # the bytes as they were


def edit_data(root: Path) -> None:
    with open(root / "data/measurements.csv", "a") as f:
        f.write(unique_row())


def edit_variable(root: Path) -> None:
    spec = root / "reproflake.toml"
    spec.write_text(spec.read_text().replace('DEGREE = "2"', 'DEGREE = "3"'))


def add_debian_package(root: Path) -> None:
    spec = root / "reproflake.toml"
    spec.write_text(
        spec.read_text().replace('debian = ["python3"]', 'debian = ["python3", "libjq1"]')
    )
    reproflake("lock", cwd=root)


def change_wheel_version(root: Path) -> None:
    spec = root / "reproflake.toml"
    spec.write_text(spec.read_text().replace('"numpy==2.2.6"', '"numpy==2.3.5"'))
    reproflake("lock", cwd=root)


EDITS = {
    # edit: (steps that must build, steps Nix must build)
    "source file": (edit_source, {"prepare"}, {"prepare", "fit", "report"}),
    "comment only (early cutoff)": (comment_only, {"prepare"}, {"prepare"}),
    # Nix takes a source with its executable bit: another derivation, the same output.
    "source made executable (early cutoff)": (make_executable, {"prepare"}, {"prepare"}),
    "data input": (edit_data, {"prepare"}, {"prepare", "fit", "report"}),
    "variable": (edit_variable, {"fit"}, {"fit", "report"}),
    "debian package added": (
        add_debian_package,
        {"prepare", "fit", "report"},
        {"prepare", "fit", "report"},
    ),
    "wheel version": (
        change_wheel_version,
        {"prepare", "fit", "report"},
        {"prepare", "fit", "report"},
    ),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_plan_predicts_what_nix_builds(project_copy: Path, edit: str) -> None:
    apply, must, expected = EDITS[edit]
    edit_data(project_copy)
    reproflake("build", cwd=project_copy)
    assert all(e["status"] == "built" for e in plan(project_copy).values())
    apply(project_copy)
    predicted = plan(project_copy)
    will = {s for s, e in predicted.items() if e["status"] == "will-build"}
    may = {s for s, e in predicted.items() if e["status"] == "may-build"}
    assert will == must
    built = built_by_nix(project_copy)
    assert built == expected
    # Never more than predicted, never less than certain.
    assert will <= built <= will | may
    # Afterwards, nothing is left to build.
    assert all(e["status"] == "built" for e in plan(project_copy).values())


def test_plan_names_package_versions(project_copy: Path) -> None:
    change_wheel_version(project_copy)
    out = reproflake("plan", cwd=project_copy).stdout
    assert "fit: will build — wheel numpy changed (2.2.6 → 2.3.5)" in out


def test_plan_explains_in_plain_words(project_copy: Path) -> None:
    edit_source(project_copy)
    out = reproflake("plan", cwd=project_copy).stdout
    assert re.search(
        r"^prepare: will build — src/prepare\.py changed \(sha256 [0-9a-f]{4}… → [0-9a-f]{4}…\)",
        out,
        re.M,
    )
    assert (
        "fit: will build if what it needs changes — needs prepare, which will build because src/prepare.py changed"
        in out
    )
    assert "summary: 1 will build, 2 may build" in out


def test_undeclared_file_changes_nothing(project_copy: Path) -> None:
    (project_copy / "notes.txt").write_text("not part of any step\n")
    (project_copy / "src" / "scratch.py").write_text("print('unused')\n")
    assert all(e["status"] == "built" for e in plan(project_copy).values())
    assert built_by_nix(project_copy) == set()


def test_plan_without_records_asks_nix_what_it_has(project_copy: Path) -> None:
    """A fresh clone has no build records here: Nix's own store says what is built."""
    (project_copy / ".reproflake" / "cache" / "state.json").unlink()
    assert all(e["status"] == "built" for e in plan(project_copy).values())
    (project_copy / "src" / "fit.py").write_text(
        (project_copy / "src" / "fit.py").read_text() + f"\n# {uuid.uuid4()}\n"
    )
    statuses = {step: e["status"] for step, e in plan(project_copy).items()}
    assert statuses["prepare"] == "built"  # fit changed: it and what follows are unknown
    assert statuses["fit"] != "built" and statuses["report"] != "built"


def test_plan_answers_from_its_record_until_something_changes(project_copy: Path) -> None:
    """Nothing changed: the same bytes, and no command run. An edit of a source: brought
    up to date from the records (no command run), naming the edit, the bytes of the plan
    computed in full; a build: computed again, everything built."""
    quiet = RACY_NS / 1e9 + 0.2  # the copy's files are new: a record waits until they are quiet
    time.sleep(quiet)
    computed = reproflake("-v", "plan", cwd=project_copy)
    assert "+ nix-store --check-validity" in computed.stderr
    assert (project_copy / ".reproflake/cache/plan.json").is_file()
    recorded = reproflake("-v", "plan", cwd=project_copy)
    assert "+ " not in recorded.stderr  # nothing was run: not Nix, not git
    assert recorded.stdout == computed.stdout
    assert "summary: 0 will build, 0 may build (if what they need changes), 3 already built" in (
        recorded.stdout
    )

    edit_source(project_copy)
    edited = reproflake("-v", "plan", cwd=project_copy)
    assert "+ " not in edited.stderr
    assert "prepare: will build — src/prepare.py changed" in edited.stdout
    for name in ("plan.json", "plan-steps.json"):
        (project_copy / ".reproflake/cache" / name).unlink()
    in_full = reproflake("-v", "plan", cwd=project_copy)
    assert "+ nix-store --check-validity" in in_full.stderr
    assert in_full.stdout == edited.stdout
    time.sleep(quiet)
    computed = reproflake("-v", "plan", "--json", cwd=project_copy)
    recorded = reproflake("-v", "plan", "--json", cwd=project_copy)
    assert "+ nix-store" in computed.stderr and "+ " not in recorded.stderr
    assert recorded.stdout == computed.stdout
    assert {e["step"]: e["status"] for e in json.loads(recorded.stdout)}["prepare"] == "will-build"

    reproflake("build", cwd=project_copy)
    assert all(e["status"] == "built" for e in plan(project_copy).values())
