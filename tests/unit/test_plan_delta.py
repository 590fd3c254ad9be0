"""A plan brought up to date after an edit (commands/_plan_delta.py): taken only for edits
of steps' source files, and then the same bytes as the plan computed in full. Nix is
faked at the one subprocess choke point (reproflake._proc), as in test_plan_record.py."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproflake.commands import _plan_delta, _plan_record, graph, plan
from reproflake.commands._plan import compute
from reproflake.commands._project import load_project
from reproflake.errors import ReproflakeError
from reproflake.lock.model import Lock
from reproflake.spec import Spec
from reproflake.verdicts import render
from tests.unit.locked_project import write_locked_project
from tests.unit.test_plan_record import (
    CHANGES,
    HW_SPEC,
    SPEC,
    FakeNix,
    build_all,
    fake_nix,
    git,
    later,
    write_project,
    write_same_size,
)


@pytest.fixture
def nix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeNix:
    return fake_nix(monkeypatch, tmp_path)


@pytest.fixture
def built(tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix) -> Path:
    root = write_project(tmp_path, make_lock)
    build_all(root, tmp_path / "store")
    return root


FULL, DELTA, RECORD = "computed in full", "brought up to date", "from the record"


def planned(
    root: Path, steps: Sequence[str] = (), *, as_json: bool = False, short: bool = False
) -> tuple[str, list[str], list[str]]:
    """How the plan was answered, and what it printed and logged."""
    printed: list[str] = []
    logged: list[str] = []
    taken: list[str] = []
    answer, update = _plan_record.answer, _plan_delta.update

    def spy(name: str, real: Callable[..., bool]) -> Callable[..., bool]:
        def call(*args: Any) -> bool:
            found = real(*args)
            if found:
                taken.append(name)
            return found

        return call

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_plan_record, "answer", spy(RECORD, answer))
        mp.setattr(_plan_delta, "update", spy(DELTA, update))
        code = plan.run(
            root, steps, as_json=as_json, log=logged.append, out=printed.append, short=short
        )
    assert code == 0
    return (taken[0] if taken else FULL), printed, logged


def in_full(root: Path, **form: Any) -> tuple[list[str], list[str]]:
    """The plan computed from nothing kept: what an update must print."""
    for record in (_plan_record.RECORD, _plan_delta.STEPS_RECORD):
        (root / record).unlink(missing_ok=True)
    how, printed, logged = planned(root, **form)
    assert how == FULL
    return printed, logged


def rename_over(path: Path, text: str) -> None:
    """As many editors save: a new file beside it, renamed over it (a new inode, and the
    directory's times change)."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


EDITS: dict[str, Callable[[Path], object]] = {
    "edited, same size": lambda r: write_same_size(r / "src" / "a.sh"),
    "edited, longer": lambda r: (r / "src" / "a.sh").write_text("echo a changed\n"),
    "touched": lambda r: later(r / "src" / "a.sh"),
    "renamed over": lambda r: rename_over(r / "src" / "a.sh", "echo new a\n"),
    "a glob's file edited": lambda r: write_same_size(r / "src" / "b" / "run.sh"),
    "both edited": lambda r: (
        write_same_size(r / "src" / "a.sh"),
        write_same_size(r / "src" / "b" / "run.sh"),
    ),
}
FORMS: list[dict[str, Any]] = [
    {},
    {"as_json": True},
    {"short": True},
    {"steps": ["a"]},
    {"steps": ["b"], "as_json": True},
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: json.dumps(f))
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_source_brings_the_plan_up_to_date_with_the_bytes_of_a_full_plan(
    built: Path, nix: FakeNix, edit: str, form: dict[str, Any]
) -> None:
    assert planned(built, **form)[0] == FULL
    assert planned(built, **form)[0] == RECORD
    EDITS[edit](built)
    calls = len(nix.calls)
    how, printed, logged = planned(built, **form)
    assert how == DELTA and len(nix.calls) == calls  # Nix was not asked
    assert (printed, logged) == in_full(built, **form)
    assert logged and logged[0].startswith("input data changed")  # kept, said again


def test_the_edit_is_told_then_undone_then_answered_from_the_record(
    built: Path, nix: FakeNix
) -> None:
    _, first, logged = planned(built)
    source = built / "src" / "a.sh"
    original = source.read_text()
    source.write_text("echo other\n")
    how, printed, _ = planned(built)
    assert how == DELTA
    a_line, b_line = printed[0].splitlines()
    assert a_line.startswith("a: will build — src/a.sh changed (sha256 ")
    why = a_line.split(" — ")[1]
    assert (
        b_line
        == f"b: will build if what it needs changes — needs a, which will build because {why}"
    )
    assert printed[-1].startswith("summary: 1 will build, 1 may build")
    assert planned(built) == (RECORD, printed, logged)
    source.write_text(original)
    assert planned(built) == (DELTA, first, logged)
    assert planned(built) == (RECORD, first, logged)


def test_a_source_changed_while_planning_is_hashed_again(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Racy: it may change again within its clock's tick, its stat unchanged."""
    planned(built)
    source = built / "src" / "a.sh"
    write_same_size(source)
    monkeypatch.setattr(_plan_record, "RACY_NS", 60 * 10**9)  # every edit is recent
    assert planned(built)[0] == DELTA
    # Nothing changed since, but the file may have, within its clock's tick: read again.
    assert planned(built)[0] == DELTA
    # Written again within the same tick: the same size and times, other bytes.
    before = source.stat()
    source.write_text(source.read_text().replace("X", "Y"))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    monkeypatch.setattr(_plan_record, "RACY_NS", 0)  # quiet from now on
    how, printed, logged = planned(built)
    assert how == DELTA and "a: will build — src/a.sh changed" in printed[0]
    assert planned(built) == (RECORD, printed, logged)
    assert (printed, logged) == in_full(built)


def test_a_hardware_step_that_would_build_asks_the_gate(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix
) -> None:
    root = write_project(tmp_path, make_lock, HW_SPEC)
    build_all(root, tmp_path / "store")
    assert planned(root)[0] == FULL
    assert planned(root)[0] == RECORD
    write_same_size(root / "src" / "a.sh")  # b, which declares a GPU, may now build
    how, printed, _ = planned(root)
    assert how == FULL
    assert "b: cannot build here" in printed[0]


def replace_dir(root: Path) -> None:
    """The same files in a new directory (another inode)."""
    shutil.copytree(root / "src", root / "src.new", symlinks=True)
    shutil.rmtree(root / "src")
    (root / "src.new").rename(root / "src")


def rewrite_steps_record(root: Path, **changed: object) -> None:
    path = root / _plan_delta.STEPS_RECORD
    path.write_text(json.dumps({**json.loads(path.read_text()), **changed}))


NOT_EDITS: dict[str, Callable[[Path], object]] = {
    **{k: v for k, v in CHANGES.items() if not k.startswith("source ")},
    "source made a link": lambda r: (
        (r / "src" / "a2.sh").write_text("echo a\n"),
        (r / "src" / "a.sh").unlink(),
        (r / "src" / "a.sh").symlink_to("a2.sh"),
    ),
    "source made executable": lambda r: (r / "src" / "a.sh").chmod(0o755),
    "source removed": lambda r: (r / "src" / "a.sh").unlink(),
    "source made a directory": lambda r: (
        (r / "src" / "a.sh").unlink(),
        (r / "src" / "a.sh").mkdir(),
    ),
    "its directory replaced": replace_dir,
    "steps' record from another state": lambda r: (
        rewrite_steps_record(r, base="0" * 64),
        write_same_size(r / "src" / "a.sh"),
    ),
    "steps' record broken": lambda r: (
        (r / _plan_delta.STEPS_RECORD).write_text('{"version": 1, "steps": {'),
        write_same_size(r / "src" / "a.sh"),
    ),
    "steps' record of another shape": lambda r: (
        rewrite_steps_record(r, stats=[1]),
        write_same_size(r / "src" / "a.sh"),
    ),
}


@pytest.mark.parametrize("change", sorted(NOT_EDITS))
def test_anything_but_an_edited_source_computes_the_plan_in_full(
    built: Path, nix: FakeNix, change: str
) -> None:
    planned(built)
    NOT_EDITS[change](built)
    try:
        how = planned(built)[0]
    except ReproflakeError:  # a project the full path refuses: refused, not brought up to date
        how = FULL
    assert how == FULL


def test_a_selection_never_planned_before_is_computed(built: Path, nix: FakeNix) -> None:
    planned(built)
    write_same_size(built / "src" / "a.sh")
    assert planned(built, ["a"])[0] == FULL
    write_same_size(built / "src" / "b" / "run.sh")
    # Both selections are kept for this state of the spec.
    assert planned(built, ["a"])[0] == DELTA
    assert planned(built)[0] == DELTA


def full_lines(root: Path, form: str) -> list[str]:
    """The plan computed in full in this process, leaving the plan's records alone."""
    p = load_project(root, lambda _m: None, write_lock=False)
    return render(list(compute(p).values()), form)


CHAIN = 12


def chain_spec() -> str:
    """Steps s0..s11, each needing s(i-1) and s(i//2); every fourth also reads a shared file."""
    lines = SPEC.split("[inputs.data]")[0].splitlines()
    for i in range(CHAIN):
        needs = sorted({f"s{j}" for j in (i - 1, i // 2) if 0 <= j < i})
        sources = [f"src/s{i}.sh"] + (["src/common.sh"] if i % 4 == 0 else [])
        lines += [
            f"[steps.s{i}]",
            'env = "e"',
            f'run = "sh src/s{i}.sh > $OUT/o"',
            "sources = " + json.dumps(sources),
            "needs = " + json.dumps(needs),
            'outputs = ["o"]',
        ]
    return "\n".join(lines) + "\n"


CHAIN_SOURCES = [f"src/s{i}.sh" for i in range(CHAIN)] + ["src/common.sh"]


def chain_project(tmp_path: Path, make_lock: Callable[[Spec], Lock]) -> Path:
    """Built, its sources in one directory no glob walks."""
    root = tmp_path / "chain"
    (root / "src").mkdir(parents=True)
    for rel in CHAIN_SOURCES:
        (root / rel).write_text(f"{rel}\n")
    write_locked_project(root, chain_spec(), make_lock)
    git(root, "init", "-q")
    build_all(root, tmp_path / "store")
    return root


@pytest.mark.parametrize("link", [False, True], ids=["a copy", "a link to a copy elsewhere"])
def test_a_directory_above_the_sources_replaced_computes_in_full(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix, link: bool
) -> None:
    """The files in it look edited (other inodes); the directory itself is another one."""
    root = chain_project(tmp_path, make_lock)
    planned(root)
    copy = tmp_path / "elsewhere" if link else root / "src.new"
    shutil.copytree(root / "src", copy)
    shutil.rmtree(root / "src")
    if link:
        (root / "src").symlink_to(copy)
    else:
        copy.rename(root / "src")
    try:
        how = planned(root)[0]
    except ReproflakeError:  # refused by the full path (a link out of the project)
        how = FULL
    assert how == FULL


def test_many_edits_in_turn_agree_with_the_full_plan(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix
) -> None:
    """Sources edited at random, some back to what was built, some while another edit is
    still untold: after each round the updated plan is the full plan, byte for byte."""
    root = chain_project(tmp_path, make_lock)
    names = CHAIN_SOURCES
    original = {rel: (root / rel).read_text() for rel in names}
    rng = random.Random(7)
    forms = ["plan", "status", "json"]
    for form in forms:  # each form planned once: an update serves what was planned before
        planned(root, as_json=form == "json", short=form == "status")
    seen = set()
    for _round in range(30):
        for rel in rng.sample(names, rng.randint(1, 3)):
            text = original[rel] if rng.random() < 0.4 else f"{rng.random()}\n"
            (root / rel).write_text(text)
        form = rng.choice(forms)
        how, printed, _ = planned(root, as_json=form == "json", short=form == "status")
        assert how in (DELTA, RECORD)  # RECORD: this form's answer, nothing changed since
        assert printed == full_lines(root, form)
        seen.add(printed[-1])
    assert len(seen) > 5  # the rounds told many different plans


def draw(root: Path, fmt: str) -> tuple[str, list[str]]:
    printed: list[str] = []
    logged: list[str] = []
    assert graph.run(root, fmt, None, log=logged.append, out=printed.append) == 0
    return "".join(printed), logged


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_graph_marks_steps_from_the_records_as_the_full_plan_would(
    built: Path, nix: FakeNix, fmt: str
) -> None:
    planned(built)
    write_same_size(built / "src" / "a.sh")
    calls = len(nix.calls)
    drawn = draw(built, fmt)
    assert len(nix.calls) == calls  # neither Nix's store nor anything else was asked
    assert "stale" in drawn[0] and drawn[1] and drawn[1][0].startswith("input data changed")
    for record in (_plan_record.RECORD, _plan_delta.STEPS_RECORD):
        (built / record).unlink()
    assert draw(built, fmt) == drawn
    assert len(nix.calls) > calls  # that time the plan was computed
