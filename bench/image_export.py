"""Image export: `reproflake image` against tar + gzip / tar + zstd -T0 of the same tree.

A is a cold `reproflake image report --format oci-archive --compression C`: an empty
blob cache, so every layer is written and compressed; the project is unchanged since the
first export, so the image is written from the export's record, without loading the
project or asking Nix (as a user's re-export in another format is). B is `tar` of the
same files (the environment's root and the step's outputs, sorted, owners 0, fixed
times) piped through `gzip` or `zstd -T0` at the same level. They run alternately in the
same process run; the table gives medians of wall and CPU time (user + system of every
process, from the children's rusage: steadier than wall on a busy machine) and the
ratios B/A (target: at least 0.8x in throughput). Then the no-op re-export (nothing
changed) is timed (target: under 0.2 s), and the share of layer bytes two environments
differing by one Debian package have in common. reproflake runs as an installed copy
does, with its bytecode cached (a PYTHONDONTWRITEBYTECODE in the environment is not
passed on).

    python bench/image_export.py [--runs N] [--extra-package jq]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

NAME = "image_export"


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CPU: list[float] = []  # each sh()'s CPU seconds, in order


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def sh(cmd: str, cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall seconds (and the CPU seconds of everything it ran, appended to CPU)."""
    start, used = time.perf_counter(), children_cpu()
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, env={**ENV, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    CPU.append(children_cpu() - used)
    return time.perf_counter() - start


def rf(args: str) -> str:
    return f"{sys.executable} -m reproflake {args}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extra-package", default="jq")
    args = parser.parse_args()
    c.require_tools("nix", "tar", "gzip", "zstd", "git")
    work = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        root = work / "demo"
        sh(rf(f"init --template python {root}"), work)
        sh(rf("lock"), root)
        sh(rf("build"), root)
        env_root = json.loads(subprocess.run(
            ["nix", *c.nix_options(), "build", ".#legacyPackages.x86_64-linux.environments.py",
             "--no-link", "--json"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout)[0]["outputs"]["out"]  # fmt: skip
        outputs = os.path.realpath(root / "results/report")
        tar = (f"tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - "
               f"-C {env_root} . -C {outputs} .")  # fmt: skip
        rows = []
        cache = work / "cache"
        first = sh(rf(f"image report -o {work}/first"), root, {"XDG_CACHE_HOME": str(cache)})
        for compression, peer in (("gzip", "gzip -6"), ("zstd", "zstd -3 -T0")):
            a, b, ca, cb = [], [], [], []
            for _ in range(args.runs):
                # No layer blobs cached: every layer is written and compressed again. (The
                # packages' file lists, read once per .deb ever, stay cached.)
                shutil.rmtree(cache / "reproflake" / "oci", ignore_errors=True)
                (work / "out.tar").unlink(missing_ok=True)  # else the no-op export answers
                a.append(sh(rf(f"image report --format oci-archive --compression {compression} "
                               f"-o {work}/out.tar"), root, {"XDG_CACHE_HOME": str(cache)}))  # fmt: skip
                ca.append(CPU[-1])
                b.append(sh(f"{tar} | {peer} > {work}/peer.out", root))
                cb.append(CPU[-1])
            ma, mb = statistics.median(a), statistics.median(b)
            mca, mcb = statistics.median(ca), statistics.median(cb)
            rows.append({"compression": compression, "reproflake_s": round(ma, 2),
                         "tar_s": round(mb, 2), "ratio": round(mb / ma, 2),
                         "reproflake_cpu_s": round(mca, 2), "tar_cpu_s": round(mcb, 2),
                         "cpu_ratio": round(mcb / mca, 2)})  # fmt: skip
        sh(rf("image report"), root)
        noop = [sh(rf("image report"), root) for _ in range(max(5, args.runs))]
        shared = shared_fraction(root, work, args.extra_package)
        result = {"export": rows, "first_export_s": round(first, 2), "noop_s": round(statistics.median(noop), 3), "shared": shared,
                  "load": [c.LOAD_AT_START, os.getloadavg()[0]]}  # fmt: skip
        for row in rows:
            print(f"{row['compression']:5} reproflake {row['reproflake_s']:6.2f}s  "
                  f"tar+{row['compression']} {row['tar_s']:6.2f}s  ratio {row['ratio']:.2f}x  "
                  f"(cpu {row['reproflake_cpu_s']:.2f}s / {row['tar_cpu_s']:.2f}s: "
                  f"{row['cpu_ratio']:.2f}x)")  # fmt: skip
        print(f"first export ever (also lists every .deb's files): {first:.2f}s")
        print(f"no-op re-export: {result['noop_s']:.3f}s (median of {len(noop)})")
        print(f"shared layer bytes with one more package: {shared}")
        print(f"1-minute load average: {c.LOAD_AT_START:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end")  # fmt: skip
        c.OUT_DIR.mkdir(exist_ok=True)
        (c.OUT_DIR / f"{NAME}.json").write_text(json.dumps(result, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def layers(layout: Path) -> dict[str, int]:
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads(
        (layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes()
    )
    return {layer["digest"]: layer["size"] for layer in manifest["layers"]}


def shared_fraction(root: Path, work: Path, package: str) -> dict[str, object]:
    """Images of `py` and of `py` plus one package: the bytes of the second's layers the
    first already has."""
    with open(root / "reproflake.toml", "a") as f:
        f.write(f'\n[environments.py2]\ndebian = ["python3", "{package}"]\npython = ["numpy==2.2.6"]\n'
                '\n[steps.report2]\nenv = "py2"\nrun = "python3 src/report.py"\n'
                'sources = ["src/report.py"]\nneeds = ["prepare", "fit"]\n'
                'outputs = ["report.json", "residuals.csv"]\n'
                '\n[images.report2]\nstep = "report2"\nentrypoint = ["python3", "src/report.py"]\n')  # fmt: skip
    sh(rf("lock"), root)
    sh(rf(f"image report -o {work}/one"), root)
    sh(rf(f"image report2 -o {work}/two"), root)
    one, two = layers(work / "one"), layers(work / "two")
    common = sum(size for digest, size in two.items() if digest in one)
    return {"package": package, "shared_bytes": common, "total_bytes": sum(two.values()),
            "fraction": round(common / sum(two.values()), 3),
            "shared_layers": sum(1 for d in two if d in one), "layers": len(two)}  # fmt: skip


if __name__ == "__main__":
    main()
