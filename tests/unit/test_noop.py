"""The no-op stamp: a wrong "nothing changed" is the worst answer a build can give."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reproflake.commands import _noop


def stamped(root: Path) -> None:
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("print(1)\n")
    (root / "data.csv").write_text("1,2\n")
    (root / "reproflake.toml").write_text("[project]\n")
    (root / "reproflake.lock").write_text("{}\n")
    before = _noop.snapshot(root, ["src/*.py"], ["data.csv"])
    _noop.record(root, [], before, [], {})


def test_an_unchanged_project_is_answered_from_the_stamp(tmp_path: Path) -> None:
    stamped(tmp_path)
    assert _noop.check(tmp_path, []) is not None


def test_a_same_size_rewrite_with_the_mtime_restored_is_a_change(tmp_path: Path) -> None:
    stamped(tmp_path)
    for rel in ("data.csv", "src/a.py"):
        path = tmp_path / rel
        st = path.stat()
        old = path.read_bytes()
        time.sleep(0.01)
        path.write_bytes(old.replace(b"1", b"9"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert _noop.check(tmp_path, []) is None, rel
        path.write_bytes(old)
        stamped_again = _noop.snapshot(tmp_path, ["src/*.py"], ["data.csv"])
        _noop.record(tmp_path, [], stamped_again, [], {})


def test_a_new_matching_file_is_a_change(tmp_path: Path) -> None:
    stamped(tmp_path)
    (tmp_path / "src" / "b.py").write_text("x\n")
    assert _noop.check(tmp_path, []) is None
