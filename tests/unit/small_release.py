"""A small plain-tar release archive written by hand, for tests of `reproduce` that stop
before anything is built."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

TOP = "demo-0123456789ab"


def tar(path: Path, files: dict[str, bytes]) -> Path:
    """``files`` under the one top directory TOP, in a plain tar at ``path``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo(TOP)
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(out.getvalue())
    return path


def sums(files: dict[str, bytes]) -> bytes:
    """SHA256SUMS of ``files``, as `sha256sum` writes it."""
    return "".join(
        f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items())
    ).encode()
