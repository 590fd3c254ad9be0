"""`reproflake reproduce --json` when it stops before building: still one document on
stdout, with what was found so far, the error, its hint and the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.small_release import TOP, sums, tar

PROVENANCE = {
    "subject": [],
    "predicate": {"buildDefinition": {
        "externalParameters": {"project": "demo", "commit": "c" * 40},
        "internalParameters": {"outputs": {}},
    }},
}  # fmt: skip


def _reproduce(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", "reproduce", *args, "--json"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def _release(path: Path, entries: bytes) -> Path:
    files = {"provenance.json": json.dumps(PROVENANCE).encode(), "entries.json": entries}
    return tar(path, {**files, "SHA256SUMS": sums(files)})


def test_a_release_refused_after_extraction_gives_the_document_so_far(tmp_path: Path) -> None:
    archive = _release(tmp_path / "r.tar", b'{"entries": []}')
    proc = _reproduce(tmp_path, str(archive), "--dir", "out")
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["reproduced"] is False
    assert doc["exit_code"] == 2
    assert doc["signature"] == {"status": "none"}
    assert (doc["project"], doc["commit"]) == ("demo", "c" * 40)
    assert doc["directory"] == str(tmp_path / "out" / TOP)
    assert doc["error"].startswith(f"{tmp_path / 'out' / TOP / 'entries.json'}: expected")
    assert "reproflake release" in doc["hint"]


def test_a_file_system_error_is_a_document_too(tmp_path: Path) -> None:
    archive = _release(tmp_path / "r.tar", b'{"entries": {}}')
    (tmp_path / "a-file").write_bytes(b"")
    proc = _reproduce(tmp_path, str(archive), "--dir", "a-file/out")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 1
    assert "a-file/out" in doc["error"] and "Not a directory" in doc["error"]
    assert doc["hint"]
