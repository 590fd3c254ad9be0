"""`reproflake reproduce` as a user meets it, for everything decided before Nix runs: a
real process, its exit code, its words, and what it left on disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproflake.artifacts import signing
from tests.unit.small_release import sums as sha256sums
from tests.unit.small_release import tar


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", *args], cwd=cwd, capture_output=True, text=True
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_a_destination_inside_git_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    archive = tar(tmp_path / "r.tar", {"x": b"x"})
    proc = _cli("reproduce", str(archive), "--dir", "repo/out", cwd=tmp_path)
    assert proc.returncode == 2
    assert "is inside the git repository" in proc.stderr and "--dir" in proc.stderr
    assert not (tmp_path / "repo" / "out").exists()


def test_a_malformed_sums_file_names_its_line(tmp_path: Path) -> None:
    archive = tar(tmp_path / "r.tar", {"SHA256SUMS": b"0" * 64 + b"  a\nnot a line\n"})
    proc = _cli("reproduce", str(archive), "--dir", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "SHA256SUMS:2: expected `SHA256  PATH`" in proc.stderr


def test_a_missing_archive(tmp_path: Path) -> None:
    proc = _cli("reproduce", "nothing.tar.zst", cwd=tmp_path)
    assert proc.returncode == 2 and "no archive at nothing.tar.zst" in proc.stderr
    proc = _cli("reproduce", "x", "--public-key", "k", "--allowed-signers", "a", cwd=tmp_path)
    assert proc.returncode == 2 and "give one of them" in proc.stderr


needs_ssh = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH signs")


def _key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@needs_ssh
def test_signatures_are_required_when_a_signer_is_given(tmp_path: Path) -> None:
    files = {"README.release.md": b"r\n"}
    sums = sha256sums(files)
    key, other = _key(tmp_path / "k"), _key(tmp_path / "o")
    signed = tar(tmp_path / "signed.tar",
                  {**files, "SHA256SUMS": sums, "SHA256SUMS.sig": signing.sign(key, sums)})  # fmt: skip
    proc = _cli(
        "reproduce", str(signed), "--dir", "a", "--public-key", f"{other}.pub", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "SHA256SUMS.sig: BAD signature over SHA256SUMS" in proc.stderr
    assert "building" not in proc.stderr
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bob {Path(f'{other}.pub').read_text()}")
    proc = _cli(
        "reproduce", str(signed), "--dir", "b", "--allowed-signers", str(allowed), cwd=tmp_path
    )
    assert proc.returncode == 1 and "signed by no key in the allowed signers" in proc.stderr
    unsigned = tar(tmp_path / "unsigned.tar", {**files, "SHA256SUMS": sums})
    proc = _cli(
        "reproduce", str(unsigned), "--dir", "c", "--public-key", f"{key}.pub", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "SHA256SUMS.sig: missing: the release is not signed" in proc.stderr


@needs_ssh
def test_with_a_signer_required_a_file_the_signature_does_not_cover_is_not_built(
    tmp_path: Path,
) -> None:
    # SHA256SUMS is signed by the right key, but a file was changed after signing (and
    # another added): what would be built is not what was signed.
    key = _key(tmp_path / "k")
    prov = json.dumps({"subject": [], "predicate": {"buildDefinition": {
        "externalParameters": {"project": "demo", "commit": "c" * 40},
        "internalParameters": {"outputs": {}},
    }}}).encode()  # fmt: skip
    sums = sha256sums({"README.release.md": b"r\n", "provenance.json": prov})
    tampered = tar(tmp_path / "t.tar", {
        "README.release.md": b"changed\n", "flake.nix": b"{ }\n", "provenance.json": prov,
        "SHA256SUMS": sums, "SHA256SUMS.sig": signing.sign(key, sums),
    })  # fmt: skip
    proc = _cli(
        "reproduce", str(tampered), "--dir", "a", "--public-key", f"{key}.pub", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    said = proc.stdout + proc.stderr
    assert "SHA256SUMS:1: README.release.md: the line says sha256" in said
    assert "flake.nix: in the archive, but not listed in SHA256SUMS" in said
    assert "not covered by the signature: nothing is built" in proc.stderr
