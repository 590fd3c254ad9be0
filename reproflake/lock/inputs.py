"""Pinning local and URL inputs: the light part of locking that every build runs.

Hashing local inputs (cached) and checking file:// inputs needs neither the Debian
resolver nor uv; commands that only build import this module, not lock.pin.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path

from reproflake import _confine
from reproflake._globs import match_files
from reproflake._paths import user_cache_dir
from reproflake.errors import HashMismatchError, UsageError
from reproflake.fsutil import sha256_file
from reproflake.lock.hashing import HashCache
from reproflake.lock.model import LockedInput
from reproflake.spec import Spec


def cache_dir() -> Path:
    return user_cache_dir()


def hash_cache(root: Path) -> HashCache:
    return HashCache(root / ".reproflake" / "cache" / "hashes.json", root)


# --------------------------------------------------------------------------- local inputs


def pin_inputs(
    spec: Spec, cache: HashCache, globs: Mapping[str, list[str]] | None = None
) -> dict[str, LockedInput]:
    """Hash local inputs (cached) and record URL inputs; cheap, run on every build."""
    pinned = {}
    for name, item in spec.inputs.items():
        if item.is_url:
            assert item.url is not None and item.sha256 is not None
            if item.url.startswith("file://"):
                _check_local_url(spec, name, item.url, item.sha256)
            pinned[name] = LockedInput(kind="url", path=item.path, url=item.url, sha256=item.sha256)
            continue
        assert item.path is not None
        if item.is_glob:
            matched = globs.get(item.path) if globs is not None else None
            pinned[name] = _pin_glob(spec, name, item.path, cache, matched)
            continue
        path = spec.root / item.path
        where = f"{spec.where('inputs', name, 'path')}: inputs.{name}"
        if not path.exists() and not path.is_symlink():
            raise UsageError(
                f"{where}: {item.path} does not exist",
                hint=f"create {item.path}, or fix the path of input {name!r}",
            )
        # A link is followed (the data it points to is the input), within the project's rule.
        resolved = _confine.local_path(spec.root, item.path, where)
        pinned[name] = LockedInput(kind="local", path=item.path, nar_hash=cache.nar_hash(resolved))
    cache.save()
    return pinned


def _check_local_url(spec: Spec, name: str, url: str, sha256: str) -> None:
    """A file:// input is on this machine: check its sha256 now rather than at build time.

    Only a file the project may read (inside it, or where this machine's user allowed) is
    opened, so the hash in the message is never that of a file the user did not ask about."""
    url_where = f"{spec.where('inputs', name, 'url')}: inputs.{name}.url"
    path = _confine.file_url(spec.root, url, url_where)
    assert path is not None
    where = spec.where("inputs", name, "sha256")
    _confine.regular_file(path, url_where)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise UsageError(
            f"{spec.where('inputs', name, 'url')}: inputs.{name}.url: cannot read {path}: "
            f"{exc.strerror}",
            hint="fix the URL, or restore the file",
        ) from None
    if digest.hexdigest() != sha256:
        raise HashMismatchError(
            f"{where}: inputs.{name}.sha256: {path} has sha256 {digest.hexdigest()}, not {sha256}",
            hint="if the file's new content is intended, put its sha256 in reproflake.toml",
        )


def _pin_glob(
    spec: Spec, name: str, pattern: str, cache: HashCache, matched: list[str] | None
) -> LockedInput:
    if matched is None:
        matched = match_files(spec.root, pattern)
    if not matched:
        raise UsageError(
            f"{spec.where('inputs', name, 'path')}: inputs.{name}: {pattern!r} matches no file",
            hint="fix the pattern (relative to the project directory), or add the files",
        )
    where = f"{spec.where('inputs', name, 'path')}: inputs.{name}"
    files = {rel: cache.nar_hash(_confine.local_path(spec.root, rel, where)) for rel in matched}
    combined = hashlib.sha256("\n".join(f"{k} {v}" for k, v in files.items()).encode()).digest()
    return LockedInput(
        kind="local",
        path=pattern,
        nar_hash="sha256-" + base64.b64encode(combined).decode(),
        files=files,
    )
