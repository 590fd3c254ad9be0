"""A project on disk that loads without network or Nix (for tests of whole commands)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

from reproflake.lock import model
from reproflake.lock.hashing import nar_hash
from reproflake.lock.model import Lock
from reproflake.spec import Spec, parse


def write_locked_project(root: Path, spec_text: str, make_lock: Callable[[Spec], Lock]) -> Path:
    """A project that loads without network or Nix: the spec, a seed, and a lock from
    ``make_lock`` (the `make_lock` fixture) whose seed hashes match that seed."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "reproflake.toml").write_text(spec_text)
    seed = root / ".reproflake" / "seed" / "busybox"
    seed.parent.mkdir(parents=True)
    seed.write_bytes(b"a static busybox")
    seed.chmod(0o755)
    lock = make_lock(parse(spec_text, root / "reproflake.toml"))
    lock = dataclasses.replace(
        lock,
        seed=dataclasses.replace(
            lock.seed,
            sha256=hashlib.sha256(seed.read_bytes()).hexdigest(),
            nar_hash=nar_hash(seed.parent),
        ),
    )
    (root / model.LOCK_FILE).write_text(model.dumps(lock))
    return root
