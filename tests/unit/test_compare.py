"""Two builds' files compared: verdicts, tolerance, the byte summary."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from reproflake import compare


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _npy(values: list[float]) -> bytes:
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({len(values)},), }}"
    header = header.ljust(118) + "\n"
    return (
        b"\x93NUMPY\x01\x00"
        + len(header).to_bytes(2, "little")
        + header.encode()
        + struct.pack(f"<{len(values)}d", *values)
    )


def test_verdict_per_file(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"same": b"x", "d/diff": b"abc", "only-a": b""})
    b = _tree(tmp_path / "b", {"same": b"x", "d/diff": b"abd", "only-b": b""})
    got = {v.path: v.verdict for v in compare.compare_trees(a, b)}
    assert got == {
        "d/diff": compare.DIFFERENT,
        "only-a": compare.ONLY_FIRST,
        "only-b": compare.ONLY_SECOND,
        "same": compare.IDENTICAL,
    }


def test_executable_bit_is_a_difference(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"f": b"x"})
    b = _tree(tmp_path / "b", {"f": b"x"})
    (b / "f").chmod(0o755)
    assert compare.compare_trees(a, b)[0].verdict == compare.DIFFERENT


def test_tolerance_for_csv_json_npy(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {
        "m.csv": b"x,1.0\n", "m.json": json.dumps({"k": [1.0, 2.0]}).encode(),
        "m.npy": _npy([1.0, 2.0]),
    })  # fmt: skip
    b = _tree(tmp_path / "b", {
        "m.csv": b"x,1.0000001\n", "m.json": json.dumps({"k": [1.0, 2.0000001]}).encode(),
        "m.npy": _npy([1.0, 2.0000001]),
    })  # fmt: skip
    loose = compare.Policy(tolerance={"m.csv": 1e-6, "m.json": 1e-6, "m.npy": 1e-6})
    assert {v.verdict for v in compare.compare_trees(a, b, loose)} == {compare.WITHIN_TOLERANCE}
    tight = compare.Policy(tolerance={"m.csv": 1e-9, "m.json": 1e-9, "m.npy": 1e-9})
    assert {v.verdict for v in compare.compare_trees(a, b, tight)} == {compare.DIFFERENT}


def test_tolerance_never_accepts_another_shape(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"m.csv": b"x,1.0\n"})
    b = _tree(tmp_path / "b", {"m.csv": b"y,1.0\n"})
    v = compare.compare_trees(a, b, compare.Policy(tolerance={"m.csv": 1.0}))[0]
    assert v.verdict == compare.DIFFERENT and "not comparable" in v.detail


def test_unreproducible_is_declared_not_identical(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"report.html": b"1"})
    b = _tree(tmp_path / "b", {"report.html": b"2"})
    v = compare.compare_trees(a, b, compare.Policy(unreproducible=["report.html"]))[0]
    assert v.verdict == compare.UNREPRODUCIBLE


def test_byte_summary_names_the_first_offset(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"f": b"2024-01-01\n"})
    b = _tree(tmp_path / "b", {"f": b"2025-02-01\n"})
    lines = compare.byte_summary(a / "f", b / "f")
    assert lines[0] == "sizes: 11 vs 11 bytes"
    assert lines[1] == "first difference at byte 3; 2 byte(s) differ"
