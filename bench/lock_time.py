"""`reproflake lock` time on the python template: cold, warm, and forced re-resolution.

- cold: an empty reproflake cache (XDG_CACHE_HOME points at a new temporary directory),
  no reproflake.lock and no project hash cache: fetches the Debian index, resolves the
  .deb closure, runs uv, extracts the seed.
- warm: the cache populated and the lock present, so nothing is re-resolved.
- upgrade: `reproflake lock --upgrade` with the cache populated: everything re-resolved.

Peer: uv alone resolving the same requirements (`uv pip compile` with the same
--python-version, --python-platform, --only-binary :all:, --format pylock.toml and the
same index options reproflake passes), with a cold and a warm uv cache. Resolving the
Debian side with apt is not comparable (different index format, host state) and is not run.

    python bench/lock_time.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import _common as c

NAME = "lock_time"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs of each case (default 3)")
    ap.add_argument("--quick", action="store_true", help="one run of each")
    ap.add_argument("--env", default="py", help="environment whose Python requirements uv resolves")
    return ap.parse_args()


def uv_argv(root: Path, env_name: str, cache: Path) -> tuple[list[str], str]:
    """uv's command line and stdin for the environment's requirements, as reproflake runs it."""
    from reproflake.lock import model, pin
    from reproflake.lock import python as py
    from reproflake.spec import find_spec, load

    spec = load(find_spec(root))
    lock = model.read(root)
    if lock is None or env_name not in lock.environments:
        raise c.BenchError(f"no locked environment {env_name!r} in {root}")
    env = lock.environments[env_name]
    if not env.python:
        raise c.BenchError(f"environment {env_name!r} has no Python requirements")
    libc = next(lock.debs[k] for k in env.debs if lock.debs[k].package == "libc6")
    m = re.match(r"(?:\d+:)?(\d+\.\d+)", libc.version)  # as reproflake's pin.lock does
    glibc = m.group(1) if m else "2.17"
    argv = [
        *py._env_prefix(),
        py._uv_bin(),
        *py._uv_compile_args(
            env.python_version, py._uv_platform(glibc, "x86_64"), pin._index_config(spec), cache
        ),
    ]
    return argv, "".join(r + "\n" for r in env.python)


def bench() -> int:
    args = parse_args()
    c.require_tools("reproflake", "git")
    runs = 1 if args.quick else max(1, args.runs)
    times: dict[str, list[float]] = {"cold": [], "warm": [], "upgrade": [], "uv_cold": [], "uv_warm": []}  # fmt: skip
    with c.temp_dir(NAME) as tmp:
        root = c.new_project(tmp, "python")
        cache_home = tmp / "xdg-cache"
        env = {"XDG_CACHE_HOME": str(cache_home)}
        lock_argv = ["reproflake", "lock"]
        for i in range(runs):
            shutil.rmtree(cache_home, ignore_errors=True)
            cache_home.mkdir()
            (root / "reproflake.lock").unlink(missing_ok=True)
            shutil.rmtree(root / ".reproflake" / "cache", ignore_errors=True)
            times["cold"].append(c.run(lock_argv, cwd=root, env=env)[0])
            times["warm"].append(c.run(lock_argv, cwd=root, env=env)[0])
            times["upgrade"].append(c.run([*lock_argv, "--upgrade"], cwd=root, env=env)[0])
            # uv alone, in an empty directory like reproflake runs it.
            uv_cache = tmp / f"uv-cache-{i}"
            argv, reqs = uv_argv(root, args.env, uv_cache)
            work = tmp / f"uv-work-{i}"
            work.mkdir()
            times["uv_cold"].append(c.run(argv, cwd=work, input=reqs)[0])
            times["uv_warm"].append(c.run(argv, cwd=work, input=reqs)[0])
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                  file=sys.stderr)  # fmt: skip
        requirements = reqs.split()

    med = {k: c.median(v) for k, v in times.items()}
    record: dict[str, Any] = {
        "project": "python template",
        "requirements": requirements,
        "runs": runs,
        "times_s": times,
        "median_s": med,
        "ratio_cold_vs_uv_cold": med["cold"] / med["uv_cold"],
        "ratio_upgrade_vs_uv_warm": med["upgrade"] / med["uv_warm"],
    }
    rows = [
        ["reproflake lock, cold cache, no lock", med["cold"], f"{record['ratio_cold_vs_uv_cold']:.2f}x vs uv cold"],
        ["reproflake lock, warm (lock up to date)", med["warm"], ""],
        ["reproflake lock --upgrade, warm cache", med["upgrade"], f"{record['ratio_upgrade_vs_uv_warm']:.2f}x vs uv warm"],
        ["peer: uv pip compile, cold uv cache", med["uv_cold"], ""],
        ["peer: uv pip compile, warm uv cache", med["uv_warm"], ""],
    ]  # fmt: skip
    print(c.table(["case (median)", "seconds", "ratio"], rows))
    print(f"requirements: {' '.join(requirements)}; runs: {runs} each")
    print(f"wrote {c.write_result(NAME, record)}")
    return 0


if __name__ == "__main__":
    c.main(bench)
