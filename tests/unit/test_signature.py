"""Release signatures checked with the real gpgv, against a key made for the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reproflake.errors import LockError
from reproflake.lock import signature

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None or shutil.which("gpgv") is None, reason="gpg/gpgv not installed"
)

RELEASE = "Origin: Test\nSuite: stable\nSHA256:\n 0123 10 main/binary-amd64/Packages.xz\n"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh signing key: (GNUPGHOME, exported public keyring)."""
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}

    def gpg(*args: str) -> bytes:
        return subprocess.run(
            ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", *args],
            env=env, check=True, capture_output=True,
        ).stdout  # fmt: skip

    gpg("--quick-gen-key", "Test Archive <archive@example.invalid>", "ed25519", "sign", "never")
    keyring = home / "archive.gpg"
    keyring.write_bytes(gpg("--export"))
    return home, keyring


def sign(home: Path, text: str, *, detached: bool) -> bytes:
    env = {**os.environ, "GNUPGHOME": str(home)}
    mode = "--detach-sign" if detached else "--clearsign"
    return subprocess.run(
        ["gpg", "--batch", "--quiet", mode, "-o", "-"],
        input=text.encode(), env=env, check=True, capture_output=True,
    ).stdout  # fmt: skip


def test_inrelease_returns_only_the_signed_text(signer: tuple[Path, Path]) -> None:
    home, keyring = signer
    signed = sign(home, RELEASE, detached=False)
    content = signature.verify("http://mirror.invalid/InRelease", signed, None, keyring)
    assert content.decode() == RELEASE


def test_release_with_detached_signature(signer: tuple[Path, Path]) -> None:
    home, keyring = signer
    sig = sign(home, RELEASE, detached=True)
    assert signature.verify("u", RELEASE.encode(), sig, keyring) == RELEASE.encode()


def test_tampered_release_is_refused(signer: tuple[Path, Path]) -> None:
    home, keyring = signer
    signed = sign(home, RELEASE, detached=False).replace(b"Suite: stable", b"Suite: evil!")
    with pytest.raises(LockError) as err:
        signature.verify("http://mirror.invalid/dists/x/InRelease", signed, None, keyring)
    assert "does not verify" in str(err.value)
    assert "http://mirror.invalid/dists/x/InRelease" in str(err.value)


def test_signature_by_an_unknown_key_is_refused(signer: tuple[Path, Path], tmp_path: Path) -> None:
    home, _keyring = signer
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    with pytest.raises(LockError):
        signature.verify("u", sign(home, RELEASE, detached=False), None, empty)


def test_missing_keyring_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LockError) as err:
        signature.verify("u", b"x", None, tmp_path / "nope.gpg")
    assert "debian-archive-keyring" in (err.value.hint or "")
