"""A plan brought up to date after an edit (commands/_plan_delta.py): taken only for edits
of steps' source files, and then the same bytes as the plan computed in full. Nix is
faked at the one subprocess choke point (reproflake._proc), as in test_plan_record.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproflake import _proc, fsclock
from reproflake.commands import _plan_delta, _plan_record, graph, plan
from reproflake.commands._plan import compute
from reproflake.commands._project import load_project
from reproflake.digests import SourceDigests
from reproflake.errors import ReproflakeError
from reproflake.lock.model import Lock
from reproflake.spec import Spec
from reproflake.verdicts import render
from tests.unit.locked_project import write_locked_project
from tests.unit.planned_project import HW_SPEC, SPEC, FakeNix, build_all, git, write_project
from tests.unit.test_plan_record import CHANGES, later, write_same_size

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
    monkeypatch.setattr(fsclock, "RACY_NS", 60 * 10**9)  # every edit is recent
    assert planned(built)[0] == DELTA
    # Nothing changed since, but the file may have, within its clock's tick: read again.
    assert planned(built)[0] == DELTA
    # Written again within the same tick: the same size and times, other bytes.
    before = source.stat()
    source.write_text(source.read_text().replace("X", "Y"))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    monkeypatch.setattr(fsclock, "RACY_NS", 0)  # quiet from now on
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


def full_lines(root: Path, form: str, steps: Sequence[str] = ()) -> list[str]:
    """The plan computed in full in this process, leaving the plan's records alone."""
    p = load_project(root, lambda _m: None, write_lock=False, steps=steps)
    wanted = set(p.graph.upstream(list(steps))) if steps else set(p.spec.steps)
    return render([pl for s, pl in compute(p).items() if s in wanted], form)


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


# ------------------------------------------------------------- sequences meant to break it


def agrees(root: Path, steps: Sequence[str] = (), **form: Any) -> str:
    """How the plan was answered, once it is checked to print what the full path prints
    at that moment: the same lines, or the same error."""
    name = _plan_record.form(as_json=form.get("as_json", False), short=form.get("short", False))
    try:
        expected = full_lines(root, name, steps)
    except ReproflakeError as exc:
        expected = ["error", str(exc)]
    try:
        how, printed, _ = planned(root, steps, **form)
    except ReproflakeError as exc:
        how, printed = FULL, ["error", str(exc)]  # only the full path raises
    assert printed == expected, how
    return how


def test_a_source_missing_from_its_step_record_is_told_as_added(built: Path, nix: FakeNix) -> None:
    """A source added to a built step: its record has no sha256 for it."""
    (built / "src" / "extra.sh").write_text("echo extra\n")
    spec = (built / "reproflake.toml").read_text()
    edited = spec.replace('sources = ["src/a.sh"]', 'sources = ["src/a.sh", "src/extra.sh"]')
    (built / "reproflake.toml").write_text(edited)
    assert agrees(built) == FULL
    write_same_size(built / "src" / "extra.sh")
    assert agrees(built) == DELTA
    assert "a: will build — source file src/extra.sh was added" in planned(built)[1][0]


# A step's source file that the plan also reads as something else: an edit of it is not
# only an edit of a source.
READ_TWICE = {
    "matched by a glob input": ('[inputs.data]\npath = "data"', '[inputs.data]\npath = "src/*.sh"'),
    "in a directory input": ('[inputs.data]\npath = "data"', '[inputs.data]\npath = "src"'),
}


@pytest.mark.parametrize("case", sorted(READ_TWICE))
def test_a_source_read_as_an_input_too_computes_in_full(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix, case: str
) -> None:
    root = write_project(tmp_path, make_lock, SPEC.replace(*READ_TWICE[case]))
    build_all(root, tmp_path / "store")
    agrees(root)
    write_same_size(root / "src" / "a.sh")
    assert agrees(root) == FULL


def test_a_source_that_is_a_gitignore_is_not_masked_by_an_update(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix
) -> None:
    """Edited to ignore another source git does not track: the full path refuses it."""
    text = SPEC.replace(
        'sources = ["src/a.sh"]', 'sources = ["src/a.sh", "src/.gitignore", "src/new.sh"]'
    )
    (tmp_path / "proj" / "src").mkdir(parents=True)
    (tmp_path / "proj" / "src" / ".gitignore").write_text("*.tmp\n")
    root = write_project(tmp_path, make_lock, text)
    (root / "src" / "new.sh").write_text("echo new\n")  # after `git add`: untracked
    build_all(root, tmp_path / "store")
    assert agrees(root) == FULL
    (root / "src" / ".gitignore").write_text("new.sh\n")
    with pytest.raises(ReproflakeError, match=r"src/new\.sh is ignored by git"):
        planned(root)


def test_a_file_url_input_on_a_source_is_checked_again(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix
) -> None:
    """The full path checks a file:// input's sha256: an edit must reach that check."""
    src = tmp_path / "proj" / "src"
    src.mkdir(parents=True)
    (src / "a.sh").write_text("echo a\n")
    sha = hashlib.sha256(b"echo a\n").hexdigest()
    url = f'[inputs.data]\nurl = "file://{src}/a.sh"\nsha256 = "{sha}"'
    root = write_project(tmp_path, make_lock, SPEC.replace('[inputs.data]\npath = "data"', url))
    build_all(root, tmp_path / "store")
    assert agrees(root) == FULL
    write_same_size(root / "src" / "a.sh")
    with pytest.raises(ReproflakeError, match=r"inputs\.data\.sha256"):
        planned(root)


def test_a_source_edited_through_a_hard_link_or_a_new_repository_above_it(
    built: Path, nix: FakeNix
) -> None:
    os.link(built / "src" / "a.sh", built / "notes.txt")  # a file no plan reads
    agrees(built)
    with open(built / "notes.txt", "a") as f:
        f.write("echo more\n")
    assert agrees(built) == DELTA
    git(built / "src", "init", "-q")  # a repository of its own in a directory above it
    assert agrees(built) in (DELTA, FULL)
    os.link(built / "data" / "x.csv", built / "src" / "b" / "x.csv")  # an input's file
    agrees(built)
    with open(built / "src" / "b" / "x.csv", "a") as f:
        f.write("5,6\n")
    assert agrees(built) == FULL


MANY_SPEC = (
    SPEC.replace(
        'sources = ["src/a.sh"]', 'sources = ["src/a.sh", "src/common.sh", "lib/l.sh"]'
    ).replace('sources = ["src/b/**/*.sh"]', 'sources = ["src/b/**/*.sh", "src/common.sh"]')
    + """
[inputs.notes]
path = "src/b/*.txt"
[steps.c]
env = "e"
run = "sh src/c.sh > $OUT/c"
sources = ["src/c.sh", "src/b/run.sh"]
inputs = ["notes"]
needs = ["b"]
outputs = ["c"]
[steps.d]
env = "e"
run = "sh src/d.sh > $OUT/d"
sources = ["src/d.sh", "src/common.sh"]
outputs = ["d"]
"""
)
MANY_SOURCES = ["src/a.sh", "src/common.sh", "lib/l.sh", "src/b/run.sh", "src/c.sh", "src/d.sh"]
SELECTIONS: list[tuple[str, ...]] = [(), (), ("a",), ("c",), ("d", "a")]
FORM_ARGS: list[dict[str, bool]] = [{}, {"as_json": True}, {"short": True}]


class Adversary:
    """A built project of four steps (a source shared by three, another shared with a
    glob's directory, a glob input beside them) and a user acting on it at random."""

    def __init__(self, tmp_path: Path, make_lock: Callable[[Spec], Lock], seed: int) -> None:
        base = tmp_path / "proj"
        (base / "src" / "b").mkdir(parents=True)
        (base / "lib").mkdir()
        for rel in ["src/common.sh", "src/c.sh", "src/d.sh", "lib/l.sh", "src/b/t.txt"]:
            (base / rel).write_text(f"echo {rel}\n")
        self.root = write_project(tmp_path, make_lock, MANY_SPEC)
        self.store = tmp_path / "store"
        build_all(self.root, self.store)
        self.original = {rel: (self.root / rel).read_text() for rel in MANY_SOURCES}
        self.rng = random.Random(seed)

    def text(self, rel: str) -> str:
        return self.original[rel] if self.rng.random() < 0.4 else f"{self.rng.random()}\n"

    def edit(self) -> None:
        rel = self.rng.choice(MANY_SOURCES)
        if self.rng.random() < 0.6:
            (self.root / rel).write_text(self.text(rel))
        else:
            rename_over(self.root / rel, self.text(rel))

    def other(self) -> None:
        """Anything but an edit of a source."""
        r, rng = self.root, self.rng
        rel, rel2 = rng.sample(MANY_SOURCES, 2)
        acts: list[Callable[[], object]] = [
            lambda: self.regular(),
            lambda: (r / rel).chmod(rng.choice([0o644, 0o755])),
            lambda: os.utime(r / rel, (1_000_000, 1_000_000)),  # into the past
            lambda: (r / "src" / "b" / "t.txt").write_text(f"{rng.random()}\n"),
            lambda: (r / "src" / ".gitignore").write_text(rng.choice(["", "d.sh\n"])),
            lambda: git(r, "add", "-A"),
            lambda: subprocess.run(
                ["git", "-C", str(r), "rm", "-q", "--cached", rel], capture_output=True
            ),
            lambda: ((r / "lib").rename(r / "lib2"), (r / "lib2").rename(r / "lib")),
            self.rebuild,
            self.collect,
        ]
        if not (r / rel).is_symlink() and not (r / rel2).is_symlink():
            acts += [
                lambda: ((r / rel2).unlink(), os.link(r / rel, r / rel2)),
                lambda: (
                    (r / f"{rel}.real").write_text((r / rel).read_text()),
                    (r / rel).unlink(),
                    (r / rel).symlink_to(f"{Path(rel).name}.real"),
                ),
            ]
        rng.choice(acts)()

    def regular(self) -> None:
        """Every source a regular file of its own again."""
        for rel in MANY_SOURCES:
            path = self.root / rel
            text = path.read_text() if path.exists() else self.original[rel]
            path.unlink(missing_ok=True)
            path.write_text(text)

    def rebuild(self) -> None:
        with contextlib.suppress(ReproflakeError):  # a project the full path refuses
            build_all(self.root, self.store)

    def collect(self) -> None:
        outputs = sorted(self.store.iterdir())
        if outputs:
            self.rng.choice(outputs).unlink()

    def ask(self) -> tuple[tuple[str, ...], dict[str, bool]]:
        return self.rng.choice(SELECTIONS), self.rng.choice(FORM_ARGS)


@pytest.mark.parametrize("seed", range(3))
def test_any_sequence_of_user_actions_prints_what_the_full_plan_prints(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix, seed: int
) -> None:
    """Mostly edits of sources (of one step, of several, next to a glob's files), between
    them anything else a user does: after each, the plan is the full plan's."""
    user = Adversary(tmp_path, make_lock, seed)
    taken = []
    for _round in range(80):
        if user.rng.random() < 0.25:
            user.other()
        for _ in range(user.rng.randint(0, 3)):
            user.edit()
        steps, form = user.ask()
        taken.append(agrees(user.root, steps, **form))
        if user.rng.random() < 0.2:  # asked again, nothing changed
            taken.append(agrees(user.root, steps, **form))
    assert taken.count(DELTA) > 10 and RECORD in taken  # the paths under test were taken


@pytest.mark.parametrize("seed", range(3))
def test_sources_edited_while_plans_run_are_told_by_the_next_plan(
    tmp_path: Path,
    make_lock: Callable[[Spec], Lock],
    nix: FakeNix,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """An edit in the middle of a plan (full: while it asks Nix or hashes a source; brought
    up to date: while it hashes one): the plan after it, with the project quiet, is the
    full plan's."""
    user = Adversary(tmp_path, make_lock, seed)
    countdown: list[int] = []

    def meanwhile(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kw: Any) -> Any:
            if countdown and countdown[0] > 0:
                countdown[0] -= 1
                if countdown[0] == 0:
                    user.edit()
            return real(*args, **kw)

        return call

    monkeypatch.setattr(_proc, "run", meanwhile(_proc.run))
    monkeypatch.setattr(_plan_delta, "sha256_of", meanwhile(_plan_delta.sha256_of))
    monkeypatch.setattr(SourceDigests, "__call__", meanwhile(SourceDigests.__call__))
    taken = []
    for _round in range(60):
        for _ in range(user.rng.randint(0, 2)):
            user.edit()
        steps, form = user.ask()
        if user.rng.random() < 0.3:
            countdown[:] = [user.rng.randint(1, 6)]
            planned(user.root, steps, **form)
            countdown.clear()
        else:
            taken.append(agrees(user.root, steps, **form))
    assert taken.count(DELTA) > 10


def test_a_source_edited_during_the_full_plan_is_told_by_the_next(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edited right after the full plan hashed it, before the plan's record was written:
    the record's stat is the edited file's, its steps' comparison is not."""
    real = SourceDigests.__call__
    edits: list[str] = []

    def edit_once_hashed(self: SourceDigests, rel: str) -> str:
        digest = real(self, rel)
        if rel == "src/a.sh" and not edits:
            write_same_size(built / rel)
            edits.append(rel)
        return digest

    monkeypatch.setattr(SourceDigests, "__call__", edit_once_hashed)
    how, printed, _ = planned(built)
    assert how == FULL and edits and printed[-1].startswith("summary: 0 will build")
    how, printed, _ = planned(built)
    assert how == DELTA and "a: will build — src/a.sh changed" in printed[0]
    assert agrees(built) == RECORD


def test_a_source_made_executable_will_build_and_one_made_group_writable_not(
    built: Path, nix: FakeNix
) -> None:
    """Nix takes a source with its executable bit (nothing else of its mode)."""
    planned(built)
    source = built / "src" / "a.sh"
    source.chmod(0o664)
    how, printed, _ = planned(built)
    assert how == FULL and printed[-1].startswith("summary: 0 will build")
    source.chmod(0o755)
    how, printed, _ = planned(built)
    assert how == FULL
    assert printed[0].splitlines()[0] == "a: will build — src/a.sh became executable"
