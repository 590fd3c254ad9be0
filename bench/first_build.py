"""First build and one-edit rebuild of a pipeline: reproflake against DVC, Snakemake and raw Nix.

The pipeline: N trivial steps in chains of 10 (N=100: 10 chains of 10). Step i of chain c
writes what step i-1 wrote plus one line "c-i TAG"; TAG is new in every run, so each run is
a true first build (nothing of it is in the Nix store, DVC's run cache or Snakemake's
metadata). The same pipeline is written four ways, each run in the same process run,
alternating (the order rotates from run to run):

- reproflake: one environment `base` (Debian's Essential set, realised once before timing,
  as the peers' tools are installed before timing) and N steps; timed: `reproflake build`
  (default parallelism: one step per core).
- raw Nix: a flake with N input-addressed derivations built by the same static busybox,
  and one derivation that needs them all; timed: `nix <reproflake's options> build
  .#default --no-link --max-jobs J`, J = the core count (as reproflake).
- DVC: `dvc init --no-scm` and a dvc.yaml of N stages; timed: `dvc repro`.
- Snakemake: a Snakefile of N rules and `all`; timed: `snakemake --cores J`.

After each first build one step is edited (chain 0, step 5: its line changes), so it and
the 4 after it rebuild (checked); that rebuild is timed too. DVC and Snakemake run only at
--peer-sizes (default 100). They are installed (pinned versions) into a scratch virtual
environment under the user's cache directory, never into reproflake's own dependencies.

Targets (at 100 steps): first build faster than DVC and within 3x raw Nix; per-step cost
flat from 10 to 1,000 steps; the one-edit rebuild at most Snakemake's time.

    python bench/first_build.py [--sizes 10,100,1000] [--peer-sizes 100] [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as c

NAME = "first_build"
PEERS = {"dvc": "3.67.1", "snakemake": "9.27.1"}
CHAIN = 10
EDITED = (0, 5)  # chain, step: this step and the CHAIN-1-5 after it rebuild
TARGET_DVC = 1.0  # reproflake / DVC, first build: below this
TARGET_NIX = 3.0  # reproflake / raw Nix, first build: at most this
TARGET_SNAKEMAKE = 1.0  # reproflake / Snakemake, one-edit rebuild: at most this
SUMMARY_RE = re.compile(r"summary: (\d+) built, (\d+) already built")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000", help="step counts (default 10,100,1000)")
    ap.add_argument("--peer-sizes", default="100", help="sizes DVC and Snakemake also run at")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    ap.add_argument("--jobs", type=int, default=0, help="parallel steps (default: cores)")
    ap.add_argument("--quick", action="store_true", help="1 run, sizes 10,100")
    return ap.parse_args()


def steps_of(n: int) -> list[tuple[int, int]]:
    """(chain, index) of every step, in chains of CHAIN."""
    return [(i // CHAIN, i % CHAIN) for i in range(n)]


def name(chain: int, i: int) -> str:
    return f"c{chain}s{i}"


def line(chain: int, i: int, tag: str) -> str:
    """What step (chain, i) appends; the edited step's line differs after the edit."""
    return f"{chain}-{i} {tag}"


# --------------------------------------------------------------------------- the four tools


class Tool:
    name = ""

    def first(self, tag: str) -> float:
        raise NotImplementedError

    def edit(self, tag: str) -> float:
        """Rebuild after EDITED's line changed to `tag`-edited; checks what rebuilt."""
        raise NotImplementedError


class Reproflake(Tool):
    name = "reproflake build"

    def __init__(self, parent: Path, n: int) -> None:
        from reproflake.lock import aptconfig

        source = aptconfig.default_source()
        if source is None:
            raise c.BenchError("no Debian mirror in this machine's apt sources")
        self.n = n
        self.root = parent / "reproflake"
        self.root.mkdir()
        self.header = [
            "[project]", f'name = "first-build-{n}"', "",
            "[debian]", f"mirror = {json.dumps(source.mirror)}",
            f"suite = {json.dumps(source.suite)}", "",
            "[environments.base]", "debian = []", "",
        ]  # fmt: skip
        (self.root / ".gitignore").write_text("/results/\n/.reproflake/cache/\n")
        c.run(["git", "init", "-q", str(self.root)])
        self.write("warm-up", None)
        c.run(["reproflake", "lock"], cwd=self.root)
        # The environment (and one step) before timing, as the peers are installed before.
        c.run(["reproflake", "build", name(0, 0)], cwd=self.root)

    def write(self, tag: str, edited: str | None) -> None:
        lines = list(self.header)
        for chain, i in steps_of(self.n):
            text = edited if edited is not None and (chain, i) == EDITED else line(chain, i, tag)
            if i == 0:
                run = f"echo '{text}' > \"$OUT/o.txt\""
            else:
                run = (
                    f"{{ cat results/{name(chain, i - 1)}/o.txt; echo '{text}'; }} > \"$OUT/o.txt\""
                )
            lines += [f"[steps.{name(chain, i)}]", 'env = "base"', f"run = {json.dumps(run)}"]
            if i:
                lines.append(f'needs = ["{name(chain, i - 1)}"]')
            lines += ['outputs = ["o.txt"]', ""]
        (self.root / "reproflake.toml").write_text("\n".join(lines))

    def build(self, expect: int) -> float:
        secs, proc = c.run(["reproflake", "build"], cwd=self.root)
        m = SUMMARY_RE.search(proc.stdout)
        if not m or int(m.group(1)) != expect:
            raise c.BenchError(f"reproflake built {m and m.group(1)} steps, expected {expect}")
        return secs

    def first(self, tag: str) -> float:
        self.tag = tag
        self.write(tag, None)
        return self.build(self.n)

    def edit(self, tag: str) -> float:
        self.write(self.tag, line(*EDITED, tag + "-edited"))
        return self.build(CHAIN - EDITED[1])


RAW_FLAKE = """\
{
  outputs = { self }:
    let
      system = "x86_64-linux";
      seed = builtins.path { path = ./seed; name = "seed"; };
      data = builtins.fromJSON (builtins.readFile ./steps.json);
      step = name: s: derivation {
        inherit name system;
        builder = "${seed}/busybox";
        args = [ "sh" "-ec" "mkdir $out; { if [ -n \\"$prev\\" ]; then cat $prev/o.txt; fi; echo \\"$text\\"; } > $out/o.txt" ];
        text = s.text;
        prev = if s.prev == null then "" else steps.${s.prev};
      };
      steps = builtins.mapAttrs step data;
    in {
      packages.${system} = steps // {
        default = derivation {
          name = "all";
          inherit system;
          builder = "${seed}/busybox";
          args = [ "sh" "-c" "mkdir $out" ];
          steps = builtins.attrValues steps;
        };
      };
    };
}
"""


class RawNix(Tool):
    name = "raw nix build"

    def __init__(self, parent: Path, n: int, seed: Path, jobs: int) -> None:
        self.n = n
        self.jobs = jobs
        self.root = parent / "nix"
        (self.root / "seed").mkdir(parents=True)
        shutil.copy2(seed, self.root / "seed" / "busybox")
        (self.root / "flake.nix").write_text(RAW_FLAKE)
        self.write("warm-up", None)
        c.run(["git", "init", "-q", str(self.root)])
        c.run(["git", "add", "-A"], cwd=self.root)

    def write(self, tag: str, edited: str | None) -> None:
        data = {
            name(chain, i): {
                "text": edited if edited is not None and (chain, i) == EDITED else line(chain, i, tag),
                "prev": name(chain, i - 1) if i else None,
            }
            for chain, i in steps_of(self.n)
        }  # fmt: skip
        (self.root / "steps.json").write_text(json.dumps(data, sort_keys=True))

    def build(self) -> float:
        argv = ["nix", *c.nix_options(), "build", ".#default", "--no-link",
                "--max-jobs", str(self.jobs)]  # fmt: skip
        return c.run(argv, cwd=self.root)[0]

    def check(self, chain: int, expect: str) -> None:
        argv = ["nix", *c.nix_options(), "eval", "--raw", f".#{name(chain, CHAIN - 1)}.outPath"]
        path = c.run(argv, cwd=self.root)[1].stdout.strip()
        if expect not in Path(path, "o.txt").read_text():
            raise c.BenchError(f"raw Nix: {path}/o.txt lacks {expect!r}")

    def first(self, tag: str) -> float:
        self.tag = tag
        self.write(tag, None)
        return self.build()

    def edit(self, tag: str) -> float:
        self.write(self.tag, line(*EDITED, tag + "-edited"))
        secs = self.build()
        if self.n >= CHAIN:
            self.check(EDITED[0], tag + "-edited")
        return secs


class Dvc(Tool):
    name = "dvc repro"

    def __init__(self, parent: Path, n: int, bin_dir: Path) -> None:
        self.n = n
        self.parent = parent
        self.dvc = str(bin_dir / "dvc")
        self.runs = 0

    def write(self, tag: str, edited: str | None) -> None:
        stages = {}
        for chain, i in steps_of(self.n):
            text = edited if edited is not None and (chain, i) == EDITED else line(chain, i, tag)
            out = f"out/{name(chain, i)}.txt"
            if i:
                prev = f"out/{name(chain, i - 1)}.txt"
                stage = {"cmd": f"{{ cat {prev}; echo '{text}'; }} > {out}", "deps": [prev]}
            else:
                stage = {"cmd": f"echo '{text}' > {out}"}
            stages[name(chain, i)] = {**stage, "outs": [out]}
        # JSON is YAML.
        (self.root / "dvc.yaml").write_text(json.dumps({"stages": stages}, indent=1))

    def first(self, tag: str) -> float:
        self.runs += 1
        self.root = self.parent / f"dvc{self.runs}"
        (self.root / "out").mkdir(parents=True)
        c.run([self.dvc, "init", "--no-scm", "-q"], cwd=self.root)
        self.tag = tag
        self.write(tag, None)
        return c.run([self.dvc, "repro"], cwd=self.root)[0]

    def edit(self, tag: str) -> float:
        self.write(self.tag, line(*EDITED, tag + "-edited"))
        secs, proc = c.run([self.dvc, "repro"], cwd=self.root)
        check_rebuilt(self.root / "out" / f"{name(EDITED[0], CHAIN - 1)}.txt", tag, "DVC")
        ran = len(re.findall(r"^Running stage", proc.stdout, re.M))
        if ran != CHAIN - EDITED[1]:
            raise c.BenchError(f"dvc repro ran {ran} stages, expected {CHAIN - EDITED[1]}")
        return secs


class Snakemake(Tool):
    name = "snakemake"

    def __init__(self, parent: Path, n: int, bin_dir: Path, jobs: int) -> None:
        self.n = n
        self.parent = parent
        self.snakemake = str(bin_dir / "snakemake")
        self.jobs = jobs
        self.runs = 0

    def write(self, tag: str, edited: str | None) -> None:
        ends = [f"out/{name(ch, i)}.txt" for ch, i in steps_of(self.n) if i == CHAIN - 1 or
                (ch, i) == steps_of(self.n)[-1]]  # fmt: skip
        rules = ["rule all:", f"    input: {json.dumps(sorted(set(ends)))}", ""]
        for chain, i in steps_of(self.n):
            text = edited if edited is not None and (chain, i) == EDITED else line(chain, i, tag)
            rules += [f"rule {name(chain, i)}:"]
            if i:
                rules += [f'    input: "out/{name(chain, i - 1)}.txt"']
                shell = f"{{{{ cat {{input}}; echo '{text}'; }}}} > {{output}}"
            else:
                shell = f"echo '{text}' > {{output}}"
            rules += [
                f'    output: "out/{name(chain, i)}.txt"',
                f"    shell: {json.dumps(shell)}",
                "",
            ]
        (self.root / "Snakefile").write_text("\n".join(rules))

    def run(self) -> tuple[float, str]:
        argv = [self.snakemake, "--cores", str(self.jobs), "--quiet", "rules"]
        secs, proc = c.run(argv, cwd=self.root)
        return secs, proc.stdout + proc.stderr

    def first(self, tag: str) -> float:
        self.runs += 1
        self.root = self.parent / f"snakemake{self.runs}"
        self.root.mkdir()
        self.tag = tag
        self.write(tag, None)
        return self.run()[0]

    def edit(self, tag: str) -> float:
        self.write(self.tag, line(*EDITED, tag + "-edited"))
        secs, _log = self.run()
        check_rebuilt(self.root / "out" / f"{name(EDITED[0], CHAIN - 1)}.txt", tag, "Snakemake")
        return secs


def check_rebuilt(last: Path, tag: str, who: str) -> None:
    if f"{tag}-edited" not in last.read_text():
        raise c.BenchError(f"{who}: {last} was not rebuilt after the edit")


# --------------------------------------------------------------------------- running


def peers_venv() -> Path:
    """DVC and Snakemake, pinned, in a scratch virtual environment (made once, then reused)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = "-".join(f"{k}{v}" for k, v in sorted(PEERS.items()))
    root = cache / "reproflake" / f"bench-peers-{tag}"
    bin_dir = root / "bin"
    if not (bin_dir / "dvc").exists() or not (bin_dir / "snakemake").exists():
        print(f"installing {', '.join(f'{k} {v}' for k, v in PEERS.items())} into {root} …",
              file=sys.stderr)  # fmt: skip
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        pins = [f"{k}=={v}" for k, v in sorted(PEERS.items())]
        c.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", *pins])
    return bin_dir


def seed_of(root: Path) -> Path:
    return root / ".reproflake" / "seed" / "busybox"


def bench() -> int:
    args = parse_args()
    c.require_tools("nix", "reproflake", "git")
    sizes = [10, 100] if args.quick else [int(s) for s in args.sizes.split(",")]
    peer_sizes = {int(s) for s in args.peer_sizes.split(",") if s}
    runs = 1 if args.quick else max(1, args.runs)
    from reproflake.executor import default_jobs

    jobs = args.jobs or default_jobs()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("warning: PYTHONDONTWRITEBYTECODE is set: Python tools (reproflake, DVC, "
              "Snakemake) recompile their imports on every run", file=sys.stderr)  # fmt: skip
    bin_dir = peers_venv() if peer_sizes & set(sizes) else None
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    with c.temp_dir(NAME) as tmp:
        for n in sizes:
            parent = tmp / f"n{n}"
            parent.mkdir()
            rf = Reproflake(parent, n)
            tools: list[Tool] = [rf, RawNix(parent, n, seed_of(rf.root), jobs)]
            if bin_dir is not None and n in peer_sizes:
                tools += [Dvc(parent, n, bin_dir), Snakemake(parent, n, bin_dir, jobs)]
                # One untimed run each, so their first timed run is not their first start.
                for tool in tools[2:]:
                    tool.first("warm-up")
            times = {t.name: {"first": [], "edit": []} for t in tools}
            for r in range(runs):
                for tool in tools[r % len(tools) :] + tools[: r % len(tools)]:
                    tag = secrets.token_hex(6)
                    times[tool.name]["first"].append(tool.first(tag))
                    times[tool.name]["edit"].append(tool.edit(tag))
                print(f"{n} steps, run {r + 1}/{runs}: " + ", ".join(
                    f"{k} {v['first'][-1]:.2f}s/{v['edit'][-1]:.2f}s" for k, v in times.items()),
                    file=sys.stderr)  # fmt: skip
            results[n] = times
    report(results, runs, jobs)
    return 0


def report(results: dict[int, dict[str, dict[str, list[float]]]], runs: int, jobs: int) -> None:
    med: Callable[[list[float]], float] = c.median
    rows = []
    for n, times in results.items():
        ours = med(times[Reproflake.name]["first"])
        for tool, t in times.items():
            m = med(t["first"])
            rows.append([n, tool, m, min(t["first"]), max(t["first"]), f"{m / n * 1000:.1f}",
                         f"{ours / m:.2f}x"])  # fmt: skip
    print(c.table(["steps", "first build", "median s", "min s", "max s", "ms/step",
                   "reproflake/this"], rows))  # fmt: skip
    print()
    rows = []
    for n, times in results.items():
        ours = med(times[Reproflake.name]["edit"])
        for tool, t in times.items():
            m = med(t["edit"])
            rows.append([n, tool, m, min(t["edit"]), max(t["edit"]), f"{ours / m:.2f}x"])
    print(c.table(["steps", f"one edit, {CHAIN - EDITED[1]} rebuild", "median s", "min s",
                   "max s", "reproflake/this"], rows))  # fmt: skip
    record: dict[str, Any] = {
        "runs": runs,
        "jobs": jobs,
        "peers": PEERS,
        "results": {str(n): t for n, t in results.items()},
        "medians": {
            str(n): {tool: {k: med(v) for k, v in t.items()} for tool, t in times.items()}
            for n, times in results.items()
        },
    }
    verdicts = []
    for n, times in results.items():
        ours = med(times[Reproflake.name]["first"])
        nix = med(times[RawNix.name]["first"])
        verdicts.append(f"{n} steps: {ours / nix:.2f}x raw Nix (target <= {TARGET_NIX}x)")
        if Dvc.name in times:
            dvc = med(times[Dvc.name]["first"])
            verdicts.append(f"{n} steps: {ours / dvc:.2f}x DVC (target < {TARGET_DVC}x)")
        if Snakemake.name in times:
            edit = med(times[Reproflake.name]["edit"]) / med(times[Snakemake.name]["edit"])
            verdicts.append(f"{n} steps: one edit {edit:.2f}x Snakemake "
                            f"(target <= {TARGET_SNAKEMAKE}x)")  # fmt: skip
    per_step = {n: med(t[Reproflake.name]["first"]) / n * 1000 for n, t in results.items()}
    verdicts.append(
        "reproflake ms/step: " + ", ".join(f"{n}: {v:.1f}" for n, v in per_step.items())
    )
    record["verdicts"] = verdicts
    print("\n".join(verdicts))
    print(f"wrote {c.write_result(NAME, record)}")


if __name__ == "__main__":
    c.main(bench)
