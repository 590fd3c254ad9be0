"""The CLI as a user meets it: a real process, its exit code and its stderr.

Each scenario is a project directory and a command line. All of them run at
once in one module-scoped fixture (a Python start-up each, in parallel) so the
file stays fast; the tests then read their scenario's result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from reproflake import spec
from reproflake.lock import model
from reproflake.lock.model import Lock

GOOD = """\
[project]
name = "cli"

[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"

[environments.base]

[steps.hello]
env = "base"
run = "echo hello > $OUT/hello.txt"
outputs = ["hello.txt"]

[steps.world]
env = "base"
run = "cat results/hello/hello.txt > $OUT/world.txt"
needs = ["hello"]
outputs = ["world.txt"]
"""


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert text.count(old) == 1
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1
    return hits[0]


@dataclass(frozen=True)
class Scenario:
    text: str | None  # reproflake.toml, or None for a directory without one
    args: tuple[str, ...]
    lock: str = "none"  # "none", "good" (matches GOOD), or "garbage"


BROKEN = {
    "invalid-toml": ("lock", edit('suite = "bookworm"', 'suite = "bookworm'), 'suite = "bookworm'),
    "unknown-env": ("build", edit('env = "base"\nrun = "cat', 'env = "bsae"\nrun = "cat'), "bsae"),
    "unknown-need": ("lock", edit('needs = ["hello"]', 'needs = ["hallo"]'), "hallo"),
    "cycle": (
        "build",
        edit('outputs = ["hello.txt"]', 'outputs = ["hello.txt"]\nneeds = ["world"]'),
        'needs = ["world"]',
    ),
}
SCENARIOS = {
    **{name: Scenario(text, (command,)) for name, (command, text, _) in BROKEN.items()},
    "no-spec": Scenario(None, ("build",)),
    "no-lock": Scenario(GOOD, ("build",)),
    "unknown-step": Scenario(GOOD, ("build", "hello", "nosuch", "other"), lock="good"),
    "stale-lock": Scenario(
        edit('suite = "bookworm"', 'suite = "trixie"'), ("build", "hello"), lock="good"
    ),
    "corrupt-lock": Scenario(GOOD, ("build",), lock="garbage"),
    "zero-jobs": Scenario(GOOD, ("build", "-j", "0"), lock="good"),
}


@dataclass(frozen=True)
class Outcome:
    root: Path
    returncode: int
    stdout: str
    stderr: str


def _prepare(root: Path, scenario: Scenario, make_lock: Callable[[spec.Spec], Lock]) -> None:
    root.mkdir(parents=True)
    if scenario.lock == "good":
        # The lock's bytes only: writing it through reproflake would make its scratch space.
        lock = make_lock(spec.parse(GOOD, root / "reproflake.toml"))
        (root / "reproflake.lock").write_text(model.dumps(lock))
    elif scenario.lock == "garbage":
        (root / "reproflake.lock").write_text("{ not json")
    if scenario.text is not None:
        (root / "reproflake.toml").write_text(scenario.text)


def _run(root: Path, args: tuple[str, ...]) -> Outcome:
    env = {**os.environ, "XDG_CACHE_HOME": str(root.parent / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return Outcome(root, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, make_lock: Callable[[spec.Spec], Lock]
) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("cli").resolve()
    roots = {name: base / name / "proj" for name in SCENARIOS}
    for name, scenario in SCENARIOS.items():
        _prepare(roots[name], scenario, make_lock)
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        futures = {n: pool.submit(_run, roots[n], s.args) for n, s in SCENARIOS.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_clean_error(result: Outcome) -> None:
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "\n  hint: " in result.stderr


def assert_nothing_generated(root: Path) -> None:
    assert not (root / "flake.nix").exists()
    assert not (root / ".reproflake").exists()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_spec(outcomes: dict[str, Outcome], name: str) -> None:
    result = outcomes[name]
    _, text, needle = BROKEN[name]
    assert result.returncode == 2
    assert_clean_error(result)
    assert f"error: {result.root / 'reproflake.toml'}:{line_of(text, needle)}:" in result.stderr
    assert not (result.root / "reproflake.lock").exists()
    assert_nothing_generated(result.root)


def test_cycle_names_the_steps(outcomes: dict[str, Outcome]) -> None:
    assert "cycle: hello → world → hello" in outcomes["cycle"].stderr


def test_no_spec_anywhere(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["no-spec"]
    assert result.returncode == 2
    assert_clean_error(result)
    assert "no reproflake.toml in" in result.stderr
    assert "reproflake init" in result.stderr


def test_build_without_lock_says_to_lock(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["no-lock"]
    assert result.returncode != 0
    assert_clean_error(result)
    assert result.stderr.startswith(f"error: {result.root / 'reproflake.lock'} does not exist\n")
    assert "hint: run `reproflake lock`" in result.stderr
    assert_nothing_generated(result.root)


@pytest.mark.parametrize("name", ["no-lock", "stale-lock"])
def test_missing_or_stale_lock_exits_2(outcomes: dict[str, Outcome], name: str) -> None:
    assert outcomes[name].returncode == 2


def test_unknown_step_lists_known_steps(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["unknown-step"]
    assert result.returncode == 2
    assert_clean_error(result)
    assert (
        result.stderr == "error: unknown steps: nosuch, other\n  hint: known steps: hello, world\n"
    )
    # The check comes before anything is generated, staged or built.
    assert_nothing_generated(result.root)


def test_stale_lock_lists_what_changed(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["stale-lock"]
    assert result.returncode != 0
    assert_clean_error(result)
    assert "is out of date with reproflake.toml:\n" in result.stderr
    assert "  debian: mirror, suite, components or architecture changed\n" in result.stderr
    assert "hint: run `reproflake lock`" in result.stderr
    assert_nothing_generated(result.root)


def test_corrupt_lock(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["corrupt-lock"]
    assert result.returncode != 0
    assert_clean_error(result)
    assert "not a valid reproflake lock" in result.stderr
    assert_nothing_generated(result.root)


def _with_a_bug(tmp_path: Path, module: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """reproflake ``argv`` in a process where ``module``.run raises an unexpected error."""
    code = (
        "import sys; from reproflake import cli\n"
        "def boom(*a, **k): raise RuntimeError('a bug')\n"
        f"import reproflake.commands.{module} as m; m.run = boom\n"
        f"sys.argv = {['reproflake', *argv]!r}; cli.main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip


def test_a_bug_exits_with_its_own_code_and_a_log(tmp_path: Path) -> None:
    """An unexpected exception is not a failed step (1) nor bad input (2)."""
    proc = _with_a_bug(tmp_path, "graph", ["graph"])
    assert proc.returncode == 70
    assert proc.stderr.startswith("internal error: RuntimeError: a bug\n")
    assert "Traceback" not in proc.stderr
    log = tmp_path / "cache" / "reproflake" / "crash.log"
    assert "RuntimeError: a bug" in log.read_text()


def test_a_bug_under_json_is_a_document_too(tmp_path: Path) -> None:
    """A script reading stdout of a --json command gets a document, even for a bug."""
    (tmp_path / "a.tar").write_bytes(b"")
    proc = _with_a_bug(tmp_path, "reproduce", ["reproduce", "a.tar", "--json"])
    assert proc.returncode == 70
    doc = json.loads(proc.stdout)
    assert doc["error"] == "internal error: RuntimeError: a bug" and doc["exit_code"] == 70
    assert "this is a bug in reproflake; the details are in " in doc["hint"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_jobs_must_be_at_least_one(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["zero-jobs"]
    assert result.returncode == 2
    assert "Invalid value for '-j' / '--jobs': 0 is not in the range x>=1." in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_generated(result.root)


def test_an_unknown_step_among_many_gets_a_short_list_and_the_close_name() -> None:
    from types import SimpleNamespace

    from reproflake.commands._project import check_steps
    from reproflake.errors import UsageError

    many = SimpleNamespace(steps={f"fit{i:02d}": None for i in range(40)})
    with pytest.raises(UsageError) as err:
        check_steps(many, ["fit_07"])  # type: ignore[arg-type]
    listed = ", ".join(f"fit{i:02d}" for i in range(20))
    assert err.value.hint == f"known steps: {listed}, … (20 more) (did you mean 'fit07'?)"
    with pytest.raises(UsageError) as err:
        check_steps(many, ["fit_07", "fit_08"])  # type: ignore[arg-type]
    assert err.value.hint == f"known steps: {listed}, … (20 more)"  # no guess among two


def test_an_unknown_image_among_many_gets_a_short_list_and_the_close_name() -> None:
    from types import SimpleNamespace

    from reproflake.commands.image import _image
    from reproflake.errors import UsageError

    many = SimpleNamespace(images={f"img{i:02d}": None for i in range(25)})
    with pytest.raises(UsageError) as err:
        _image(many, "img_07")  # type: ignore[arg-type]
    listed = ", ".join(f"img{i:02d}" for i in range(20))
    assert err.value.hint == f"known images: {listed}, … (5 more) (did you mean 'img07'?)"
