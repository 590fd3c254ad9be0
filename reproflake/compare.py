"""Two builds of the same outputs, compared file by file.

`verify` compares a step's first and varied builds; `reproduce` compares a rebuild with
the hashes a release recorded. Each file gets one verdict: identical, different,
within tolerance (declared in the spec: never silently ignored), missing on one side.
For a difference, diffoscope's report when diffoscope is installed, else a summary of
where the bytes part.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

IDENTICAL = "identical"
DIFFERENT = "different"
WITHIN_TOLERANCE = "within tolerance"
UNREPRODUCIBLE = "declared unreproducible"
ONLY_FIRST = "only in the first"
ONLY_SECOND = "only in the second"
# Files larger than this are not parsed for a numeric comparison.
MAX_NUMERIC_BYTES = 256 << 20


@dataclass(frozen=True)
class Policy:
    """What a step declared it accepts besides identical bytes (spec: unreproducible, tolerance)."""

    unreproducible: Sequence[str] = ()
    tolerance: Mapping[str, float] | None = None

    def declared_unreproducible(self, rel: str) -> bool:
        return any(
            rel == p or rel.startswith(p + "/") or fnmatchcase(rel, p) for p in self.unreproducible
        )

    def tolerance_for(self, rel: str) -> float | None:
        return (self.tolerance or {}).get(rel)


@dataclass(frozen=True)
class FileVerdict:
    path: str  # relative to the output
    verdict: str
    detail: str = ""


def walk(root: Path) -> dict[str, Path]:
    """Every file and link under ``root`` (or ``root`` itself, a single-file output)."""
    if not root.is_dir() or root.is_symlink():
        return {"": root}
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            path = base / name
            found[path.relative_to(root).as_posix()] = path
    return found


def same_bytes(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
    sa, sb = a.stat(), b.stat()
    if sa.st_size != sb.st_size or (sa.st_mode & 0o111 != 0) != (sb.st_mode & 0o111 != 0):
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def compare_trees(first: Path, second: Path, policy: Policy = Policy()) -> list[FileVerdict]:
    """One verdict per file of either tree, sorted by path."""
    a, b = walk(first), walk(second)
    verdicts = []
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            verdicts.append(FileVerdict(rel, ONLY_FIRST))
        elif rel not in a:
            verdicts.append(FileVerdict(rel, ONLY_SECOND))
        else:
            verdicts.append(compare_file(rel, a[rel], b[rel], policy))
    return verdicts


def compare_file(rel: str, a: Path, b: Path, policy: Policy = Policy()) -> FileVerdict:
    if same_bytes(a, b):
        return FileVerdict(rel, IDENTICAL)
    if policy.declared_unreproducible(rel):
        return FileVerdict(rel, UNREPRODUCIBLE, "declared in the spec's unreproducible")
    tol = policy.tolerance_for(rel)
    if tol is not None:
        worst = numeric_difference(a, b)
        if worst is None:
            return FileVerdict(rel, DIFFERENT, "not comparable as numbers (its shape differs)")
        if worst <= tol:
            return FileVerdict(rel, WITHIN_TOLERANCE, f"largest difference {worst:g} <= {tol:g}")
        return FileVerdict(rel, DIFFERENT, f"largest difference {worst:g} > tolerance {tol:g}")
    return FileVerdict(rel, DIFFERENT)


# --------------------------------------------------------------------------- numbers


def numeric_difference(a: Path, b: Path) -> float | None:
    """The largest absolute difference between the two files' numbers, position by position;
    None when their structure (or any non-numeric value) differs."""
    if a.is_symlink() or b.is_symlink():
        return None
    if max(a.stat().st_size, b.stat().st_size) > MAX_NUMERIC_BYTES:
        return None
    try:
        if a.suffix == ".npy":
            xs, ys = _npy_values(a), _npy_values(b)
        elif a.suffix == ".json":
            xs, ys = _json_values(a), _json_values(b)
        else:
            xs, ys = _csv_values(a), _csv_values(b)
    except (ValueError, UnicodeDecodeError):
        return None
    if xs is None or ys is None or len(xs) != len(ys):
        return None
    worst = 0.0
    for x, y in zip(xs, ys, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if math.isnan(x) and math.isnan(y):
                continue
            worst = max(worst, abs(x - y))
        elif x != y:
            return None
    return worst


Value = float | str


def _flatten(node: object) -> Iterator[Value]:
    if isinstance(node, dict):
        for key in sorted(node):
            yield f"key:{key}"
            yield from _flatten(node[key])
    elif isinstance(node, list):
        yield f"list:{len(node)}"
        for item in node:
            yield from _flatten(item)
    elif isinstance(node, bool) or node is None:
        yield repr(node)
    elif isinstance(node, int | float):
        yield float(node)
    else:
        yield f"str:{node}"


def _json_values(path: Path) -> list[Value]:
    return list(_flatten(json.loads(path.read_text(encoding="utf-8"))))


def _csv_values(path: Path) -> list[Value]:
    values: list[Value] = []
    for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))):
        values.append(f"row:{len(row)}")
        for cell in row:
            try:
                values.append(float(cell))
            except ValueError:
                values.append(f"str:{cell}")
    return values


def _npy_values(path: Path) -> list[Value] | None:
    """A .npy array's numbers, read with the standard library (no numpy needed here)."""
    import ast
    import struct

    data = path.read_bytes()
    if data[:6] != b"\x93NUMPY":
        return None
    major = data[6]
    hlen_size = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8 : 8 + hlen_size], "little")
    start = 8 + hlen_size + hlen
    header = ast.literal_eval(data[8 + hlen_size : start].decode("latin-1"))
    codes = {"<f8": "d", "<f4": "f", "<i8": "q", "<i4": "i", "<f2": "e", "|u1": "B", "|i1": "b"}
    code = codes.get(str(header.get("descr")))
    if code is None or header.get("fortran_order"):
        return None
    count = math.prod(header.get("shape", ()))
    values: list[Value] = [f"shape:{header.get('shape')}"]
    values += [float(v) for v in struct.unpack_from(f"<{count}{code}", data, start)]
    return values


# --------------------------------------------------------------------------- showing


def byte_summary(a: Path, b: Path, *, context: int = 16) -> list[str]:
    """Where two files part: sizes, the first differing offset, how many bytes differ."""
    if a.is_symlink() or b.is_symlink():
        show = [os.readlink(p) if p.is_symlink() else "(a file)" for p in (a, b)]
        return [f"links differ: {show[0]} vs {show[1]}"]
    x, y = a.read_bytes(), b.read_bytes()
    lines = [f"sizes: {len(x)} vs {len(y)} bytes"]
    first = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
    if first is None:
        first = min(len(x), len(y))
        if len(x) == len(y):
            return lines + ["the bytes are the same; the executable bit differs"]
    differing = sum(1 for p, q in zip(x, y, strict=False) if p != q) + abs(len(x) - len(y))
    lines.append(f"first difference at byte {first}; {differing} byte(s) differ")
    lo = max(0, first - context // 2)
    for label, data in (("first ", x), ("second", y)):
        chunk = data[lo : lo + context * 2]
        lines.append(f"{label} @{lo}: {chunk!r}")
    return lines


def diffoscope_available() -> str | None:
    return shutil.which("diffoscope")


def diffoscope(a: Path, b: Path, *, max_lines: int = 60) -> list[str]:
    """diffoscope's text report on the two files (trimmed), or [] when it is not installed."""
    exe = diffoscope_available()
    if exe is None:
        return []
    from reproflake import _proc

    result = _proc.run([exe, "--text", "-", "--no-progress", str(a), str(b)], check=False)
    lines = result.stdout.splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    return lines


def explain(a: Path, b: Path) -> list[str]:
    """How two differing files differ: diffoscope's report if installed, else a byte summary."""
    return diffoscope(a, b) or byte_summary(a, b)
