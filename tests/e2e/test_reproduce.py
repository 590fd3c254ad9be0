"""`reproflake reproduce`: a signed, vendored release of the python template rebuilt in
another directory with no network, every hash matched; tampered copies caught and named."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from tests.e2e.conftest import git, reproflake


@pytest.fixture(scope="module")
def signed(python_project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The python template committed and released with --vendor --sign (twice: the same
    bytes); the archive and the signing key."""
    base = tmp_path_factory.mktemp("reproduce")
    root = base / "project"
    shutil.copytree(python_project, root, symlinks=True)
    git("add", "-A", cwd=root)
    # Other tests may have committed the shared project already: nothing new is fine.
    git("commit", "-q", "--allow-empty", "-m", "release me", cwd=root)
    key = base / "release_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rel", "-f", str(key)],
                   check=True)  # fmt: skip
    archives = [base / f"r{i}.tar.zst" for i in range(2)]
    for archive in archives:
        reproflake("release", "--vendor", "--sign", str(key), "-o", str(archive), cwd=root)
    assert archives[0].read_bytes() == archives[1].read_bytes()  # signed, still deterministic
    return archives[0], key


def _reproduce(archive: Path, where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """reproduce with no network at all (a new network namespace has only loopback, down)."""
    return subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "reproflake", "reproduce", str(archive),
         "--dir", str(where), *args],
        cwd=where.parent, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def test_reproduce_offline_matches_every_hash(signed: tuple[Path, Path], tmp_path: Path) -> None:
    archive, key = signed
    proc = _reproduce(archive, tmp_path / "elsewhere", "--public-key", f"{key}.pub")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert "signature: good, SHA256SUMS.sig by release-key (ED25519 key SHA256:" in out
    assert "SHA256SUMS: all " in out and "entries match entries.json; provenance.json agrees" in out
    for step in ("prepare", "fit", "report"):
        assert any(line.split()[:2] == [step, "identical"] for line in out.splitlines()), out
    assert "reproduced 3 step(s) bit for bit" in out
    (top,) = (tmp_path / "elsewhere").iterdir()
    assert "ssh-keygen -Y verify" in (top / "README.release.md").read_text()
    # Anyone checks the signature with OpenSSH alone, as docs/commands.md says.
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"rel {Path(f'{key}.pub').read_text()}")
    with (top / "SHA256SUMS").open("rb") as sums:
        subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "rel",
             "-n", "reproflake-release", "-s", "SHA256SUMS.sig"],
            cwd=top, stdin=sums, check=True, capture_output=True,
        )  # fmt: skip


Edit = Callable[[str, bytes], bytes | None]  # (path, content) → new content; None: drop it


def _tampered(
    archive: Path,
    dest: Path,
    edit: Edit,
    header: Callable[[tarfile.TarInfo], None] | None = None,
    extra: tuple[tarfile.TarInfo, ...] = (),
) -> Path:
    """The archive rewritten entry by entry with one change (gzip: reproduce reads it too):
    ``edit`` for a file's content, ``header`` for every entry's header, ``extra`` added."""
    with archive.open("rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f).read()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            if data is not None:
                data = edit(info.name.split("/", 1)[1], data)
                if data is None:
                    continue
                info.size = len(data)
            if header is not None:
                header(info)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
        for info in extra:
            dst.addfile(info)
    dest.write_bytes(out.getvalue())
    return dest


def _flip(data: bytes) -> bytes:
    return data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]


def test_a_changed_output_byte_is_named(signed: tuple[Path, Path], tmp_path: Path) -> None:
    archive, key = signed
    bad = _tampered(archive, tmp_path / "bad.tar",
                    lambda p, d: _flip(d) if p == "results/report/report.json" else d)  # fmt: skip
    proc = _reproduce(bad, tmp_path / "x", "--public-key", f"{key}.pub")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    # The signature still holds (SHA256SUMS is untouched); the file does not match it.
    assert "signature: good" in out
    assert "results/report/report.json: the line says sha256" in out
    # A file the signature does not vouch for: nothing of the release is built.
    assert "not covered by the signature: nothing is built" in out and "Traceback" not in out
    assert not any(line.split()[1:2] == ["identical"] for line in out.splitlines() if line), out
    # Without a signer to check, the difference is reported and the release is built anyway.
    proc = _reproduce(bad, tmp_path / "y")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "results/report/report.json: the line says sha256" in out
    assert "the release did not reproduce" in out and "Traceback" not in out


def test_a_changed_sums_line_is_named(signed: tuple[Path, Path], tmp_path: Path) -> None:
    archive, _key = signed

    def edit(path: str, data: bytes) -> bytes | None:
        if path == "SHA256SUMS.sig":
            return None  # an unsigned copy: the line itself must be caught
        if path == "SHA256SUMS":
            lines = data.decode().splitlines(keepends=True)
            i = next(n for n, line in enumerate(lines) if line.endswith("results/fit/model.json\n"))
            lines[i] = "0" * 64 + lines[i][64:]
            return "".join(lines).encode()
        return data

    proc = _reproduce(_tampered(archive, tmp_path / "bad.tar", edit), tmp_path / "x")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "signature: none" in out
    assert "results/fit/model.json: the line says sha256 " + "0" * 64 in out
    assert "provenance.json: subject results/fit/model.json has sha256" in out
    # The rebuilt file matches the provenance, not the forged line: the step is different.
    assert any(line.split()[:2] == ["fit", "different"] for line in out.splitlines()), out


def test_a_consistently_forged_output_differs_from_its_rebuild(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    """One output byte changed, and SHA256SUMS and the provenance changed to match (the
    signature dropped): only the rebuild can tell, and its table shows where."""
    archive, _key = signed
    name = "results/report/report.json"
    original: dict[str, bytes] = {}
    _tampered(archive, tmp_path / "read.tar", lambda p, d: original.setdefault(p, d))
    forged = _flip(original[name])
    old, new = hashlib.sha256(original[name]).hexdigest(), hashlib.sha256(forged).hexdigest()
    prov = original["provenance.json"].replace(old.encode(), new.encode())
    sums = original["SHA256SUMS"].replace(old.encode(), new.encode())
    sums = sums.replace(hashlib.sha256(original["provenance.json"]).hexdigest().encode(),
                        hashlib.sha256(prov).hexdigest().encode())  # fmt: skip
    edits = {name: forged, "provenance.json": prov, "SHA256SUMS": sums}

    def edit(path: str, data: bytes) -> bytes | None:
        return None if path == "SHA256SUMS.sig" else edits.get(path, data)

    proc = _reproduce(_tampered(archive, tmp_path / "bad.tar", edit), tmp_path / "x")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "SHA256SUMS: all " in out  # the records agree with each other
    assert any(line.split()[:2] == ["report", "different"] for line in out.splitlines()), out
    assert f"different: {name} (recorded sha256 {new}, rebuilt {old})" in out
    assert "first difference at byte" in out or "diffoscope" in out


def test_links_and_modes_are_signed_too(signed: tuple[Path, Path], tmp_path: Path) -> None:
    """SHA256SUMS names regular files only; entries.json, which it lists, covers the rest:
    a link added and a mode changed under a good signature stop it before building."""
    archive, key = signed
    with tarfile.open(_tampered(archive, tmp_path / "read.tar", lambda p, d: d)) as tar:
        top = tar.getnames()[0].split("/")[0]

    def executable(info: tarfile.TarInfo) -> None:
        if info.name == f"{top}/src/prepare.py":
            info.mode = 0o755

    link = tarfile.TarInfo(f"{top}/src/extra.py")
    link.type, link.linkname = tarfile.SYMTYPE, "fit.py"
    bad = _tampered(archive, tmp_path / "bad.tar", lambda p, d: d, executable, (link,))
    proc = _reproduce(bad, tmp_path / "x", "--public-key", f"{key}.pub")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "signature: good" in out
    assert "src/extra.py: a symlink in the archive, but not listed in entries.json" in out
    assert (
        "entries.json: src/prepare.py is listed as a file of mode 0644, the archive has a "
        "file of mode 0755" in out
    )
    assert "not covered by the signature: nothing is built" in out and "Traceback" not in out


def test_a_bad_signature_is_named_and_nothing_is_built(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    archive, key = signed
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    proc = _reproduce(archive, tmp_path / "x", "--public-key", f"{other}.pub")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "SHA256SUMS.sig: BAD signature over SHA256SUMS" in out
    assert "building" not in out and "STEP" not in out
    # SHA256SUMS changed under the right key: the same verdict.
    forged = _tampered(archive, tmp_path / "forged.tar",
                       lambda p, d: d + b"\n" if p == "SHA256SUMS" else d)  # fmt: skip
    proc = _reproduce(forged, tmp_path / "y", "--public-key", f"{key}.pub")
    assert proc.returncode == 1 and "BAD signature" in proc.stdout + proc.stderr


def test_an_unsafe_archive_exits_2_with_nothing_written(tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("top/../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "evil.tar").write_bytes(out.getvalue())
    run = reproflake("reproduce", "evil.tar", "--dir", "d", cwd=tmp_path, check=False)
    assert run.returncode == 2, run.output
    assert "going up with '..'" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar"]


def test_a_release_without_its_local_pins_reads_nothing_outside(
    python_project: Path, tmp_path: Path
) -> None:
    """Without --vendor, the wheel pinned to this machine's file:// mirror is named by a
    path outside the release: reproduce refuses it (exit 2) instead of reading it."""
    lock = (python_project / "reproflake.lock").read_text()
    # This machine's package index (pip's configuration) is a file:// mirror.
    assert '"url": "file:///' in lock, "the test needs a wheel pinned from a file:// index"
    root = tmp_path / "project"
    shutil.copytree(python_project, root, symlinks=True)
    git("add", "-A", cwd=root)
    git("commit", "-q", "--allow-empty", "-m", "release me", cwd=root)
    archive = tmp_path / "plain.tar.zst"
    reproflake("release", "-o", str(archive), cwd=root)
    proc = _reproduce(archive, tmp_path / "x")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "the release names 1 pinned file(s) by file:// URL without carrying them in " \
        "vendor/ (first: numpy-" in out  # fmt: skip
    assert "its Nix library would read them from this machine" in out
    assert "reproflake release --vendor" in out and "Traceback" not in out
    assert "building" not in out
    # --json: the document so far (the records were checked), with the refusal.
    proc = _reproduce(archive, tmp_path / "y", "--json")
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["records"] == {"problems": [], "entries_checked": True}
    assert doc["exit_code"] == 2 and doc["reproduced"] is False
    assert "without carrying them in vendor/" in doc["error"] and "--vendor" in doc["hint"]


def test_json_gives_every_verdict(signed: tuple[Path, Path], tmp_path: Path) -> None:
    archive, key = signed
    proc = _reproduce(archive, tmp_path / "x", "--public-key", f"{key}.pub", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)  # nothing but the document on stdout
    assert doc["reproduced"] is True and doc["failures"] == []
    assert doc["signature"]["status"] == "good"
    assert doc["records"] == {"problems": [], "entries_checked": True}
    assert doc["summary"] == {"identical": 3, "different": 0, "could not build": 0}
    fit = doc["steps"]["fit"]
    assert fit["verdict"] == "identical" and fit["path"] == fit["recorded_path"]
    assert fit["files"]["results/fit/model.json"] == {"verdict": "identical", "detail": ""}
    # Refused before building under a required signature: the document says why.
    bad = _tampered(archive, tmp_path / "bad.tar",
                    lambda p, d: _flip(d) if p == "results/report/report.json" else d)  # fmt: skip
    proc = _reproduce(bad, tmp_path / "y", "--public-key", f"{key}.pub", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["reproduced"] is False and "steps" not in doc
    assert "nothing is built" in doc["error"]
    assert any(line.startswith("SHA256SUMS:") and "results/report/report.json" in line
               for line in doc["records"]["problems"])  # fmt: skip


def test_nix_code_not_reproflakes_is_evaluated_only_when_trusted(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    """A library file changed, SHA256SUMS changed to match and the signature dropped: the
    records agree, but the code Nix would evaluate is not this reproflake's. Refused
    (exit 2, nothing built) unless --trust-nix-code; then it builds and reproduces."""
    archive, _key = signed
    lib = ".reproflake/lib/default.nix"
    original: dict[str, bytes] = {}
    _tampered(archive, tmp_path / "read.tar", lambda p, d: original.setdefault(p, d))
    changed = original[lib] + b"# one more line\n"
    sums = original["SHA256SUMS"].replace(
        hashlib.sha256(original[lib]).hexdigest().encode(),
        hashlib.sha256(changed).hexdigest().encode(),
    )
    edits = {lib: changed, "SHA256SUMS": sums}

    def edit(path: str, data: bytes) -> bytes | None:
        return None if path == "SHA256SUMS.sig" else edits.get(path, data)

    bad = _tampered(archive, tmp_path / "bad.tar", edit)
    proc = _reproduce(bad, tmp_path / "x")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "SHA256SUMS: all " in out  # the records agree with each other
    assert f"the release's Nix code is not this reproflake's ({lib} differ)" in out
    assert "--trust-nix-code" in out and "Traceback" not in out
    assert not any(line.split()[1:2] == ["identical"] for line in out.splitlines() if line), out
    proc = _reproduce(bad, tmp_path / "y", "--trust-nix-code")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"Nix code: {lib} differ(s) from this reproflake's; trusted as asked" in out
    assert "reproduced 3 step(s) bit for bit" in out
