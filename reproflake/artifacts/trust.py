"""Which of a release's files Nix would evaluate, and whether they are reproflake's own.

`reproduce` builds a release's flake as it was released. Evaluating a flake runs its Nix
code outside the sandbox, as the user: a flake can read any path the user can (a `path:`
input, `builtins.fetchTree` of a local directory), copying it into the world-readable
store before any hash is checked. So the code evaluated must be trusted before anything
is built: the release's `flake.nix`, `flake.lock` and Nix library (`.reproflake/lib/`)
must be byte for byte what this reproflake writes (then the only code evaluated is this
reproflake's, which reads only the flake's own source and the store), unless a signer the
user named vouches for them, or the user says they trust the release's author.

The data that code reads (`.reproflake/build.json`) can still name a pinned file by a
`file://` URL, which the library reads at evaluation time when the release carries no
copy in vendor/: such a release is refused whatever the trust (it cannot be reproduced
away from its author's machine anyway).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from reproflake import nixgen

LIB = ".reproflake/lib"
BUILD_DATA = ".reproflake/build.json"


def _bytes(path: Path) -> bytes | None:
    """A regular file's bytes; None for anything else (missing, a link, a directory)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        return path.read_bytes()
    except OSError:
        return None


def foreign_code(top: Path) -> list[str]:
    """The release's evaluated files that are not this reproflake's, by path (sorted)."""
    expected = {
        "flake.nix": nixgen.flake_nix(None).encode(),
        "flake.lock": nixgen.FLAKE_LOCK.encode(),
        **{f"{LIB}/{name}": content for name, content in nixgen.library().items()},
    }
    differ = [rel for rel, content in expected.items() if _bytes(top / rel) != content]
    lib = top / LIB
    if lib.is_dir() and not lib.is_symlink():
        extra = [f"{LIB}/{p.name}" for p in lib.iterdir() if f"{LIB}/{p.name}" not in expected]
        differ += extra
    elif os.path.lexists(lib):
        differ.append(LIB)
    return sorted(set(differ))


def local_urls_not_carried(top: Path) -> list[str]:
    """Pinned files the release's build data names by a file:// URL and does not carry in
    vendor/ (as `NAME (URL)`): the Nix library would read them from this machine."""
    raw = _bytes(top / BUILD_DATA)
    try:
        data: Any = json.loads(raw) if raw is not None else {}
    except ValueError:
        return [f"{BUILD_DATA} (not JSON)"]
    pinned: list[tuple[object, object]] = []  # (the name the library uses, the URL)
    if isinstance(data, dict):
        for kind in ("debs", "wheels"):
            entries = data.get(kind)
            if isinstance(entries, dict):
                pinned += [(f.get("name"), f.get("url")) for f in entries.values()
                           if isinstance(f, dict)]  # fmt: skip
        inputs = data.get("inputs")
        if isinstance(inputs, dict):
            for entry in inputs.values():
                files = entry.get("files") if isinstance(entry, dict) else None
                if isinstance(files, list):
                    pinned += [(f.get("storeName"), f.get("url")) for f in files
                               if isinstance(f, dict) and f.get("kind") == "url"]  # fmt: skip
    found = []
    for name, url in pinned:
        if not isinstance(url, str) or url[:5].lower() != "file:":
            continue
        shown = name if isinstance(name, str) and name else "(no name)"
        carried = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
        if not carried or _bytes(top / "vendor" / str(name)) is None:
            found.append(f"{shown} ({url})")
    return sorted(found)
