"""Signing a release with an SSH key, and checking it, through OpenSSH's `ssh-keygen -Y`.

What is signed is ``SHA256SUMS``: it holds the sha256 of every other file of the release
(``provenance.json`` and the README included), so one detached signature,
``SHA256SUMS.sig``, covers them all and anyone checks it with OpenSSH alone:

    ssh-keygen -Y verify -f allowed_signers -I NAME -n reproflake-release \\
      -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c SHA256SUMS

Ed25519 (and RSA) SSH signatures of the same bytes with the same key are the same bytes
(no random nonce, no time in the signature), so a signed release stays deterministic;
ECDSA signatures are not, and are refused for that reason.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reproflake import _proc
from reproflake.errors import UsageError

NAMESPACE = "reproflake-release"
SIGNATURE = "SHA256SUMS.sig"
# The principal a bare public key is given when reproduce builds allowed_signers from it.
KEY_PRINCIPAL = "release-key"
_DETERMINISTIC = ("ssh-ed25519", "ssh-rsa", "sk-ssh-ed25519@openssh.com")


def sign(key: Path, data: bytes) -> bytes:
    """A detached SSH signature of ``data`` by the private ``key`` (a file)."""
    public = _public_half(key)
    kind = public.split(maxsplit=1)[0] if public else ""
    if kind and kind not in _DETERMINISTIC:
        raise UsageError(
            f"{key}: a {kind} key signs differently each time, so the release would not be "
            "deterministic",
            hint="sign with an ed25519 key: ssh-keygen -t ed25519 -f release_key",
        )
    with tempfile.TemporaryDirectory(prefix="reproflake-sign-") as tmp:
        message = Path(tmp) / "SHA256SUMS"
        message.write_bytes(data)
        result = _proc.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(message)],
            check=False,
        )
        sig = message.with_name(SIGNATURE)
        if result.returncode != 0 or not sig.exists():
            raise UsageError(
                f"cannot sign with {key}: "
                + (result.stderr.strip() or f"ssh-keygen exited {result.returncode}"),
                hint="pass a private SSH key without a passphrase, or load it into ssh-agent "
                "and pass its public half",
            )
        return sig.read_bytes()


def _public_half(key: Path) -> str:
    """The key's public line (``KIND BASE64 COMMENT``), '' when it cannot be read."""
    if not key.exists():
        raise UsageError(f"--sign: no key at {key}", hint="pass the path of an SSH private key")
    pub = key.with_name(key.name + ".pub")
    if key.name.endswith(".pub"):
        return key.read_text(errors="replace").strip()
    if pub.exists():
        return pub.read_text(errors="replace").strip()
    result = _proc.run(["ssh-keygen", "-y", "-f", str(key)], check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


@dataclass(frozen=True)
class Check:
    """The outcome of checking a signature."""

    good: bool
    trusted: bool  # checked against allowed signers (not only self-consistent)
    principal: str
    detail: str  # ssh-keygen's words (the key's fingerprint, or why it failed)


_FINGERPRINT = re.compile(r"(\S+ key SHA256:\S+)")


def verify(
    message: Path,
    signature: Path,
    *,
    allowed_signers: Path | None = None,
    public_key: Path | None = None,
) -> Check:
    """Check ``signature`` over the file ``message``: against ``allowed_signers`` (an
    OpenSSH allowed_signers file) or one ``public_key``; with neither, only that the
    signature is intact for the key it names (which says nothing of who signed)."""
    with tempfile.TemporaryDirectory(prefix="reproflake-verify-") as tmp:
        if public_key is not None:
            line = _read_key(public_key)
            allowed_signers = Path(tmp) / "allowed_signers"
            allowed_signers.write_text(f"{KEY_PRINCIPAL} {line}\n")
        if allowed_signers is None:
            argv = ["ssh-keygen", "-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(signature)]
            result = _stdin_from(argv, message)
            found = _FINGERPRINT.search(result.stdout + result.stderr)
            return Check(
                result.returncode == 0,
                False,
                "",
                found.group(1) if found else _last_line(result),
            )
        if not allowed_signers.is_file():
            raise UsageError(f"--allowed-signers: no file at {allowed_signers}")
        principals = _proc.run(
            ["ssh-keygen", "-Y", "find-principals", "-f", str(allowed_signers),
             "-s", str(signature)],
            check=False,
        )  # fmt: skip
        principal = principals.stdout.strip().splitlines()[0] if principals.returncode == 0 else ""
        if not principal:
            return Check(False, True, "", "signed by no key in the allowed signers")
        argv = ["ssh-keygen", "-Y", "verify", "-f", str(allowed_signers), "-I", principal,
                "-n", NAMESPACE, "-s", str(signature)]  # fmt: skip
        result = _stdin_from(argv, message)
        found = _FINGERPRINT.search(result.stdout + result.stderr)
        detail = found.group(1) if found and result.returncode == 0 else _last_line(result)
        return Check(result.returncode == 0, True, principal, detail)


def _read_key(path: Path) -> str:
    try:
        line = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--public-key: cannot read {path}: {exc}") from None
    if not line.startswith(("ssh-", "sk-ssh-", "ecdsa-", "sk-ecdsa-")) or "\n" in line:
        raise UsageError(
            f"--public-key: {path} is not one SSH public key line (`ssh-ed25519 AAAA… comment`)",
            hint="pass the .pub file of the key the release was signed with",
        )
    return line


def _stdin_from(argv: list[str], message: Path) -> _proc.Result:
    """``argv < message``: ssh-keygen reads the signed data from standard input, as bytes."""
    return _proc.run(["sh", "-c", 'exec "$@" < "$0"', str(message), *argv], check=False)


def _last_line(result: _proc.Result) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[-1] if lines else f"ssh-keygen exited {result.returncode}"
