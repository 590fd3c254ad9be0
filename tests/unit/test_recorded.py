"""A release's records read back (SHA256SUMS, provenance.json) and checked against the
extracted files; its SSH signature made and checked with the real ssh-keygen."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproflake.artifacts import recorded, signing
from reproflake.artifacts.extract import Member
from reproflake.errors import ArchiveError, UsageError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {"reproflake.toml": b"spec\n", "results/fit/model.json": b"{}\n", "README.release.md": b"r"}


def _release(top: Path, files: dict[str, bytes] = FILES) -> dict[str, Member]:
    """A release directory as `release` lays it out; the members extract() would report."""
    members = {}
    for name, data in files.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(data)
        members[name] = Member("file", _sha(data), len(data))
    subjects = [{"name": n, "digest": {"sha256": _sha(d)}} for n, d in sorted(files.items())
                if n.startswith("results/")]  # fmt: skip
    statement = {
        "subject": subjects,
        "predicate": {"buildDefinition": {
            "externalParameters": {"project": "demo", "commit": "c" * 40},
            "internalParameters": {"outputs": {"fit": "/nix/store/" + "a" * 32 + "-x"}},
        }},
    }  # fmt: skip
    prov = json.dumps(statement).encode()
    (top / "provenance.json").write_bytes(prov)
    members["provenance.json"] = Member("file", _sha(prov), len(prov))
    sums = "".join(f"{m.sha256}  {n}\n" for n, m in sorted(members.items())).encode()
    (top / "SHA256SUMS").write_bytes(sums)
    members["SHA256SUMS"] = Member("file", _sha(sums), len(sums))
    return members


def test_an_intact_release_has_no_problems(tmp_path: Path) -> None:
    members = _release(tmp_path)
    rec = recorded.read(tmp_path)
    assert rec.project == "demo" and rec.outputs["fit"].endswith("-x")
    assert recorded.check_files(rec, members) == []
    step = recorded.step_files(rec, members, "fit")
    assert list(step) == ["model.json"] and step["model.json"].sha256 == _sha(b"{}\n")


def test_a_changed_byte_is_named_with_its_line(tmp_path: Path) -> None:
    members = _release(tmp_path)
    members["results/fit/model.json"] = Member("file", _sha(b"{1}\n"), 4)
    problems = recorded.check_files(recorded.read(tmp_path), members)
    assert len(problems) == 1
    assert problems[0].startswith("SHA256SUMS:4: results/fit/model.json: the line says sha256")


def test_a_changed_sums_line_disagrees_with_the_file_and_the_provenance(tmp_path: Path) -> None:
    members = _release(tmp_path)
    sums = (tmp_path / "SHA256SUMS").read_text().replace(_sha(b"{}\n"), "0" * 64)
    (tmp_path / "SHA256SUMS").write_text(sums)
    problems = recorded.check_files(recorded.read(tmp_path), members)
    assert any(p.startswith("SHA256SUMS:4: results/fit/model.json") for p in problems)
    assert any(p.startswith("provenance.json: subject results/fit/model.json") for p in problems)


def test_files_missing_from_the_sums_or_from_the_archive(tmp_path: Path) -> None:
    members = _release(tmp_path)
    members["extra.sh"] = Member("file", _sha(b"x"), 1)
    del members["reproflake.toml"]
    problems = recorded.check_files(recorded.read(tmp_path), members)
    assert "extra.sh: in the archive, but not listed in SHA256SUMS" in problems
    assert any("reproflake.toml is listed, but the archive has no such file" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "words"),
    [("nonsense\n", "SHA256SUMS:1: expected `SHA256  PATH`"),
     (f"{'a' * 64}  x\n{'b' * 64}  x\n", "SHA256SUMS:2: x is listed twice")],
)  # fmt: skip
def test_malformed_sums_name_the_line(tmp_path: Path, text: str, words: str) -> None:
    _release(tmp_path)
    (tmp_path / "SHA256SUMS").write_text(text)
    with pytest.raises(ArchiveError, match=words.replace("`", ".")):
        recorded.read(tmp_path)


def test_missing_records(tmp_path: Path) -> None:
    _release(tmp_path)
    (tmp_path / "provenance.json").write_text("[]")
    with pytest.raises(ArchiveError, match="not a JSON object"):
        recorded.read(tmp_path)
    (tmp_path / "SHA256SUMS").unlink()
    with pytest.raises(ArchiveError, match="SHA256SUMS: missing"):
        recorded.read(tmp_path)


needs_ssh = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH signs")


def _key(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "k", "-f", str(path)], check=True
    )
    return path


@needs_ssh
def test_ed25519_signatures_are_the_same_bytes_in_two_processes(tmp_path: Path) -> None:
    key = _key(tmp_path / "k")
    code = (
        "import sys; from pathlib import Path; from reproflake.artifacts import signing; "
        "sys.stdout.buffer.write(signing.sign(Path(sys.argv[1]), b'abc  x\\n'))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(key)], check=True, capture_output=True
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0].startswith(b"-----BEGIN SSH SIGNATURE-----")


@needs_ssh
def test_a_signature_checked_by_key_by_allowed_signers_and_tampered(tmp_path: Path) -> None:
    key = _key(tmp_path / "k")
    message = tmp_path / "SHA256SUMS"
    message.write_bytes(b"abc  x\n")
    sig = tmp_path / "SHA256SUMS.sig"
    sig.write_bytes(signing.sign(key, message.read_bytes()))
    by_key = signing.verify(message, sig, public_key=key.with_suffix(".pub"))
    assert by_key.good and by_key.trusted and "ED25519 key SHA256:" in by_key.detail
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"alice@example.invalid {key.with_suffix('.pub').read_text()}")
    by_file = signing.verify(message, sig, allowed_signers=allowed)
    assert by_file.good and by_file.principal == "alice@example.invalid"
    untrusted = signing.verify(message, sig)
    assert untrusted.good and not untrusted.trusted
    other = _key(tmp_path / "other")
    assert not signing.verify(message, sig, public_key=other.with_suffix(".pub")).good
    message.write_bytes(b"abd  x\n")  # one byte of the signed file changed
    assert not signing.verify(message, sig, public_key=key.with_suffix(".pub")).good
    assert not signing.verify(message, sig).good


@needs_ssh
def test_an_ecdsa_key_is_refused_for_it_would_not_be_deterministic(tmp_path: Path) -> None:
    key = _key(tmp_path / "k", "ecdsa")
    with pytest.raises(UsageError, match="signs differently each time"):
        signing.sign(key, b"x")
