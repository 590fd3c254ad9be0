"""`lock`'s resolution, with the download layer faked: a lock changes exactly where the
spec did, and an unchanged spec needs no index at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reproflake.lock import debian as deb_index
from reproflake.lock import model, pin
from reproflake.lock.model import Seed
from reproflake.spec import parse


def stanza(name: str, version: str = "1.0", **fields: str) -> str:
    lines = [f"Package: {name}", f"Version: {version}", "Architecture: amd64"]
    lines += [f"{k.replace('_', '-').title()}: {v}" for k, v in fields.items()]
    lines += [
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        "Size: 100",
        f"SHA256: {hashlib.sha256(f'{name}{version}'.encode()).hexdigest()}",
        "Description: test",
    ]
    return "\n".join(lines) + "\n"


PACKAGES = "\n".join(
    [
        stanza("libc6", "2.36-9"),
        stanza("coreutils", "9.1-1", depends="libc6 (>= 2.34)"),
        stanza("dash", "0.5.12-2", depends="libc6"),
        stanza("jq", "1.6-2.1", depends="libjq1 (= 1.6-2.1)"),
        stanza("libjq1", "1.6-2.1", depends="libc6"),
        stanza("busybox-static", "1:1.35.0-4"),
    ]
)

SPEC = """
[project]
name = "p"
[debian]
mirror = "http://m.invalid/debian"
suite = "bookworm"
verify = false
[environments.base]
debian = []
essential = false
[environments.tools]
debian = [{tools}]
essential = false
[steps.s]
env = "base"
run = "true"
outputs = ["o"]
"""


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The index (parsed from PACKAGES) instead of the network; the seed without a download."""
    calls: list[str] = []

    def fetch_index(mirror: str, suite: str, *_: object, **__: object) -> deb_index.PackageIndex:
        calls.append(suite)
        return deb_index.parse_packages(PACKAGES)

    def seed(deb: model.LockedDeb, ctx: pin.Context) -> Seed:
        return Seed(deb.package, deb.version, deb.key, pin.SEED_MEMBER, "5" * 64, "sha256-x")

    monkeypatch.setattr(deb_index, "fetch_index", fetch_index)
    monkeypatch.setattr(pin, "_seed", seed)
    return calls


def lock(tmp_path: Path, tools: str, old: model.Lock | None, **kw: bool) -> model.Lock:
    path = tmp_path / "reproflake.toml"
    path.write_text(SPEC.replace("{tools}", tools))
    ctx = pin.Context(root=tmp_path, cache_dir=tmp_path / "cache", log=lambda _m: None)
    return pin.lock(parse(path.read_text(), path), old, ctx=ctx, **kw)


def test_first_lock_pins_each_closure_and_the_seed(tmp_path: Path, fetches: list[str]) -> None:
    first = lock(tmp_path, '"jq"', None)
    packages = {k: d.package for k, d in first.debs.items()}
    tools = sorted(packages[k] for k in first.environments["tools"].debs)
    assert tools == ["coreutils", "dash", "jq", "libc6", "libjq1"]
    base = sorted(packages[k] for k in first.environments["base"].debs)
    assert base == ["coreutils", "dash", "libc6"]
    assert first.seed.package == "busybox-static"
    assert fetches == ["bookworm"]
    again = lock(tmp_path, '"jq"', None)
    assert model.dumps(again) == model.dumps(first)


def test_an_unchanged_spec_needs_no_index(tmp_path: Path, fetches: list[str]) -> None:
    first = lock(tmp_path, '"jq"', None)
    fetches.clear()
    second = lock(tmp_path, '"jq"', first)
    assert fetches == []
    assert model.dumps(second) == model.dumps(first)


def test_only_the_changed_environment_is_resolved_again(tmp_path: Path, fetches: list[str]) -> None:
    first = lock(tmp_path, '"jq"', None)
    fetches.clear()
    second = lock(tmp_path, "", first)
    assert fetches == ["bookworm"]
    assert second.environments["base"] == first.environments["base"]
    assert all(second.debs[k].package != "jq" for k in second.environments["tools"].debs)


def test_upgrade_resolves_everything(tmp_path: Path, fetches: list[str]) -> None:
    first = lock(tmp_path, '"jq"', None)
    fetches.clear()
    lock(tmp_path, '"jq"', first, upgrade=True)
    assert fetches == ["bookworm"]
