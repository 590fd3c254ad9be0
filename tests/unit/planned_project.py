"""A small locked project for the plan's tests, built by hand (each step's record and an
output in a fake store), with Nix faked at the one subprocess choke point
(reproflake._proc). The fixtures `nix` and `built` (tests/unit/conftest.py) use it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reproflake import _proc, fsclock, planner, state
from reproflake.commands._project import load_project
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
[inputs.data]
path = "data"
[steps.a]
env = "e"
run = "sh src/a.sh > $OUT/a"
sources = ["src/a.sh"]
inputs = ["data"]
outputs = ["a"]
[steps.b]
env = "e"
run = "sh src/b/run.sh > $OUT/b"
sources = ["src/b/**/*.sh"]
needs = ["a"]
outputs = ["b"]
"""
HW_SPEC = SPEC + '[steps.b.hardware]\ngpu = "nvidia"\n'


class FakeNix:
    """`nix-store --check-validity`: a path is valid when it exists, as in a real store."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **_: Any) -> _proc.Result:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == "nix-store" and "--check-validity" in argv:
            paths = [a for a in argv[1:] if not a.startswith("--")]
            return _proc.Result(0, "".join(f"{p}\n" for p in paths if not os.path.exists(p)), "")
        if "show-config" in argv:
            return _proc.Result(0, "builders = \n", "")
        return _proc.Result(1, "", f"not faked: {argv}")


def fake_nix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeNix:
    fake = FakeNix()
    monkeypatch.setattr(_proc, "run", fake.run)
    # Nix's state directory (its GC lock) is this test's.
    state_dir = tmp_path / "nix-state"
    state_dir.mkdir()
    (state_dir / "gc.lock").write_bytes(b"")
    monkeypatch.setenv("NIX_STATE_DIR", str(state_dir))
    # Files made by the fixtures count as quiet: the window for changes made during a plan
    # is tested on its own (test_plan_record, test_fsclock).
    monkeypatch.setattr(fsclock, "RACY_NS", 0)
    return fake


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def write_project(tmp_path: Path, make_lock: Callable[[Spec], Lock], text: str = SPEC) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "b" / "sub" / "deep").mkdir(parents=True)  # searched, nothing matched
    (root / "data").mkdir()
    (root / "src" / "a.sh").write_text("echo a\n")
    (root / "src" / "b" / "run.sh").write_text("echo b\n")
    (root / "data" / "x.csv").write_text("1,2\n")
    write_locked_project(root, text, make_lock)
    (root / ".gitignore").write_text("/results/\n/.reproflake/cache/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    return root


def build_all(root: Path, store: Path) -> dict[str, str]:
    """The records a build leaves: each step's components, and an output in the "store"."""
    p = load_project(root, lambda _m: None, write_lock=False)
    store.mkdir(exist_ok=True)
    outputs = {}
    for step in p.graph.order():
        out = store / f"{hashlib.sha256(step.encode()).hexdigest()[:32]}-reproflake-step-{step}"
        out.write_text(step)
        outputs[step] = str(out)
    built = {
        s: state.Built(outputs[s], planner.components(p.spec, p.lock, p.facts, s, outputs))
        for s in outputs
    }
    state.save(root, built, {})
    return outputs
