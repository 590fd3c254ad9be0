"""Release packing: `reproflake release --vendor` against tar --sort=name | zstd -T0.

A is `reproflake release --vendor` of a committed project whose steps are built (so it is
the packing: the sources from git, outputs, vendored files, hashes, provenance); B is GNU
tar of the extracted release tree (sorted, owners 0, fixed time) piped through `zstd -3
-T0`, the same level. They alternate in one run; medians of wall and of CPU time (user +
system, children's rusage: steadier than wall on a busy machine), the ratios B/A (target
>= 1.0x in throughput), and the archive's size against the vendored material's. Both
write a new file in every run.
reproflake runs as an installed copy does, with its bytecode cached (a
PYTHONDONTWRITEBYTECODE in the environment is not passed on).

    python bench/release_pack.py [--template minimal|python|paper] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import committed_built_project

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(cmd: list[str] | str, cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run (CPU: every process it started, once reaped)."""
    start, used = time.perf_counter(), cpu()
    subprocess.run(cmd, cwd=cwd, check=True, shell=isinstance(cmd, str), env=ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start, cpu() - used


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default="minimal")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rf = [sys.executable, "-m", "reproflake"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "proj"
        committed_built_project(rf, root, args.template, ENV)
        out = base / "r.tar.zst"
        subprocess.run([*rf, "release", "--vendor", "-o", str(out)],
                       cwd=root, check=True, capture_output=True, env=ENV)  # fmt: skip
        tree = base / "tree"
        tree.mkdir()
        subprocess.run(["tar", "-x", "-C", str(tree), "-f", str(out)], check=True)
        (top,) = tree.iterdir()
        peer = (f"tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - {top.name}"
                f" | zstd -3 -T0 -q -f -o {base / 'peer.tar.zst'}")  # fmt: skip
        a, b = [], []
        for _ in range(args.runs):
            # Each writes a new file, as a release of a new commit does (its name holds
            # the commit): the previous one is removed before, not timed. Overwriting
            # would time freeing the old file too, which zstd does while tar starts.
            out.unlink()
            a.append(timed([*rf, "release", "--vendor", "-o", str(out)], root))
            (base / "peer.tar.zst").unlink(missing_ok=True)
            b.append(timed(peer, tree))
        size = sum(p.stat().st_size for p in top.rglob("*") if p.is_file())
        vendored = sum(p.stat().st_size for p in (top / "vendor").iterdir())
        ma, mb = (statistics.median(w for w, _ in runs) for runs in (a, b))
        ca, cb = (statistics.median(c for _, c in runs) for runs in (a, b))
        print(
            f"tree: {size / 1e6:.1f} MB ({vendored / 1e6:.1f} MB vendored), template {args.template}"
        )
        print(
            f"reproflake release --vendor: {ma:.3f} s ({size / 1e6 / ma:.0f} MB/s), cpu {ca:.3f} s"
        )
        print(
            f"tar --sort=name | zstd -3 -T0: {mb:.3f} s ({size / 1e6 / mb:.0f} MB/s), cpu {cb:.3f} s"
        )
        print(f"throughput ratio (release / tar+zstd): {mb / ma:.2f}x wall, {cb / ca:.2f}x cpu")
        print(f"1-minute load average at the end: {os.getloadavg()[0]:.1f}")
        print(
            f"archive {out.stat().st_size / 1e6:.1f} MB = {out.stat().st_size / vendored:.2f}x the vendored "
            f"material; tar+zstd {(base / 'peer.tar.zst').stat().st_size / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
