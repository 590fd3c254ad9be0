"""Fixtures the plan's tests share (test_plan_record, test_plan_delta, test_fsclock): a
module that defines its own fixture of the same name uses its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake.lock.model import Lock
from reproflake.spec import Spec
from tests.unit.planned_project import FakeNix, build_all, fake_nix, write_project


@pytest.fixture
def nix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeNix:
    """Nix faked: store paths valid when they exist; nothing else answered."""
    return fake_nix(monkeypatch, tmp_path)


@pytest.fixture
def built(tmp_path: Path, make_lock: Callable[[Spec], Lock], nix: FakeNix) -> Path:
    """The plan's small project, every step built (planned_project.build_all)."""
    root = write_project(tmp_path, make_lock)
    build_all(root, tmp_path / "store")
    return root
