"""Reading Nix's internal-json log for progress: reproflake's reader against bare parsing.

The recorded real build in tests/unit/fixtures/nix-build-cold.internal-json (828 lines:
four packages fetched, an environment assembled, three steps) is repeated --copies times
(each copy's activity ids shifted, so every copy is a fresh set of activities) and fed,
in this process (time.perf_counter), alternately (A B A B ...), --runs times each (median):

- A: reproflake's reader (executor._LogReader) with the progress renderer
  (commands._progress.Progress) taking every event and every snapshot, as `reproflake
  build` does when standard error is not a terminal (lines go to a list);
- B: the peer, the least any reader must do: `json.loads` of each `@nix` line.

The ratio is A's time over B's (target: under 10x: the reader's cost per line must stay
far below the rate at which Nix writes lines, which the recording shows: ~55 a second).

    python bench/progress_read.py [--copies N] [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import time

from _common import BENCH, main, median, table, write_result

from reproflake import executor
from reproflake.commands._progress import Progress

FIXTURE = BENCH.parent / "tests/unit/fixtures/nix-build-cold.internal-json"


def lines(copies: int) -> list[str]:
    base = FIXTURE.read_text().splitlines(keepends=True)
    ident = re.compile(r'"id":(\d+)')
    out = []
    for copy in range(copies):
        shift = copy * 10_000
        for line in base:
            m = ident.search(line)
            out.append(line if m is None else ident.sub(f'"id":{int(m.group(1)) + shift}', line))
    return out


def reader(feed: list[str]) -> float:
    said: list[str] = []
    progress = Progress(said.append, redraw=False)
    r = executor._LogReader(progress, executor.BuildOutcome(), progress.status)
    start = time.perf_counter()
    for line in feed:
        r.feed(line)
    return time.perf_counter() - start


def bare(feed: list[str]) -> float:
    start = time.perf_counter()
    for line in feed:
        if line.startswith("@nix "):
            json.loads(line[5:])
    return time.perf_counter() - start


def run() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=50)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    copies, runs = (5, 3) if args.quick else (args.copies, args.runs)
    feed = lines(copies)
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        a.append(reader(feed))
        b.append(bare(feed))
    ta, tb = median(a), median(b)
    per_line = ta / len(feed) * 1e6
    print(f"{len(feed)} lines ({copies} copies of the recording), median of {runs} runs")
    print(
        table(
            ["contender", "seconds", "µs per line"],
            [
                ["A reproflake reader + progress", f"{ta:.4f}", f"{per_line:.1f}"],
                ["B json.loads only", f"{tb:.4f}", f"{tb / len(feed) * 1e6:.1f}"],
            ],
        )
    )
    print(f"ratio A/B: {ta / tb:.2f}x (target under 10x)")
    path = write_result(
        "progress_read",
        {"lines": len(feed), "runs": runs, "reader_s": ta, "json_s": tb, "ratio": ta / tb},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    main(run)
