"""No-op build: `reproflake build` when everything is built, against the same raw `nix build`.

A is `reproflake build` in the project; B is `nix <reproflake's options> build DIR#a DIR#b
... --no-link` for the same steps. After one warm-up of each they run alternately
(A B A' A'' A B A' A'' ...), N times each, in the same process run; the table gives medians
and the ratio to B (target: at most 1.5x for A and A').

- A: nothing changed; answered from the no-op stamp without Nix.
- A': after a touch (flake.nix gets a new time, same bytes: what a `git checkout` does).
  reproflake compares the touched file by content, and Nix is asked to realise the
  recorded derivations (checked: the command runs `nix`).
- A'': the full path: a comment appended to reproflake.toml (new bytes), so reproflake
  loads the project, regenerates the flake, stages it, evaluates it and asks Nix, which
  builds nothing (checked).

By default the project is the python template (3 steps). With --steps N it is a synthetic
project instead: one environment `base` with no packages and N cheap steps, each writing
`echo i > $OUT/o.txt`, step i needing step (i-1)//2 (a binary tree; --shape chain makes
step i need step i-1). It is locked and built once before timing.

    python bench/noop_build.py [--runs N] [--steps N] [--shape tree|chain] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common as c

from reproflake.fsclock import RACY_NS

NAME = "noop_build"
TARGET = 1.5


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each (default 7)")
    ap.add_argument("--steps", type=int, default=0, help="synthetic project with N steps")
    ap.add_argument("--shape", choices=("tree", "chain"), default="tree")
    ap.add_argument("--quick", action="store_true", help="3 runs of each")
    return ap.parse_args()


def synthetic_spec(header: str, steps: int, shape: str) -> str:
    lines = [header.rstrip(), "", "[environments.base]", "debian = []", ""]
    for i in range(steps):
        lines += [f"[steps.s{i:03d}]", 'env = "base"', f"run = 'echo {i} > \"$OUT/o.txt\"'"]
        if i > 0:
            parent = i - 1 if shape == "chain" else (i - 1) // 2
            lines.append(f'needs = ["s{parent:03d}"]')
        lines += ['outputs = ["o.txt"]', ""]
    return "\n".join(lines)


def make_project(tmp: Path, steps: int, shape: str) -> Path:
    if not steps:
        return c.new_project(tmp, "python")
    root = c.new_project(tmp, "minimal")
    spec = root / "reproflake.toml"
    text = spec.read_text()
    # Keep [project] and [debian] (mirror and suite from this host's apt sources).
    header = text[: text.index("[environments.")]
    spec.write_text(synthetic_spec(header, steps, shape))
    return root


def step_names(root: Path) -> list[str]:
    from reproflake.commands._project import load_spec

    _spec, dag = load_spec(root)
    return list(dag.order())


def bench() -> int:
    args = parse_args()
    c.require_tools("nix", "reproflake", "git")
    runs = 3 if args.quick else max(1, args.runs)
    with c.temp_dir(NAME) as tmp:
        root = make_project(tmp, args.steps, args.shape)
        lock_s = c.run(["reproflake", "lock"], cwd=root)[0]
        first_s, first = c.run(["reproflake", "build"], cwd=root)
        steps = step_names(root)
        summary = first.stdout.splitlines()[0] if first.stdout else ""
        print(f"{len(steps)} steps; lock {lock_s:.1f}s; first build {first_s:.1f}s ({summary})",
              file=sys.stderr)  # fmt: skip

        a_argv = ["reproflake", "build"]
        b_argv = ["nix", *c.nix_options(), "build", *[f"{root}#{s}" for s in steps], "--no-link"]
        # Warm-up of each, then A B A B ... A file changed within RACY_NS of a build is
        # compared by its bytes at the next one (Nix confirms): the project was just
        # written, so wait until it is quiet and let one more build take its times.
        for argv in (a_argv, b_argv):
            c.run(argv, cwd=root)
        time.sleep(RACY_NS / 1e9 + 0.2)
        c.run(a_argv, cwd=root)
        a: list[float] = []
        b: list[float] = []
        touched: list[float] = []
        full: list[float] = []
        flake, spec = root / "flake.nix", root / "reproflake.toml"
        verbose = {"REPROFLAKE_VERBOSE": "1"}  # echoes each command: shows whether Nix ran
        for i in range(runs):
            for argv, into in ((a_argv, a), (b_argv, b), (a_argv, touched), (a_argv, full)):
                if into is touched:
                    os.utime(flake)
                if into is full:
                    with open(spec, "a") as f:
                        f.write(f"# run {i}\n")
                secs, proc = c.run(argv, cwd=root, env=verbose)
                if argv is not b_argv and "summary: 0 built," not in proc.stdout:
                    first_line = (proc.stdout.splitlines() or [""])[0]
                    raise c.BenchError(f"`reproflake build` was not a no-op: {first_line}")
                if argv is a_argv and ("+ nix" in proc.stderr) != (into is not a):
                    raise c.BenchError("Nix was asked on the quiet path, or not on the others")
                into.append(secs)

    ma, mb, mt, mf = c.median(a), c.median(b), c.median(touched), c.median(full)
    ratio = ma / mb
    record: dict[str, Any] = {
        "project": f"synthetic {args.steps} steps ({args.shape})"
        if args.steps
        else "python template",
        "steps": len(steps),
        "runs": runs,
        "reproflake_build_s": a,
        "nix_build_s": b,
        "launcher": c.launcher(),
        "reproflake_median_s": ma,
        "nix_median_s": mb,
        "ratio": ratio,
        "reproflake_touched_s": touched,
        "touched_ratio": mt / mb,
        "reproflake_full_path_s": full,
        "full_path_ratio": mf / mb,
        "target_ratio": TARGET,
        "first_build_s": first_s,
    }
    name = NAME if not args.steps else f"{NAME}_{args.steps}"
    rows = [
        ["A: reproflake build", ma, min(a), max(a), f"{ratio:.2f}x"],
        ["B: nix build (same attrs, options)", mb, min(b), max(b), "1.00x"],
        ["A': reproflake build after a touch", mt, min(touched), max(touched), f"{mt / mb:.2f}x"],
        ["A'': reproflake build, full path", mf, min(full), max(full), f"{mf / mb:.2f}x"],
    ]
    print(c.table(["no-op build", "median s", "min s", "max s", "ratio"], rows))
    for what, r in (("no-op", ratio), ("after a touch", mt / mb)):
        verdict = "meets" if r <= TARGET else "misses"
        print(f"{record['project']}, {len(steps)} steps, {runs} runs each: {what} {r:.2f}x "
              f"({verdict} the {TARGET}x target)")  # fmt: skip
    print(f"`reproflake` on PATH: {record['launcher']}")
    print(f"wrote {c.write_result(name, record)}")
    return 0


if __name__ == "__main__":
    c.main(bench)
