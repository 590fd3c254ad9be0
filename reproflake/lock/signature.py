"""Checking a Debian suite's signed Release file with gpgv and a keyring.

Every .deb is pinned by the sha256 in the suite's Packages index, and every
Packages index by the SHA256 list in the suite's (In)Release file; this is the
last link: that file must carry a good signature from a key in the keyring.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from reproflake import _proc
from reproflake.errors import LockError

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def verify(url: str, data: bytes, detached: bytes | None, keyring: Path) -> bytes:
    """The signed content of ``data`` (an InRelease, or a Release with its .gpg)."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise LockError(
            f"cannot check the signature of {url}: gpgv is not installed",
            hint="install it (Debian: apt-get install gpgv), or set verify = false in [debian]",
        )
    if not keyring.is_file():
        raise LockError(
            f"cannot check the signature of {url}: keyring {keyring} does not exist",
            hint='install debian-archive-keyring, or set keyring = "/path/to/keyring.gpg" in [debian]',
        )
    with tempfile.TemporaryDirectory(prefix="reproflake-gpgv-") as tmp:
        signed = Path(tmp) / "Release"
        signed.write_bytes(data)
        out = Path(tmp) / "content"
        argv = [gpgv, "--status-fd", "1", "--keyring", str(keyring)]
        if detached is None:
            argv += ["--output", str(out), str(signed)]
        else:
            (Path(tmp) / "Release.gpg").write_bytes(detached)
            argv += [str(Path(tmp) / "Release.gpg"), str(signed)]
        result = _proc.run(argv, check=False, env={"GNUPGHOME": tmp})
        status = result.stdout.splitlines()
        good = any(line.startswith("[GNUPG:] GOODSIG ") for line in status)
        bad = any(line.startswith("[GNUPG:] BADSIG ") for line in status)
        if not good or bad:
            detail = (result.stderr.strip().splitlines() or ["no good signature"])[-1]
            raise LockError(
                f"the signature of {url} does not verify with {keyring}: {detail}",
                hint="the mirror may be tampered with or out of date; check [debian] mirror and keyring",
            )
        return out.read_bytes() if detached is None else data
