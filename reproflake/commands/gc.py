"""`reproflake gc`: keep what the current lock needs, drop the project's other roots, collect.

Nix's collector deletes every store path no root reaches, machine-wide; what other
projects root stays. This command first makes the project's roots say exactly what it
needs: the current lock's environments and fetched files (and those of the last N locks
with --keep N), the results of the steps the spec still has. Links of removed or renamed
steps and roots of older locks go.
"""

from __future__ import annotations

from pathlib import Path

from reproflake import executor, gcroots
from reproflake.commands._project import Log, load_project

RESULTS = "results"


def run(start: Path, *, keep: int, dry_run: bool, log: Log, out: Log) -> int:
    executor.require_nix()
    p = load_project(start, log, write_lock=False)
    stale: list[Path] = []
    results = p.root / RESULTS
    if results.is_dir():
        stale += [
            link
            for link in sorted(results.iterdir())
            if link.is_symlink() and link.name not in p.spec.steps
        ]
    current = gcroots.keep_lock(p.root) if not dry_run else None
    older = [r for r in gcroots.lock_roots(p.root) if r != current]
    stale += older[max(keep - 1, 0) :]
    verb = "would remove" if dry_run else "removed"
    for link in stale:
        if not dry_run:
            link.unlink()
        out(f"{verb} root {link.relative_to(p.root)}")
    freed = executor.collect_garbage(dry_run=dry_run)
    what = "would free" if dry_run else "freed"
    out(f"summary: {verb} {len(stale)} root(s); Nix {what} {freed.paths} store path(s), "
        f"{_size(freed.bytes)}")  # fmt: skip
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
