"""Python resolution against this machine's configured package index (pip's config)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import tomllib

from reproflake.errors import LockError
from reproflake.lock.python import PythonLock, index_from_pip_config, resolve, select_wheel


def check_lock(lock: PythonLock, expected: dict[str, str]) -> None:
    assert {w.name: w.version for w in lock.wheels} == expected
    assert [w.name for w in lock.wheels] == sorted(w.name for w in lock.wheels)
    for wheel in lock.wheels:
        assert re.fullmatch(r"[0-9a-f]{64}", wheel.sha256)
        assert wheel.url.endswith("/" + wheel.filename) or wheel.url.endswith(wheel.filename)
        assert re.match(r"(https?|file)://", wheel.url)
        assert select_wheel([wheel.filename], "3.11", "2.36", "x86_64") == wheel.filename
    packages = tomllib.loads(lock.pylock)["packages"]
    assert [len(p["wheels"]) for p in packages] == [1] * len(expected)


def test_resolve_numpy(tmp_path: Path) -> None:
    index = index_from_pip_config()
    start = time.monotonic()
    first = resolve(["numpy==2.2.6"], "3.11", "2.36", "x86_64", index, tmp_path / "c1")
    elapsed = time.monotonic() - start
    print(f"numpy==2.2.6 resolved in {elapsed:.2f}s")
    check_lock(first, {"numpy": "2.2.6"})
    assert "cp311" in first.wheels[0].filename
    second = resolve(["numpy==2.2.6"], "3.11", "2.36", "x86_64", index, tmp_path / "c2")
    assert second.pylock.encode() == first.pylock.encode()
    assert second == first


def test_resolve_pure_python_package(tmp_path: Path) -> None:
    index = index_from_pip_config()
    first = resolve(["six==1.17.0"], "3.11", "2.36", "x86_64", index, tmp_path / "c1")
    check_lock(first, {"six": "1.17.0"})
    assert first.wheels[0].filename == "six-1.17.0-py2.py3-none-any.whl"
    second = resolve(["six==1.17.0"], "3.11", "2.36", "x86_64", index, tmp_path / "c1")
    assert second.pylock.encode() == first.pylock.encode()


def test_impossible_requirement(tmp_path: Path) -> None:
    index = index_from_pip_config()
    with pytest.raises(LockError) as info:
        resolve(["numpy==0.0.0-nonexistent"], "3.11", "2.36", "x86_64", index, tmp_path)
    message = str(info.value)
    assert "uv could not resolve" in message and "numpy==0.0.0-nonexistent" in message
    assert info.value.hint
