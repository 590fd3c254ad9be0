"""Garbage-collector roots for what a project's next build needs.

`results/<step>` links are roots of the steps' outputs. Besides them, a build needs
each environment's root, every fetched .deb and wheel and the seed: the flake's
`legacyPackages.<system>.gcroots` links them all, and a root on it (one per lock,
`.reproflake/cache/gcroots/lock-<digest>`) keeps Nix's garbage collector from
throwing away what the current lock pins. `reproflake gc` removes the roots the
project no longer needs and collects the rest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from reproflake import executor
from reproflake._paths import LEGACY

ROOTS = Path(".reproflake/cache/gcroots")
ATTR = f"{LEGACY}.gcroots"


def lock_digest(root: Path) -> str:
    return hashlib.sha256((root / "reproflake.lock").read_bytes()).hexdigest()[:16]


def keep_lock(root: Path) -> Path:
    """Root everything the current lock needs (once per lock: cheap when it holds)."""
    link = root / ROOTS / f"lock-{lock_digest(root)}"
    if link.is_symlink() and os.path.exists(os.readlink(link)):
        executor.add_indirect_root(link)  # a copied project's link is registered too
        return link
    (out,) = executor.build_paths(root, [ATTR]).values()
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(link.name + ".new")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(out, tmp)
    os.replace(tmp, link)
    executor.add_indirect_root(link)
    return link


def lock_roots(root: Path) -> list[Path]:
    """The project's lock roots, newest first."""
    found = [p for p in (root / ROOTS).glob("lock-*") if p.is_symlink()]
    return sorted(found, key=lambda p: (p.lstat().st_mtime_ns, p.name), reverse=True)
