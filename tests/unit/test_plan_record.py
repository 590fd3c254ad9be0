"""`plan` answered from its record: used when nothing the plan reads changed, and not after
each kind of change. Nix is faked at the one subprocess choke point (reproflake._proc):
a call to it means the plan was computed."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproflake import _proc, fsclock, state
from reproflake.commands import _noop, _plan_record, plan
from reproflake.lock import model
from reproflake.lock.model import Lock
from reproflake.spec import Spec
from tests.unit.planned_project import (
    HW_SPEC,
    SPEC,
    FakeNix,
    build_all,
    git,
    write_project,
)


def run_plan(
    root: Path, steps: Sequence[str] = (), *, as_json: bool = False, short: bool = False
) -> tuple[list[str], list[str]]:
    printed: list[str] = []
    logged: list[str] = []
    code = plan.run(
        root, steps, as_json=as_json, log=logged.append, out=printed.append, short=short
    )
    assert code == 0
    return printed, logged


def from_record(root: Path, nix: FakeNix, **kw: Any) -> bool:
    """Whether this plan was answered from the record (and then Nix was not asked)."""
    before = len(nix.calls)
    answered: list[bool] = []
    real = _plan_record.answer

    def spy(*args: Any) -> bool:
        answered.append(real(*args))
        return answered[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_plan_record, "answer", spy)
        run_plan(root, **kw)
    assert len(answered) <= 1  # none: the record's identity did not hold
    if not answered:
        return False
    assert not answered[0] or len(nix.calls) == before
    return answered[0]


def test_nothing_changed_answers_from_the_record_with_the_same_lines(
    built: Path, nix: FakeNix
) -> None:
    first = run_plan(built)
    assert nix.calls and (built / _plan_record.RECORD).is_file()
    calls = len(nix.calls)
    again = run_plan(built)
    assert len(nix.calls) == calls  # neither Nix nor anything else was asked
    assert again == first
    assert first[0][-1].startswith("summary: 0 will build, 0 may build")
    # What the full path logged (the input's hash differs from the hand-made lock's) is
    # logged again.
    assert first[1] and first[1][0].startswith("input data changed")


@pytest.mark.parametrize(
    "form",
    [{"as_json": True}, {"short": True}, {"steps": ["a"]}, {"steps": ["a"], "as_json": True}],
)
def test_each_form_has_its_own_answer_with_the_same_bytes(
    built: Path, nix: FakeNix, form: dict[str, Any]
) -> None:
    run_plan(built)  # the plain plan is recorded first: another form is not its answer
    assert not from_record(built, nix, **form)
    first = run_plan(built, **form)
    calls = len(nix.calls)
    assert run_plan(built, **form) == first and len(nix.calls) == calls
    assert from_record(built, nix)  # both answers kept: the state is the same
    if form.get("as_json"):
        assert json.loads(first[0][0])[0]["step"] == "a"


def test_a_few_answers_are_kept_the_newest_always(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_plan_record, "MAX_ANSWERS", 2)
    for steps in (["a"], ["b"], []):
        run_plan(built, steps)
    kept = json.loads((built / _plan_record.RECORD).read_text())["answers"]
    assert sorted(kept) == [
        _plan_record.request(s, as_json=False, short=False) for s in ([], ["a"])
    ]
    assert from_record(built, nix) and from_record(built, nix, steps=["a"])
    assert not from_record(built, nix, steps=["b"])


def later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def write_same_size(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-2] + b"X\n")


def new_lock_bytes(root: Path) -> None:
    text = (root / model.LOCK_FILE).read_text()
    assert "1700000000" in text
    (root / model.LOCK_FILE).write_text(text.replace("1700000000", "1700000001"))


def change_record(root: Path) -> None:
    path = root / state.STATE_FILE
    doc = json.loads(path.read_text())
    doc["steps"]["b"]["components"]["run"] = "something else"
    path.write_text(json.dumps(doc))


CHANGES: dict[str, Callable[[Path], object]] = {
    "spec edited": lambda r: (r / "reproflake.toml").write_text(SPEC + "# a note\n"),
    "lock edited": new_lock_bytes,
    "source edited, same size": lambda r: write_same_size(r / "src" / "a.sh"),
    "source touched": lambda r: later(r / "src" / "a.sh"),
    "new file a glob matches": lambda r: (r / "src" / "b" / "new.sh").write_text("\n"),
    "new directory where a glob looks": lambda r: (r / "src" / "b" / "sub2").mkdir(),
    "new file deep where a glob looks": lambda r: (r / "src/b/sub/deep/new.sh").write_text(""),
    "input file edited": lambda r: (r / "data" / "x.csv").write_text("3,4\n"),
    "new file in an input": lambda r: (r / "data" / "y.csv").write_text("\n"),
    "record changed": change_record,
    "records removed": lambda r: (r / state.STATE_FILE).unlink(),
    "source no longer tracked": lambda r: git(r, "rm", "-q", "--cached", "src/a.sh"),
    "new .gitignore": lambda r: (r / "src" / ".gitignore").write_text("*.sh\n"),
    "reproflake's configuration": lambda r: _write_config(),
    "generated data": lambda r: (r / ".reproflake" / "build.json").write_text("{}\n"),
}


def _write_config() -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "reproflake" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('read_outside = ["/srv"]\n')


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_after_a_change_the_plan_is_computed_again(built: Path, nix: FakeNix, change: str) -> None:
    run_plan(built)
    assert from_record(built, nix)
    CHANGES[change](built)
    assert not from_record(built, nix)


def test_an_edit_is_reported_then_recorded(built: Path, nix: FakeNix) -> None:
    run_plan(built)
    write_same_size(built / "src" / "a.sh")
    printed, _ = run_plan(built)
    assert "a: will build — src/a.sh changed" in printed[0]
    assert printed == run_plan(built)[0] and from_record(built, nix)


def test_an_output_gone_from_the_store_or_come_back(built: Path, nix: FakeNix) -> None:
    run_plan(built)
    output = Path(json.loads((built / state.STATE_FILE).read_text())["steps"]["b"]["output"])
    output.unlink()  # what garbage collection does
    assert not from_record(built, nix)
    printed, _ = run_plan(built)
    assert "b: will build — its output is no longer in the Nix store" in printed[0]
    assert from_record(built, nix)
    output.write_text("b")  # built again by someone else: Nix must say so
    assert not from_record(built, nix)
    assert run_plan(built)[0][-1].startswith("summary: 0 will build")


def test_a_garbage_collection_running_means_asking_nix(built: Path, nix: FakeNix) -> None:
    run_plan(built)
    with open(_plan_record.gc_lock(), "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # as Nix's collector holds it
        assert not from_record(built, nix)
    assert from_record(built, nix)


@pytest.mark.parametrize(
    "change",
    [
        lambda mp: mp.setenv("REPROFLAKE_READ_OUTSIDE", "/srv"),
        lambda mp: mp.setenv("REPROFLAKE_BUILDERS", "ssh://gpu x86_64-linux - 1 1 gpu-nvidia"),
        lambda mp: mp.setenv("NIX_REMOTE", "daemon"),
        lambda mp: mp.setenv("GIT_DIR", "/elsewhere"),
        lambda mp: mp.setattr(_noop, "tool", lambda: "another reproflake"),
        lambda mp: mp.setattr(sys, "version", "3.99.0 (another interpreter)"),
        lambda mp: mp.setattr(_plan_record, "LIBRARIES", ("networkx", "pygit2")),
    ],
)
def test_another_environment_or_reproflake_computes_again(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    run_plan(built)
    change(monkeypatch)
    assert not from_record(built, nix)


def test_a_moved_project_computes_again(built: Path, nix: FakeNix, tmp_path: Path) -> None:
    run_plan(built)
    moved = built.rename(tmp_path / "moved")
    assert not from_record(moved, nix)


def test_the_hardware_gate_is_never_recorded(
    tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix
) -> None:
    """A step to build that declares hardware: the answer hangs on this machine's devices
    and the builders, which no file in the project describes."""
    root = write_project(tmp_path, make_lock, HW_SPEC)
    printed, _ = run_plan(root)
    assert "b: cannot build here" in printed[0]
    assert not (root / _plan_record.RECORD).exists()
    assert not from_record(root, nix)
    # Once built, the gate is not consulted, and the answer is kept.
    build_all(root, tmp_path / "store")
    run_plan(root)
    assert from_record(root, nix)


@pytest.mark.parametrize("edited", ["src/b/run.sh", "data/x.csv"])
def test_a_file_changed_while_planning_is_never_answered_from_the_record(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch, edited: str
) -> None:
    """A source file is kept as racy (the next plan hashes it again: test_plan_delta.py);
    any other file, and nothing is recorded."""
    real = nix.run
    edits = []

    def edit_meanwhile(argv: Sequence[str], **kw: Any) -> _proc.Result:
        if not edits:
            write_same_size(built / edited)  # after the plan read it
            edits.append(edited)
        return real(argv, **kw)

    monkeypatch.setattr(_proc, "run", edit_meanwhile)
    run_plan(built)
    assert edits
    assert (built / _plan_record.RECORD).exists() == edited.startswith("src/")
    assert not from_record(built, nix)


def test_recent_files_wait_for_the_racy_window(
    built: Path, nix: FakeNix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed within RACY_NS of the plan may still change in the same tick of the
    file system's clock: no record until the project has been quiet that long."""
    monkeypatch.setattr(fsclock, "RACY_NS", 60 * 10**9)
    run_plan(built)
    assert not (built / _plan_record.RECORD).exists()


def test_a_broken_record_is_ignored(built: Path, nix: FakeNix) -> None:
    run_plan(built)
    (built / _plan_record.RECORD).write_text('{"version": 1, "answers": {"plan": [')
    assert not from_record(built, nix)
    assert from_record(built, nix)


@pytest.mark.parametrize("relative", [False, True])
def test_a_file_git_configuration_includes_is_watched(
    built: Path, nix: FakeNix, tmp_path: Path, relative: bool
) -> None:
    """core.excludesFile (what git ignores) may be set in a file an [include] names."""
    included = built / ".git" / "more.cfg" if relative else tmp_path / "more.cfg"
    included.write_text(f"[core]\n\texcludesFile = {tmp_path / 'ignore-a'}\n")
    git(built, "config", "include.path", "more.cfg" if relative else str(included))
    run_plan(built)
    assert from_record(built, nix)
    included.write_text(f"[core]\n\texcludesFile = {tmp_path / 'ignore-b'}\n")
    assert not from_record(built, nix)


def test_a_linked_results_directory_is_refused_not_answered(
    built: Path, nix: FakeNix, tmp_path: Path
) -> None:
    from reproflake.errors import UsageError

    run_plan(built)
    assert from_record(built, nix)
    (tmp_path / "elsewhere").mkdir()
    (built / "results").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="is a symbolic link"):
        run_plan(built)
