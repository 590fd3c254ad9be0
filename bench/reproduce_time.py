"""Reproducing a vendored release offline: `reproflake reproduce` against plain Nix.

A is `unshare -n reproflake reproduce ARCHIVE --dir FRESH`: safe extraction, the
signature, SHA256SUMS and provenance checks, every step built (again, independently, when
the store has it), every output compared. B, the peer, is what a user with only
coreutils and Nix does: `tar -xf ARCHIVE`, `sha256sum -c SHA256SUMS`, `unshare -n nix
build` of every step. Both run offline, alternately, each into a new directory. The first
run of each is reported apart (it may assemble the environment); then medians and the
ratio B/A (1.0x: reproduce costs no more than the peer). Also the archive's size against
the vendored material's.

    python bench/reproduce_time.py [--template python] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import GIT_AUTHOR, committed_built_project

NIX = ["nix", "--extra-experimental-features", "nix-command flakes ca-derivations",
       "--option", "sandbox", "true", "--option", "sandbox-fallback", "false",
       "--option", "substituters", ""]  # fmt: skip


def timed(cmd: list[str] | str, cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {cmd}\n{proc.stdout}{proc.stderr}")
    return seconds, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default="python")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rf = [sys.executable, "-m", "reproflake"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "proj"
        committed_built_project(rf, root, args.template)
        git = ["git", *GIT_AUTHOR]
        plan = subprocess.run(
            [*rf, "plan", "--json"], cwd=root, check=True, capture_output=True, text=True
        )
        names = [s["step"] for s in json.loads(plan.stdout)]
        attrs = " ".join(f".#{n}" for n in names)
        sources = subprocess.run(["git", "ls-files", "*.py"], cwd=root, check=True,
                                 capture_output=True, text=True).stdout.split()  # fmt: skip

        def salted(label: str) -> Path:
            """A release whose steps no store has built: a salt comment in every source."""
            for name in sources:
                with (root / name).open("a") as f:
                    f.write(f"# bench salt {label} {time.time_ns()}\n")
            subprocess.run([*git, "commit", "-qam", label], cwd=root, check=True)
            out = base / f"{label}.tar.zst"
            subprocess.run([*rf, "release", "--vendor", "-o", str(out)], cwd=root, check=True,
                           capture_output=True)  # fmt: skip
            return out

        a: list[float] = []
        b: list[float] = []
        notes = []
        for i in range(args.runs + 1):
            archive = salted(f"a{i}")
            seconds, out = timed(
                ["unshare", "-n", *rf, "reproduce", str(archive), "--dir", str(base / f"a{i}")],
                base,
            )
            a.append(seconds)
            if i == 0:
                notes.append("environment assembled" if "assembled environment" in out else
                             "environment found in the store")  # fmt: skip
            assert out.count("(rebuilt)") == len(names), out  # every step really ran
            peer_archive = salted(f"b{i}")
            peer = (f"tar -xf {peer_archive} && cd */ && sha256sum -c --quiet SHA256SUMS && "
                    f"unshare -n {shlex.join(NIX)} build {attrs} --no-link")  # fmt: skip
            d = base / f"b{i}"
            d.mkdir()
            b.append(timed(peer, d)[0])
        (top,) = (base / "a0").iterdir()
        vendored = sum(p.stat().st_size for p in (top / "vendor").iterdir())
        tree = sum(p.stat().st_size for p in top.rglob("*") if p.is_file())
        ma, mb = statistics.median(a[1:]), statistics.median(b[1:])
        size = (base / "a0.tar.zst").stat().st_size
        print(f"template {args.template}: steps {', '.join(names)}; tree {tree / 1e6:.1f} MB, "
              f"{vendored / 1e6:.1f} MB vendored")  # fmt: skip
        print(f"first run: reproduce {a[0]:.2f} s ({notes[0]}), peer {b[0]:.2f} s")
        print(f"reproduce (median of {args.runs}): {ma:.2f} s")
        print(f"tar -x + sha256sum -c + nix build (median of {args.runs}): {mb:.2f} s")
        print(f"ratio (peer / reproduce): {mb / ma:.2f}x")
        print(f"archive {size / 1e6:.1f} MB = {size / vendored:.2f}x the vendored material "
              f"({size / tree:.2f}x the extracted tree)")  # fmt: skip


if __name__ == "__main__":
    main()
