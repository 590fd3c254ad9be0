"""Hashing a large data input: reproflake's NAR hash against sha256sum, then the cached re-hash.

A file of --size-mb MB (default 2048; 512 with --quick) is written from os.urandom in a
temporary directory on the same file system as /tmp and deleted afterwards. After one
warm-up read (so the page cache holds it for every contender), the contenders run
alternately (A B C A B C ...), --runs times each (median):

- A: reproflake.lock.hashing.nar_hash(path), in this process (time.perf_counter);
- B: `sha256sum FILE`, the whole process;
- C: `openssl dgst -sha256 FILE`, the whole process (if openssl is installed): the same
  sha256 code as Python's hashlib, which tells the hash implementation apart from
  reproflake's own overhead.

Throughput is size / median time (MB = 10^6 bytes); the ratio is A's throughput over B's
(target: at least 0.9x). The NAR hash is checked once against `nix hash path` (timed too).

Then the unchanged file is hashed again through reproflake.lock.hashing.HashCache, with
its cache file in the temporary directory: one first call (it reads the file), save(),
then --cached-runs lookups (median, target under 50 ms) of

- the same HashCache object: `cache.nar_hash(path)`;
- a new HashCache loaded from the cache file each time: `HashCache(file).nar_hash(path)`;
- a whole new Python process doing the latter (interpreter start and import included).

    python bench/hash_large.py [--size-mb N] [--runs N] [--cached-runs N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

NAME = "hash_large"
MB = 1e6
TARGET_RATIO = 0.9
TARGET_CACHED_S = 0.05
WRITE_CHUNK = 16 << 20

CACHED_SCRIPT = """
import sys
from pathlib import Path
from reproflake.lock.hashing import HashCache
print(HashCache(Path(sys.argv[1])).nar_hash(Path(sys.argv[2])))
"""


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=None, help="file size in MiB (default 2048)")
    ap.add_argument("--runs", type=int, default=3, help="timed hashes of each (default 3)")
    ap.add_argument("--cached-runs", type=int, default=5, help="timed cached lookups (default 5)")
    ap.add_argument("--quick", action="store_true", help="512 MiB unless --size-mb, 1 run each")
    return ap.parse_args()


def write_random(path: Path, size: int) -> None:
    left = size
    with open(path, "wb") as f:
        while left:
            n = min(WRITE_CHUNK, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def read_all(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(WRITE_CHUNK)
        while f.readinto(buf):
            pass


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench() -> int:
    args = parse_args()
    c.require_tools("sha256sum", "nix")
    from reproflake.lock.hashing import HashCache, nar_hash

    size_mib = args.size_mb if args.size_mb is not None else (512 if args.quick else 2048)
    if size_mib < 1:
        c.die("--size-mb: give at least 1")
    size = size_mib << 20
    runs = 1 if args.quick else max(1, args.runs)
    cached_runs = 3 if args.quick else max(1, args.cached_runs)
    openssl = shutil.which("openssl")

    with c.temp_dir(NAME) as tmp:
        same_fs = os.stat(tmp).st_dev == os.stat(tempfile.gettempdir()).st_dev == os.stat("/tmp").st_dev  # fmt: skip
        if shutil.disk_usage(tmp).free < size + (256 << 20):
            raise c.BenchError(f"not enough free space in {tmp} for a {size_mib} MiB file")
        data = tmp / "input.bin"
        write_s, _ = timed(lambda: write_random(data, size))
        warm_s, _ = timed(lambda: read_all(data))
        print(f"{size_mib} MiB written in {write_s:.1f}s; warm-up read {warm_s:.2f}s",
              file=sys.stderr)  # fmt: skip

        contenders: list[tuple[str, Any]] = [
            ("A", lambda: nar_hash(data)),
            ("B", lambda: c.run(["sha256sum", str(data)])[1].stdout.split()[0]),
        ]
        if openssl:
            contenders.append(
                ("C", lambda: c.run([openssl, "dgst", "-sha256", str(data)])[1].stdout.split()[-1])
            )
        times: dict[str, list[float]] = {k: [] for k, _ in contenders}
        digests: dict[str, set[str]] = {k: set() for k, _ in contenders}
        for i in range(runs):
            for key, fn in contenders:
                secs, digest = timed(fn)
                times[key].append(secs)
                digests[key].add(digest)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                  file=sys.stderr)  # fmt: skip
        for key, found in digests.items():
            if len(found) != 1:
                raise c.BenchError(f"{key} gave different hashes of the same file: {found}")
        if openssl and digests["B"] != digests["C"]:
            raise c.BenchError("sha256sum and openssl disagree")
        nar = next(iter(digests["A"]))
        nix_s, nix_proc = c.run(["nix", *c.nix_options(), "hash", "path", "--type", "sha256", str(data)])  # fmt: skip
        if nix_proc.stdout.strip() != nar:
            raise c.BenchError(f"NAR hash {nar} differs from `nix hash path`: {nix_proc.stdout}")

        # The cached re-hash of the unchanged file.
        cache_file = tmp / "hashes.json"
        cache = HashCache(cache_file)
        first_s, first = timed(lambda: cache.nar_hash(data))
        cache.save()
        same_obj: list[float] = []
        new_obj: list[float] = []
        new_proc: list[float] = []
        argv = [sys.executable, "-c", CACHED_SCRIPT, str(cache_file), str(data)]
        c.run(argv)  # warm-up of the interpreter and its imports
        for _ in range(cached_runs):
            secs, got = timed(lambda: cache.nar_hash(data))
            same_obj.append(secs)
            secs2, got2 = timed(lambda: HashCache(cache_file).nar_hash(data))
            new_obj.append(secs2)
            secs3, proc = c.run(argv)
            new_proc.append(secs3)
            if {got, got2, proc.stdout.strip(), first} != {nar}:
                raise c.BenchError("a cached lookup gave a different hash")

    med = {k: c.median(v) for k, v in times.items()}
    mbps = {k: size / MB / v for k, v in med.items()}
    ratio = mbps["A"] / mbps["B"]
    cached = {"same_object": c.median(same_obj), "new_object": c.median(new_obj),
              "new_process": c.median(new_proc)}  # fmt: skip
    record: dict[str, Any] = {
        "size_mib": size_mib,
        "size_bytes": size,
        "same_fs_as_tmp": same_fs,
        "runs": runs,
        "times_s": times,
        "median_s": med,
        "mb_per_s": mbps,
        "ratio_reproflake_vs_sha256sum": ratio,
        "target_ratio": TARGET_RATIO,
        "nix_hash_path_s": nix_s,
        "write_s": write_s,
        "warmup_read_s": warm_s,
        "cached_runs": cached_runs,
        "cached_first_call_s": first_s,
        "cached_same_object_s": same_obj,
        "cached_new_object_s": new_obj,
        "cached_new_process_s": new_proc,
        "cached_median_s": cached,
        "target_cached_s": TARGET_CACHED_S,
    }
    names = {"A": "A: reproflake nar_hash (in-process)", "B": "B: sha256sum (process)",
             "C": "C: openssl dgst -sha256 (process)"}  # fmt: skip
    rows = [
        [names[k], med[k], min(times[k]), max(times[k]), f"{mbps[k]:.0f}",
         f"{mbps[k] / mbps['B']:.2f}x"]
        for k in times
    ]  # fmt: skip
    rows.append(["nix hash path (once, check)", nix_s, nix_s, nix_s, f"{size / MB / nix_s:.0f}",
                 f"{size / MB / nix_s / mbps['B']:.2f}x"])  # fmt: skip
    print(c.table(["hash, page cache warm", "median s", "min s", "max s", "MB/s", "vs sha256sum"], rows))  # fmt: skip
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"{size_mib} MiB, {runs} runs each: reproflake/sha256sum throughput {ratio:.2f}x "
          f"({verdict} the {TARGET_RATIO}x target)")  # fmt: skip
    ms = 1000.0
    rows2 = [
        ["first call through HashCache (reads the file)", first_s * ms, first_s * ms],
        ["cache.nar_hash(path), same object", cached["same_object"] * ms, max(same_obj) * ms],
        ["HashCache(file).nar_hash(path), new object", cached["new_object"] * ms, max(new_obj) * ms],
        ["new python process: HashCache(file).nar_hash", cached["new_process"] * ms, max(new_proc) * ms],
    ]  # fmt: skip
    print(c.table(["re-hash unchanged file", "median ms", "max ms"], rows2))
    worst = max(cached["same_object"], cached["new_object"])
    verdict = "meets" if worst < TARGET_CACHED_S else "misses"
    print(f"cached lookup (in-process, {cached_runs} runs): {worst * 1000:.2f} ms "
          f"({verdict} the {TARGET_CACHED_S * 1000:.0f} ms target)")  # fmt: skip
    if not same_fs:
        print("note: the temporary directory is not on /tmp's file system (TMPDIR is set?)")
    print(f"wrote {c.write_result(NAME, record)}")
    return 0


if __name__ == "__main__":
    c.main(bench)
