"""Work that must not grow faster than the number of steps (counted, not timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproflake import project, spec

HEADER = """
[project]
name = "p"
[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"
[environments.base]
debian = []
"""


def many_steps(root: Path, n: int) -> spec.Spec:
    parts = [HEADER]
    for i in range(n):
        (root / f"s{i}.sh").write_text(f"echo {i}\n")
        parts.append(
            f'[steps.s{i}]\nenv = "base"\nrun = "sh s{i}.sh"\nsources = ["s{i}.sh"]\n'
            'outputs = ["o"]\n'
        )
    (root / "reproflake.toml").write_text("\n".join(parts))
    return spec.load(root / "reproflake.toml")


def test_sources_of_many_steps_are_checked_without_scanning_the_spec_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = many_steps(tmp_path, 200)
    scans = []
    real = spec._Locator

    def counting(text: str) -> spec._Locator:
        scans.append(1)
        return real(text)

    monkeypatch.setattr(spec, "_Locator", counting)
    spec._locator.cache_clear()
    sources = project.expand_sources(s)
    assert len(sources) == 200
    # Lines are looked up only for a message; with nothing wrong, the spec is not scanned.
    assert scans == []


def test_a_key_line_is_found_by_one_scan_for_many_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = many_steps(tmp_path, 50)
    scans = []
    real = spec._Locator

    def counting(text: str) -> spec._Locator:
        scans.append(1)
        return real(text)

    monkeypatch.setattr(spec, "_Locator", counting)
    spec._locator.cache_clear()
    lines = [s.where("steps", f"s{i}", "sources") for i in range(50)]
    assert len(scans) == 1
    # Each names its own step's `sources =` line.
    text = (tmp_path / "reproflake.toml").read_text().splitlines()
    for i, where in enumerate(lines):
        number = int(where.rsplit(":", 1)[1])
        assert text[number - 1] == f'sources = ["s{i}.sh"]'
