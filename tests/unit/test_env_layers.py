"""The environment's split into layers, kept per environment root."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

from reproflake.artifacts import env_layers
from reproflake.artifacts import recipe as _recipe


def root(path: Path) -> Path:
    (path / "usr/bin").mkdir(parents=True)
    (path / "usr/bin/tool").write_bytes(b"#!/bin/sh\n")
    (path / "usr/share/doc/a").mkdir(parents=True)
    (path / "usr/share/doc/a/copyright").write_bytes(b"c")
    (path / "etc").mkdir()
    (path / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    return path


def job(env_root: Path) -> tuple[_recipe.Recipe, _recipe.Resolved]:
    recipe = {"packages": ["tool", "a-doc"], "python": "", "env": "e"}
    resolved = {"envRoot": str(env_root), "debs": ["/nix/store/x-tool.deb", "/nix/store/y-a.deb"]}
    return cast(_recipe.Recipe, recipe), cast(_recipe.Resolved, resolved)


LISTS = [["usr", "usr/bin", "usr/bin/tool"], ["usr/share/doc/a", "usr/share/doc/a/copyright"]]


def test_the_split_is_computed_once_and_read_back_the_same(tmp_path: Path) -> None:
    recipe, resolved = job(root(tmp_path / "env"))
    calls: list[Any] = []

    def lists() -> list[list[str]]:
        calls.append(1)
        return LISTS

    first = env_layers.cached(tmp_path / "cache", recipe, resolved, lists)
    second = env_layers.cached(tmp_path / "cache", recipe, resolved, lists)
    assert len(calls) == 1
    assert first == second == _recipe.environment(recipe, resolved, LISTS)
    assert [layer.comment for layer in first][-1] == "environment e: configuration"


def test_a_root_built_again_or_other_packages_are_split_again(tmp_path: Path) -> None:
    env = root(tmp_path / "env")
    recipe, resolved = job(env)
    calls: list[Any] = []

    def lists() -> list[list[str]]:
        calls.append(1)
        return LISTS

    env_layers.cached(tmp_path / "cache", recipe, resolved, lists)
    shutil.rmtree(env)
    root(env)  # the same path, a new directory
    (env / "usr/bin/new").write_bytes(b"")
    again = env_layers.cached(tmp_path / "cache", recipe, resolved, lists)
    assert len(calls) == 2
    assert any(e.path == "usr/bin/new" for layer in again for e in layer.entries)
    other = cast(_recipe.Recipe, {**recipe, "env": "f"})
    env_layers.cached(tmp_path / "cache", other, resolved, lists)
    assert len(calls) == 3


def test_an_unreadable_cache_entry_is_computed_again(tmp_path: Path) -> None:
    recipe, resolved = job(root(tmp_path / "env"))
    key = env_layers.key(recipe, resolved)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{key}.json").write_text('[{"comment": 1}]')
    got = env_layers.cached(tmp_path / "cache", recipe, resolved, lambda: LISTS)
    assert got == _recipe.environment(recipe, resolved, LISTS)


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path: Path) -> None:
    recipe, resolved = job(root(tmp_path / "env"))
    (tmp_path / "file").write_text("")
    got = env_layers.cached(tmp_path / "file" / "cache", recipe, resolved, lambda: LISTS)
    assert got == _recipe.environment(recipe, resolved, LISTS)
