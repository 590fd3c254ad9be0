"""`reproflake build` as a sequence of stages, with a fake Nix at the one subprocess choke
point (reproflake._proc): what it asks Nix, what it links, records and prints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproflake import _proc, executor
from reproflake.commands import build
from reproflake.errors import BuildError
from reproflake.lock.model import Lock
from reproflake.spec import Spec
from tests.unit.locked_project import write_locked_project

SPEC = """
[project]
name = "p"
[debian]
mirror = "http://m.invalid/debian"
suite = "bookworm"
[environments.e]
debian = []
[steps.a]
env = "e"
run = "echo a > $OUT/a"
outputs = ["a"]
[steps.b]
env = "e"
run = "cat results/a/a > $OUT/b"
needs = ["a"]
outputs = ["b"]
"""


def drv(step: str) -> str:
    return f"/nix/store/{hashlib.sha256(step.encode()).hexdigest()[:32]}-reproflake-step-{step}.drv"


def out(step: str) -> str:
    return (
        f"/nix/store/{hashlib.sha256(b'o' + step.encode()).hexdigest()[:32]}-reproflake-step-{step}"
    )


class FakeNix:
    """Answers the commands `build` runs; ``fail`` names steps whose builder fails."""

    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.fail = set(fail)
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **_: Any) -> _proc.Result:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == "nix-store":  # --check-validity: everything is valid
            return _proc.Result(0, "", "")
        if "eval" in argv:
            return _proc.Result(0, json.dumps({s: drv(s) for s in ("a", "b")}), "")
        if "show-config" in argv:
            return _proc.Result(0, "builders = \n", "")
        if ".#legacyPackages.x86_64-linux.gcroots" in argv:
            d = "/nix/store/" + "g" * 32 + "-reproflake-gcroots.drv"
            entry = {"drvPath": d, "outputs": {"out": d.removesuffix(".drv")}}
            return _proc.Result(0, json.dumps([entry]), "")
        if "build" in argv:  # asking again for what finished, after a failure
            done = [a for a in argv if a.endswith(".drv")]
            return _proc.Result(0, json.dumps([self._entry(d) for d in done]), "")
        raise AssertionError(f"unexpected command: {argv}")

    def stream(
        self, argv: Sequence[str], on_stderr: Callable[[str], None], **_: Any
    ) -> _proc.Result:
        argv = list(argv)
        self.calls.append(argv)
        assert "build" in argv
        self.keep_going = "--keep-going" in argv
        wanted = [a for a in argv if a.endswith(".drv")]
        built = []
        for i, d in enumerate(wanted):
            step = d.rsplit("-", 1)[-1].removesuffix(".drv")
            on_stderr(
                "@nix " + json.dumps({"action": "start", "id": i, "type": 105, "fields": [d]})
            )
            line = f"reproflake: step '{step}' " + ("failed" if step in self.fail else "finished")
            for text in (f"working on {step}", line):
                msg = {"action": "result", "id": i, "type": 101, "fields": [text]}
                on_stderr("@nix " + json.dumps(msg))
            if step in self.fail:
                on_stderr(f"error: builder for '{d}' failed with exit code 1")
                for later in wanted[i + 1 :]:
                    on_stderr(f"error: 1 dependencies of derivation '{later}' failed to build")
                return _proc.Result(1, "", "")
            built.append(self._entry(d))
        return _proc.Result(0, json.dumps(built), "")

    @staticmethod
    def _entry(d: str) -> dict[str, Any]:
        step = d.rsplit("-", 1)[-1].removesuffix(".drv")
        return {"drvPath": d, "outputs": {"out": out(step)}}


@pytest.fixture
def project(tmp_path: Path, make_lock: Callable[[Spec], Lock]) -> Path:
    return write_locked_project(tmp_path / "proj", SPEC, make_lock)


def run_build(
    root: Path,
    fake: FakeNix,
    monkeypatch: pytest.MonkeyPatch,
    jobs: int | None = None,
    keep_going: bool = True,
) -> tuple[int | None, list[str], list[str]]:
    monkeypatch.setattr(_proc, "run", fake.run)
    monkeypatch.setattr(_proc, "stream", fake.stream)
    monkeypatch.setattr(executor, "require_nix", lambda: "nix")
    roots: list[Path] = []
    monkeypatch.setattr(executor, "add_indirect_root", roots.append)
    logged: list[str] = []
    printed: list[str] = []
    try:
        code: int | None = build.run(
            root, [], log=logged.append, out=printed.append, jobs=jobs, keep_going=keep_going
        )
    except BuildError:
        code = None
    return code, logged, printed


def test_a_build_evaluates_once_builds_in_order_and_links(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNix()
    code, logged, printed = run_build(project, fake, monkeypatch, jobs=3)
    assert code == 0
    evals = [c for c in fake.calls if "eval" in c]
    builds = [c for c in fake.calls if "build" in c and "--keep-going" in c]
    assert len(evals) == 1 and len(builds) == 1
    # After a good build, one root keeps what the lock needs (environments, .debs).
    rooted = [c for c in fake.calls if ".#legacyPackages.x86_64-linux.gcroots" in c]
    assert len(rooted) == 1
    lock_roots = list((project / ".reproflake/cache/gcroots").glob("lock-*"))
    assert len(lock_roots) == 1 and lock_roots[0].readlink().name.endswith("-reproflake-gcroots")
    assert [a for a in builds[0] if a.endswith(".drv")] == [drv("a"), drv("b")]
    assert builds[0][builds[0].index("--max-jobs") + 1] == "3"
    assert printed[0] == "summary: 2 built, 0 already built, 0 failed"
    assert printed[1:] == [f"  results/a -> {out('a')}", f"  results/b -> {out('b')}"]
    for step in ("a", "b"):
        assert (project / "results" / step).readlink() == Path(out(step))
    assert "building a …" in logged and "building b …" in logged
    # The stamp and the records a later no-op build and `plan` rely on.
    stamp = json.loads((project / ".reproflake/cache/stamp.json").read_text())
    assert stamp["requests"]["*"]["outputs"] == {"a": out("a"), "b": out("b")}
    records = json.loads((project / ".reproflake/cache/state.json").read_text())
    assert records["steps"]["b"]["components"]["need:a"] == out("a")
    # The generated flake is there, and nothing half-written is left beside it.
    assert (project / "flake.nix").is_file() and (project / ".reproflake/build.json").is_file()
    assert not list(project.glob(".*.tmp")) and not list(project.glob(".reproflake/.*.tmp"))


def test_a_failed_step_is_reported_with_its_log_and_stops_what_needs_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNix(fail=["a"])
    (project / "results").mkdir()
    for step in ("a", "b"):  # what an earlier build of other sources left
        (project / "results" / step).symlink_to(out("old-" + step))
    code, _logged, printed = run_build(project, fake, monkeypatch)
    assert code is None  # BuildError: exit 1
    text = "\n".join(printed)
    assert "step a failed; last lines of its log:" in text
    assert "  | working on a" in text
    assert f"full log: {executor.log_command(drv('a'))}" in text
    assert (
        "summary: 0 built, 0 already built, 1 failed, 1 not built (a step they need failed)" in text
    )
    # Neither result may pass for current: both links to older outputs are gone.
    assert not (project / "results" / "a").is_symlink()
    assert not (project / "results" / "b").is_symlink()
    assert "  results/a removed: it was an older output, not what this spec builds" in text
    # No stamp for a build that failed: the next one asks Nix again.
    assert not (project / ".reproflake/cache/stamp.json").exists()


def test_keep_going_is_the_default_and_can_be_turned_off(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNix()
    run_build(project, fake, monkeypatch)
    assert fake.keep_going is True
    fake = FakeNix()
    run_build(project, fake, monkeypatch, keep_going=False)
    assert fake.keep_going is False


def test_json_says_per_step_status_output_time_and_log(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNix(fail=["b"])
    monkeypatch.setattr(_proc, "run", fake.run)
    monkeypatch.setattr(_proc, "stream", fake.stream)
    monkeypatch.setattr(executor, "require_nix", lambda: "nix")
    monkeypatch.setattr(executor, "add_indirect_root", lambda _link: None)
    printed: list[str] = []
    code = build.run(project, [], log=lambda _m: None, out=printed.append, as_json=True)
    assert code == 1
    (text,) = printed  # one document, nothing else on stdout
    doc = json.loads(text)
    assert doc["steps"]["a"]["status"] == "built" and doc["steps"]["a"]["output"] == out("a")
    assert isinstance(doc["steps"]["a"]["seconds"], float)
    assert doc["steps"]["b"]["status"] == "failed" and doc["steps"]["b"]["output"] is None
    assert doc["steps"]["b"]["log"] == executor.log_command(drv("b"))
    assert doc["summary"] == {
        "built": 1, "fetched": 0, "already-built": 0, "failed": 1, "not-built": 0
    }  # fmt: skip


def test_errors_under_json_are_json(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reproflake.cli import main

    result = CliRunner().invoke(main, ["build", "--json", "-C", str(tmp_path)])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and doc["error"].startswith("no reproflake.toml in ")
    assert doc["hint"]
