"""Beyond one machine: Nix binary caches and remote builders, as the user configures them.

reproflake invents no cache protocol and no scheduler: it hands Nix its own settings
(``substituters``, ``trusted-public-keys``, ``builders``, ``secret-key-files``) and checks
what Nix cannot check by itself.

Where settings come from:

- the project's ``[cache]`` (reproflake.toml): cache URLs to read and their public keys;
- the user's configuration (``$XDG_CONFIG_HOME/reproflake/config.toml``): more caches to read, where ``push``
  uploads (``[cache] push``), the signing key (``[cache] secret_key``, a file the
  repository never holds), and remote builders (``[[builders]]``).

Why reproflake verifies signatures itself: Nix 2.8 treats content-addressed store paths
as self-certifying (no signature needed) and does not check a realisation's signatures
when it substitutes one, so a cache signed by an unknown key would be used for
content-addressed steps. After Nix substitutes a step, reproflake checks its output's
signature against the trusted keys (ed25519, checked by ``openssl``) and refuses it
otherwise.
"""

from __future__ import annotations

import base64
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reproflake import _proc
from reproflake.errors import UsageError

# Nix adds this feature to the requirements of every content-addressed derivation.
CA_FEATURE = "ca-derivations"


class ConfigError(UsageError):
    """The user's reproflake configuration must be fixed."""


@dataclass(frozen=True)
class Builder:
    """One Nix remote builder (a line of /etc/nix/machines)."""

    uri: str  # ssh-ng://user@host or ssh://user@host
    systems: tuple[str, ...] = ("x86_64-linux",)
    ssh_key: str | None = None
    max_jobs: int = 1
    features: tuple[str, ...] = ()
    host_key: str | None = None  # base64 of the host's public key line; None: known_hosts

    def offered(self) -> tuple[str, ...]:
        """The system features Nix is told this builder supports: the configured ones and
        ``ca-derivations``, which every step requires of whoever builds it (steps are
        content-addressed; the builder's Nix must enable that experimental feature)."""
        return tuple(sorted({*self.features, CA_FEATURE}))

    def machines_line(self) -> str:
        return " ".join(
            [
                self.uri,
                ",".join(self.systems),
                self.ssh_key or "-",
                str(self.max_jobs),
                "1",
                ",".join(self.offered()),
                "-",
                self.host_key or "-",
            ]
        )


@dataclass(frozen=True)
class Remote:
    """Caches and builders for one command, merged from the project and the user."""

    caches: tuple[str, ...] = ()
    public_keys: tuple[str, ...] = ()
    push_to: str | None = None
    secret_key: Path | None = None
    builders: tuple[Builder, ...] = ()
    source: str = ""  # where the user's settings came from, for messages
    unreachable: tuple[str, ...] = field(default=(), compare=False)

    def builders_setting(self) -> str:
        return "; ".join(b.machines_line() for b in self.builders)

    def offers(self) -> dict[str, tuple[str, ...]]:
        """Each builder's URI and the features it advertises (for the hardware gate)."""
        return {b.uri: b.offered() for b in self.builders}


def config_path() -> Path:
    from reproflake._confine import config_file

    return config_file()


def _strings(raw: object, where: str, fix: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(f"{where}: expected a list of strings", hint=fix)
    return tuple(raw)


def load(project_urls: Sequence[str] = (), project_keys: Sequence[str] = ()) -> Remote:
    """The project's [cache] merged with the user's configuration (if any)."""
    path = config_path()
    raw: dict[str, object] = {}
    if path.is_file():
        # Only when there is a file: the TOML parser costs every build's start-up otherwise.
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised on Python 3.10 only
            import tomli as tomllib
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", hint="fix the file") from None
    unknown = sorted(set(raw) - {"cache", "builders", "read_outside"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}", hint="expected [cache] and [[builders]]"
        )
    cache = raw.get("cache", {})
    if not isinstance(cache, dict):
        raise ConfigError(f"{path}: cache: expected a table", hint="write [cache]")
    extra = set(cache) - {"urls", "public_keys", "push", "secret_key"}
    if extra:
        raise ConfigError(
            f"{path}: cache.{sorted(extra)[0]}: unknown key",
            hint="expected one of: public_keys, push, secret_key, urls",
        )
    urls = _strings(cache.get("urls", []), f"{path}: cache.urls", 'urls = ["file:///srv/cache"]')
    keys = _strings(cache.get("public_keys", []), f"{path}: cache.public_keys", "NAME:BASE64")
    push = cache.get("push")
    if push is not None and not isinstance(push, str):
        raise ConfigError(f"{path}: cache.push: expected a URL", hint='push = "file:///srv/c"')
    secret = cache.get("secret_key")
    if secret is not None and not isinstance(secret, str):
        raise ConfigError(f"{path}: cache.secret_key: expected a file path", hint="a key file")
    builders = tuple(_builder(b, f"{path}: builders[{i}]") for i, b in enumerate(_list(raw, path)))
    return Remote(
        caches=tuple(dict.fromkeys([*project_urls, *urls])),
        public_keys=tuple(dict.fromkeys([*project_keys, *keys])),
        push_to=push,
        secret_key=Path(secret).expanduser() if secret else None,
        builders=builders,
        source=str(path),
    )


def _list(raw: dict[str, object], path: Path) -> list[object]:
    builders = raw.get("builders", [])
    if not isinstance(builders, list):
        raise ConfigError(f"{path}: builders: expected [[builders]] tables", hint="[[builders]]")
    return builders


def _builder(raw: object, where: str) -> Builder:
    fix = 'host = "ssh-ng://root@gpu1", features = ["gpu-nvidia"], max_jobs = 2'
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table", hint=fix)
    extra = set(raw) - {"host", "systems", "ssh_key", "max_jobs", "features", "host_key"}
    if extra:
        raise ConfigError(f"{where}.{sorted(extra)[0]}: unknown key", hint=fix)
    host = raw.get("host")
    if not isinstance(host, str) or not re.fullmatch(r"(ssh-ng|ssh)://[\w.@:\[\]-]+", host):
        raise ConfigError(f"{where}.host: expected ssh-ng://USER@HOST", hint=fix)
    jobs = raw.get("max_jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{where}.max_jobs: expected a positive integer", hint=fix)
    key, host_key = raw.get("ssh_key"), raw.get("host_key")
    for name, value in (("ssh_key", key), ("host_key", host_key)):
        if value is not None and (not isinstance(value, str) or " " in value):
            raise ConfigError(f"{where}.{name}: expected one word", hint=fix)
    return Builder(
        uri=host,
        systems=_strings(raw.get("systems", ["x86_64-linux"]), f"{where}.systems", fix),
        ssh_key=key if isinstance(key, str) else None,
        max_jobs=jobs,
        features=tuple(sorted(_strings(raw.get("features", []), f"{where}.features", fix))),
        host_key=host_key if isinstance(host_key, str) else None,
    )


# --------------------------------------------------------------------------- reachability


def reachable(url: str, timeout: int = 5) -> str | None:
    """None when Nix can open the cache; else the first line of why not."""
    result = _proc.run(
        [
            "nix", "--extra-experimental-features", "nix-command",
            "--option", "connect-timeout", str(timeout),
            "store", "ping", "--store", url,
        ],
        check=False,
    )  # fmt: skip
    if result.returncode == 0:
        return None
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", x).strip() for x in result.stderr.splitlines()]
    errors = [x.removeprefix("error: ") for x in lines if x.startswith("error")]
    return (errors or [x for x in lines if x] or ["no answer"])[-1]


# --------------------------------------------------------------------------- signatures


def _der_public(key: str) -> bytes:
    # An ed25519 public key as DER (SubjectPublicKeyInfo) for openssl: a fixed prefix.
    return bytes.fromhex("302a300506032b6570032100") + base64.b64decode(key.split(":", 1)[1])


def verify(message: str, signature: str, public_keys: Iterable[str]) -> bool:
    """Whether ``signature`` (NAME:BASE64, as Nix writes it) is by one of the keys."""
    name, _, sig = signature.partition(":")
    candidates = [k for k in public_keys if k.split(":", 1)[0] == name]
    for key in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "key.der").write_bytes(_der_public(key))
            (d / "msg").write_bytes(message.encode())
            try:
                (d / "sig").write_bytes(base64.b64decode(sig, validate=True))
            except ValueError:
                return False
            result = _proc.run(
                [
                    "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(d / "key.der"),
                    "-keyform", "DER", "-rawin", "-in", str(d / "msg"), "-sigfile", str(d / "sig"),
                ],
                check=False,
            )  # fmt: skip
            if result.returncode == 0:
                return True
    return False


def path_fingerprint(path: str, nar_hash: str, nar_size: int, references: Sequence[str]) -> str:
    """What Nix signs for a store path (ValidPathInfo::fingerprint)."""
    return f"1;{path};{nar_hash};{nar_size};{','.join(sorted(references))}"


def unsigned(infos: Iterable[dict[str, object]], public_keys: Sequence[str]) -> list[str]:
    """The store paths (from `nix path-info --json`) no trusted key has signed."""
    from reproflake.lock.deb import nix_base32

    refused = []
    for info in infos:
        path = str(info["path"])
        sri = str(info["narHash"])
        nar_hash = "sha256:" + nix_base32(base64.b64decode(sri.split("-", 1)[1]))
        refs = [str(r) for r in info.get("references", []) or []]  # type: ignore[attr-defined]
        message = path_fingerprint(path, nar_hash, int(str(info["narSize"])), refs)
        sigs = [str(x) for x in info.get("signatures", []) or []]  # type: ignore[attr-defined]
        if not any(verify(message, sig, public_keys) for sig in sigs):
            refused.append(path)
    return sorted(refused)


def public_key_of(secret_key: Path) -> str:
    """The public key that goes with a Nix secret key file (NAME:BASE64 of 64 bytes)."""
    name, _, b64 = secret_key.read_text().strip().partition(":")
    raw = base64.b64decode(b64)
    return f"{name}:{base64.b64encode(raw[32:]).decode()}"
