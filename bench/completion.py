"""Shell completion: completing a step name against completing a command name.

A is what bash runs on Tab after `reproflake build ` in a project of N steps (default
1000): click's completion protocol, reading the names from reproflake.toml. B is the
same process completing a subcommand (`reproflake bu`), which reads no spec: the cost
every completion pays for starting Python and click. Both run the reproflake that
`python` imports (`python -m reproflake`), alternately, N times each after one warm-up;
the table gives medians and the ratio to B (target: at most 1.5x).

    python bench/completion.py [--runs N] [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import _common as c

NAME = "completion"
TARGET = 1.5


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each (default 15)")
    ap.add_argument("--steps", type=int, default=1000, help="steps in the spec (default 1000)")
    ap.add_argument("--quick", action="store_true", help="5 runs of each")
    return ap.parse_args()


def spec_text(steps: int) -> str:
    lines = ['[project]\nname = "bench"\n', "[environments.base]\ndebian = []\n"]
    for i in range(steps):
        lines.append(f'[steps.s{i:04d}]\nenv = "base"\nrun = "true"\noutputs = ["o"]\n')
    return "\n".join(lines)


def complete_env(words: str) -> dict[str, str]:
    return {
        "_REPROFLAKE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }


def bench() -> int:
    args = parse_args()
    runs = 5 if args.quick else max(1, args.runs)
    argv = [sys.executable, "-m", "reproflake"]
    with c.temp_dir(NAME) as tmp:
        (tmp / "reproflake.toml").write_text(spec_text(args.steps))
        a_env = complete_env("reproflake build ")
        b_env = complete_env("reproflake bu")
        for env in (a_env, b_env):
            c.run(argv, cwd=tmp, env=env)
        a: list[float] = []
        b: list[float] = []
        for _ in range(runs):
            secs, proc = c.run(argv, cwd=tmp, env=a_env)
            if len(proc.stdout.split()) != args.steps:
                raise c.BenchError(f"expected {args.steps} step names, got: {proc.stdout[:200]}")
            a.append(secs)
            secs, proc = c.run(argv, cwd=tmp, env=b_env)
            if "plain,build" not in proc.stdout:
                raise c.BenchError(f"command completion did not offer build: {proc.stdout[:200]}")
            b.append(secs)
    ma, mb = c.median(a), c.median(b)
    record: dict[str, Any] = {
        "steps": args.steps,
        "runs": runs,
        "step_names_s": a,
        "command_names_s": b,
        "step_names_median_s": ma,
        "command_names_median_s": mb,
        "ratio": ma / mb,
        "target_ratio": TARGET,
    }
    rows = [
        [f"A: complete a step ({args.steps} steps)", ma, min(a), max(a), f"{ma / mb:.2f}x"],
        ["B: complete a command", mb, min(b), max(b), "1.00x"],
    ]
    print(c.table(["what", "median s", "min s", "max s", "ratio"], rows))
    print(f"written: {os.path.relpath(c.write_result(NAME, record))}", file=sys.stderr)
    return 0 if ma / mb <= TARGET else 1


if __name__ == "__main__":
    c.main(bench)
