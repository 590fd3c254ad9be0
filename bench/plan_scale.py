"""`reproflake plan` on synthetic projects of 1,000 and 10,000 steps: does it stay fast and linear?

Each project has one environment `base` (debian = []) and N steps; step i needs step i-1
and step i//2 (a chain with fan-in, like a real pipeline) and has one source file
src/s<i>.sh, so plan hashes N source files as in real use. The Debian mirror and suite
come from this host's apt sources (reproflake.lock.aptconfig.default_source()). The
project is locked once (which generates and stages its flake), then whole-process wall
time of `reproflake plan` is timed (median of --runs after one warm-up) in two states:

- (a) nothing built: no .reproflake/cache/state.json, every step "will build";
- (b) everything built: the state a build leaves, written directly instead of building
  N steps (which takes far longer than what is measured): state.json written with
  reproflake.state.save(), each step's components from reproflake.planner.components()
  and, as its output, its own small file added to the Nix store with `nix-store --add`
  (N valid store paths, as after a real build, each kept by a garbage-collector root for
  the run), so every step is "already built" and plan asks the store about N paths.

Each state is timed two ways: computed (the plan's record, .reproflake/cache/plan.json,
removed first: the full path, which then writes the record again) and answered from the
record (checked: it was there and was not rewritten). A plan is recorded only when what
it read has been quiet for reproflake.fsclock.RACY_NS, so the bench waits that long after
writing the project or the records.

Then one source file in the middle (step N//2) is edited and the plan must report
1 will build, N-1-N//2 may build and N//2 already built (checked). After a first plan of
that state (computed, its records written), the file is edited again before each timed
run: the first plan after an edit, brought up to date from the plan's records (checked:
the answer rewritten, the steps' record .reproflake/cache/plan-steps.json left as it
was). After a quiet wait, once more (recorded as quiet) and once from the record. Then
`reproflake graph` of that state, --runs times computed (the plan's records removed
first; graph writes none) and --runs times from the records a plan just wrote.

Peers (same run, alternating with (b)): raw `nix build --dry-run` of the generated
flake's `default` package (every step) with reproflake's nix options: Nix's own answer
to "what would a build do" (it says every step will be built: the outputs in state (b)
were added, not built by these derivations); and `nix eval` of every step's drvPath
(`packages.x86_64-linux` minus `default`). If a peer's warm-up takes longer than
--peer-timeout seconds (default 120) it is skipped for that N, and said so.

With --profile, `python -m cProfile -m reproflake plan` is run once at the largest N in
state (a) computed, in state (b) computed and from the record, and after an edit (brought
up to date); the top 10 functions by cumulative time are printed and longer listings (by
cumulative and by own time) go to bench/out/plan_scale_profile.txt.

    python bench/plan_scale.py [--sizes 1000,10000] [--runs N] [--no-peer] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

NAME = "plan_scale"
TARGET_S = 0.3  # for 10,000 steps
SUMMARY_RE = re.compile(r"summary: (\d+) will build, (\d+) may build .*, (\d+) already built")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated step counts")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each case (default 5)")
    ap.add_argument("--peer-timeout", type=float, default=120.0,
                    help="skip a peer if its warm-up exceeds this (s)")  # fmt: skip
    ap.add_argument("--no-peer", action="store_true", help="do not run the Nix peers")
    ap.add_argument("--profile", action="store_true", help="cProfile plan at the largest N")
    ap.add_argument("--quick", action="store_true", help="3 runs of each")
    return ap.parse_args()


# --------------------------------------------------------------------------- the project


def step_name(i: int, width: int) -> str:
    return f"s{i:0{width}d}"


def spec_text(n: int) -> str:
    from reproflake.lock import aptconfig

    source = aptconfig.default_source()
    if source is None:
        raise c.BenchError("no Debian mirror in this machine's apt sources (see `reproflake init`)")
    width = len(str(n - 1))
    # json.dumps writes a valid TOML basic string (as `reproflake init` does).
    lines = [
        "[project]",
        f'name = "plan-scale-{n}"',
        "",
        "[debian]",
        f"mirror = {json.dumps(source.mirror)}",
        f"suite = {json.dumps(source.suite)}",
        "",
        "[environments.base]",
        "debian = []",
        "",
    ]
    for i in range(n):
        name = step_name(i, width)
        lines += [
            f"[steps.{name}]",
            'env = "base"',
            f"run = 'sh src/{name}.sh > \"$OUT/o.txt\"'",
            f'sources = ["src/{name}.sh"]',
        ]
        needs = sorted({step_name(j, width) for j in (i - 1, i // 2) if 0 <= j < i})
        if needs:
            lines.append("needs = [" + ", ".join(f'"{x}"' for x in needs) + "]")
        lines += ['outputs = ["o.txt"]', ""]
    return "\n".join(lines)


def make_project(parent: Path, n: int) -> Path:
    root = parent / f"p{n}"
    (root / "src").mkdir(parents=True)
    width = len(str(n - 1))
    for i in range(n):
        (root / "src" / f"{step_name(i, width)}.sh").write_text(f"echo {i}\n")
    (root / "reproflake.toml").write_text(spec_text(n))
    (root / ".gitignore").write_text("/results/\n/.reproflake/cache/\n")
    c.run(["git", "init", "-q", str(root)])
    return root


def store_outputs(tmp: Path, n: int) -> list[str]:
    """N small files added to the Nix store, each kept by a garbage-collector root while the
    bench runs: one valid output path per step."""
    d = tmp / f"outputs-{n}"
    d.mkdir()
    files = []
    for i in range(n):
        f = d / f"reproflake-bench-plan-{n}-{i}"
        f.write_text(f"plan_scale: stands in for step {i}'s output\n")
        files.append(str(f))
    paths: list[str] = []
    for start in range(0, n, 2000):  # one command line each
        chunk = files[start : start + 2000]
        added = c.run(["nix-store", "--add", *chunk])[1].stdout.split()
        if len(added) != len(chunk) or not all(
            p.startswith("/nix/store/") and p.endswith(Path(f).name)
            for p, f in zip(added, chunk, strict=True)
        ):
            raise c.BenchError("nix-store --add did not print one store path per file, in order")
        # Garbage-collector roots for the run (indirect, under the temporary directory):
        # a `nix-store --gc` by anyone else on the machine would otherwise take them.
        root = d / "gcroots" / f"chunk-{start}"
        c.run(["nix-store", "--realise", "--add-root", str(root), "--indirect", *added])
        paths += added
    return paths


def write_all_built(root: Path, outputs_in_order: list[str]) -> None:
    from reproflake import planner, state
    from reproflake.commands._project import load_project

    p = load_project(root, lambda _msg: None, write_lock=False)
    outputs = dict(zip(p.graph.order(), outputs_in_order, strict=True))
    built = {
        step: state.Built(outputs[step], planner.components(p.spec, p.lock, p.facts, step, outputs))
        for step in p.graph.order()
    }
    state.save(root, built, {})  # no environment details needed: nothing changes


# --------------------------------------------------------------------------- timing


def counts(stdout: str) -> tuple[int, int, int]:
    m = SUMMARY_RE.search(stdout)
    if m is None:
        raise c.BenchError(f"no summary line in `reproflake plan` output: {stdout[-300:]!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def plan(root: Path, expect: tuple[int, int, int]) -> float:
    secs, proc = c.run(["reproflake", "plan"], cwd=root)
    got = counts(proc.stdout)
    if got != expect:
        raise c.BenchError(f"plan said {got} (will, may, built); expected {expect}")
    return secs


def graph(root: Path, step: str) -> float:
    """`reproflake graph`; the edited step must be marked stale."""
    secs, proc = c.run(["reproflake", "graph"], cwd=root)
    if f"step {step} [stale]" not in proc.stdout:
        raise c.BenchError(f"graph does not mark {step} stale: {proc.stdout[:300]!r}")
    return secs


def _plan_record_name() -> Path:
    from reproflake.commands import _plan_record

    return _plan_record.RECORD


def _steps_record_name() -> Path:
    from reproflake.commands import _plan_delta

    return _plan_delta.STEPS_RECORD


def record_file(root: Path) -> Path:
    from reproflake.commands import _plan_record

    return root / _plan_record.RECORD


def plan_computed(root: Path, expect: tuple[int, int, int]) -> float:
    """The full path: the plan's record removed first (the plan writes it again)."""
    record_file(root).unlink(missing_ok=True)
    secs = plan(root, expect)
    if not record_file(root).is_file():
        raise c.BenchError("plan wrote no record although nothing changed for seconds")
    return secs


def plan_updated(root: Path, expect: tuple[int, int, int]) -> float:
    """Brought up to date after an edit: the answer rewritten, the steps' record not."""
    from reproflake.commands import _plan_delta

    steps_record = root / _plan_delta.STEPS_RECORD
    before = steps_record.stat().st_mtime_ns, record_file(root).stat().st_mtime_ns
    secs = plan(root, expect)
    after = steps_record.stat().st_mtime_ns, record_file(root).stat().st_mtime_ns
    if after[0] != before[0] or after[1] == before[1]:
        raise c.BenchError("plan computed in full after an edit of one source file")
    return secs


def plan_recorded(root: Path, expect: tuple[int, int, int]) -> float:
    """Answered from the record: it must be there before and not rewritten."""
    before = record_file(root).stat().st_mtime_ns
    secs = plan(root, expect)
    if record_file(root).stat().st_mtime_ns != before:
        raise c.BenchError("plan computed again instead of answering from its record")
    return secs


def quiet() -> None:
    """A plan is recorded only when what it read has not changed for RACY_NS."""
    from reproflake.fsclock import RACY_NS

    time.sleep(RACY_NS / 1e9 + 0.2)


def keep_derivations(root: Path, tmp: Path) -> None:
    """A garbage-collector root on the flake's `default` derivation (and so every step's):
    a `nix-store --gc` elsewhere on the machine would otherwise delete the .drv files that
    Nix's evaluation cache still names, and the peers would fail."""
    from reproflake import executor

    drv = c.run(["nix", *c.nix_options(), "eval", "--raw", f"{root}#default.drvPath"], cwd=root)
    link = tmp / f"gcroot-{root.name}-default-drv"
    link.symlink_to(drv[1].stdout.strip())
    executor.add_indirect_root(link)


def eval_argv(root: Path) -> list[str]:
    apply = (
        'ps: map (n: ps.${n}.drvPath) (builtins.attrNames (builtins.removeAttrs ps ["default"]))'
    )
    return [
        "nix", *c.nix_options(), "eval", "--json",
        f"{root}#packages.{c.SYSTEM}", "--apply", apply,
    ]  # fmt: skip


def dry_run_argv(root: Path) -> list[str]:
    return ["nix", *c.nix_options(), "build", "--dry-run", f"{root}#default"]


def peer(argv: list[str], root: Path, n: int, timeout: float) -> float | None:
    """Seconds for one peer command, or None if it ran past ``timeout``."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, cwd=root, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise c.BenchError(f"{argv[-1]}: exit code {proc.returncode}\n{tail}")
    if "--dry-run" in argv:
        # Nix names what it would build: every step (content-addressed, not built by
        # these derivations) and the `default` that gathers them.
        m = re.search(r"these (\d+) derivations will be built", proc.stderr)
        if m is None or int(m.group(1)) < n:
            raise c.BenchError(f"nix build --dry-run did not list {n} steps: {proc.stderr[:300]}")
        return secs
    paths = json.loads(proc.stdout)
    if len(paths) != n or not all(p.endswith(".drv") for p in paths):
        raise c.BenchError(f"nix eval gave {len(paths)} paths for {n} steps")
    return secs


def profile(root: Path, n: int, case: str) -> str:
    """cProfile of one whole `reproflake plan` process: top 40 by cumulative, 25 by own time."""
    with tempfile.NamedTemporaryFile(suffix=".prof") as f:
        c.run([sys.executable, "-m", "cProfile", "-o", f.name, "-m", "reproflake", "plan"],
              cwd=root)  # fmt: skip
        buf = io.StringIO()
        stats = pstats.Stats(f.name, stream=buf)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    return f"=== cProfile of `reproflake plan`, {n} steps, {case}\n{buf.getvalue()}"


# --------------------------------------------------------------------------- one size


def measure(tmp: Path, n: int, runs: int, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    root = make_project(tmp, n)
    gen_s = time.perf_counter() - t0
    lock_s = c.run(["reproflake", "lock"], cwd=root)[0]
    print(f"{n} steps: project written in {gen_s:.1f}s, locked in {lock_s:.1f}s", file=sys.stderr)
    rec: dict[str, Any] = {"steps": n, "lock_s": lock_s}

    # (a) nothing built: computed (the record removed first), then from the record.
    none_built = (n, 0, 0)
    quiet()
    plan(root, none_built)
    rec["plan_none_built_full_s"] = [plan_computed(root, none_built) for _ in range(runs)]
    rec["plan_none_built_s"] = [plan_recorded(root, none_built) for _ in range(runs)]
    profiles = []
    if args.profile and n == max(args.size_list):
        record_file(root).unlink()
        profiles.append(profile(root, n, "(a) nothing built, computed"))

    # (b) everything built, alternating with the peers.
    t0 = time.perf_counter()
    outputs = store_outputs(tmp, n)
    rec["store_add_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_all_built(root, outputs)
    rec["state_write_s"] = time.perf_counter() - t0
    print(f"{n} steps: {n} outputs added to the store in {rec['store_add_s']:.1f}s, "
          f"state written in {rec['state_write_s']:.1f}s", file=sys.stderr)  # fmt: skip
    all_built = (0, 0, n)
    peers = {"dry_run": dry_run_argv(root), "eval": eval_argv(root)} if not args.no_peer else {}
    peer_s: dict[str, list[float]] = {k: [] for k in peers}
    notes = {k: "not run (--no-peer)" for k in ("dry_run", "eval")}
    if peers:
        keep_derivations(root, tmp)
    for name, argv in list(peers.items()):
        warm = peer(argv, root, n, args.peer_timeout)
        if warm is None:
            del peers[name]
            notes[name] = f"skipped: warm-up ran past {args.peer_timeout:.0f}s and was stopped"
        else:
            notes[name] = f"warm-up {warm:.1f}s"
        print(f"{n} steps: peer {name}: {notes[name]}", file=sys.stderr)
    quiet()
    plan(root, all_built)
    built_s: list[float] = []
    built_full_s: list[float] = []
    for _ in range(runs):
        built_full_s.append(plan_computed(root, all_built))
        built_s.append(plan_recorded(root, all_built))
        for name, argv in peers.items():
            secs = peer(argv, root, n, args.peer_timeout)
            if secs is None:
                raise c.BenchError(f"{name} ran past {args.peer_timeout:.0f}s after its warm-up")
            peer_s[name].append(secs)
    rec["plan_all_built_s"] = built_s
    rec["plan_all_built_full_s"] = built_full_s
    for name in ("dry_run", "eval"):
        rec[f"peer_{name}_s"] = peer_s.get(name, [])
        rec[f"peer_{name}_note"] = notes[name]

    if profiles:
        record_file(root).unlink()
        profiles.append(profile(root, n, "(b) everything built, computed"))
        profiles.append(profile(root, n, "(b) everything built, from the record"))
        c.OUT_DIR.mkdir(parents=True, exist_ok=True)
        (c.OUT_DIR / f"{NAME}_profile.txt").write_text("\n".join(profiles))
        rec["profile"] = profiles

    # One source edited in the middle: 1 will, everything after it may, the rest built.
    # Each run edits it again: the first plan after an edit, brought up to date from the
    # plan's records (checked: the steps' record is left as it was, the answer rewritten).
    mid = n // 2
    width = len(str(n - 1))
    src = root / "src" / f"{step_name(mid, width)}.sh"
    expect = (1, n - 1 - mid, mid)
    src.write_text(src.read_text() + "echo edited\n")
    quiet()
    plan(root, expect)  # computed (the warm-up), its records written
    edit_s = []
    for i in range(runs):
        src.write_text(src.read_text() + f"echo edit {i}\n")
        edit_s.append(plan_updated(root, expect))
    rec["plan_one_edit_s"] = edit_s
    rec["plan_one_edit_median_s"] = c.median(edit_s)
    if profiles:
        src.write_text(src.read_text() + "echo profiled\n")
        profiles.append(profile(root, n, "one edit, brought up to date"))
        (c.OUT_DIR / f"{NAME}_profile.txt").write_text("\n".join(profiles))
        rec["profile"] = profiles
    quiet()
    plan(root, expect)  # the edit is no longer recent: recorded as it is
    rec["plan_one_edit_recorded_s"] = plan_recorded(root, expect)
    _, proc = c.run(["reproflake", "plan", step_name(mid, width)], cwd=root)
    if f"src/{step_name(mid, width)}.sh changed" not in proc.stdout:
        raise c.BenchError(f"plan does not name the edited file: {proc.stdout[:300]!r}")
    rec["one_edit_counts"] = list(expect)

    # `reproflake graph` (text) of the same state: computed (the plan's records removed
    # before each run: graph writes none) and from the records a plan just wrote.
    graph_full: list[float] = []
    for _ in range(runs):
        for name in (_plan_record_name(), _steps_record_name()):
            (root / name).unlink(missing_ok=True)
        graph_full.append(graph(root, step_name(mid, width)))
    plan(root, expect)  # the records, for the graph to read
    graph_records = [graph(root, step_name(mid, width)) for _ in range(runs)]
    rec["graph_full_median_s"] = c.median(graph_full)
    rec["graph_records_median_s"] = c.median(graph_records)

    rec["plan_none_built_median_s"] = c.median(rec["plan_none_built_s"])
    rec["plan_all_built_median_s"] = c.median(built_s)
    rec["plan_none_built_full_median_s"] = c.median(rec["plan_none_built_full_s"])
    rec["plan_all_built_full_median_s"] = c.median(built_full_s)
    for name in ("dry_run", "eval"):
        xs = rec[f"peer_{name}_s"]
        rec[f"peer_{name}_median_s"] = c.median(xs) if xs else None
    return rec


def bench() -> int:
    args = parse_args()
    c.require_tools("nix", "nix-store", "reproflake", "git")
    runs = 3 if args.quick else max(1, args.runs)
    args.size_list = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    from reproflake.commands._plan import ASK_NIX_UP_TO

    # Fewer steps without a record and plan asks Nix about them (never recorded): (a) would
    # measure something else.
    if not args.size_list or min(args.size_list) <= ASK_NIX_UP_TO:
        c.die(f"--sizes: give step counts above {ASK_NIX_UP_TO}, e.g. 1000,10000")
    results = []
    with c.temp_dir(NAME) as tmp:
        for n in args.size_list:
            results.append(measure(tmp, n, runs, args))

    rows = []
    for r in results:
        b, bf = r["plan_all_built_median_s"], r["plan_all_built_full_median_s"]
        dry, ev = r["peer_dry_run_median_s"], r["peer_eval_median_s"]
        rows.append([
            r["steps"], r["plan_none_built_full_median_s"], r["plan_none_built_median_s"], bf, b,
            r["plan_one_edit_median_s"], r["plan_one_edit_recorded_s"],
            "skipped" if dry is None else dry, "" if dry is None else f"{b / dry:.3f}x",
            "" if dry is None else f"{bf / dry:.3f}x",
            "skipped" if ev is None else ev, "" if ev is None else f"{b / ev:.3f}x",
            r["lock_s"],
        ])  # fmt: skip
    print(c.table(["steps", "(a) computed s", "(a) record s", "(b) computed s", "(b) record s",
                   "one edit, updated s", "after it, record s", "nix build --dry-run s",
                   "(b) record/dry-run", "(b) computed/dry-run", "nix eval s",
                   "(b) record/eval", "lock s"], rows))  # fmt: skip
    record: dict[str, Any] = {"runs": runs, "launcher": c.launcher(), "target_s": TARGET_S,
                              "sizes": [{k: v for k, v in r.items() if k != "profile"}
                                        for r in results]}  # fmt: skip
    if len(results) >= 2:
        lo, hi = results[0], results[-1]
        scale = hi["steps"] / lo["steps"]
        for case in ("plan_none_built_median_s", "plan_all_built_median_s",
                     "plan_none_built_full_median_s", "plan_all_built_full_median_s"):  # fmt: skip
            ratio = hi[case] / lo[case]
            per_step_us = (hi[case] - lo[case]) / (hi["steps"] - lo["steps"]) * 1e6
            record[f"ratio_{case}"] = ratio
            record[f"per_step_us_{case}"] = per_step_us
            print(f"{case}: {hi['steps']}/{lo['steps']} ratio {ratio:.2f} (steps x{scale:.0f}); "
                  f"{per_step_us:.0f} us per extra step")  # fmt: skip
    for r in results:
        print(f"{r['steps']} steps: nix build --dry-run {r['peer_dry_run_note']}; "
              f"nix eval {r['peer_eval_note']}")  # fmt: skip
    big = results[-1]
    if big["steps"] >= 10000:
        for how, suffix in (("from the record", ""), ("computed", "_full")):
            worst = max(big[f"plan_none_built{suffix}_median_s"],
                        big[f"plan_all_built{suffix}_median_s"])  # fmt: skip
            verdict = "meets" if worst < TARGET_S else "misses"
            print(f"{big['steps']} steps, {how}: slowest case {worst:.2f}s "
                  f"({verdict} the {TARGET_S}s target)")  # fmt: skip
        print(f"{big['steps']} steps, graph: computed {big['graph_full_median_s']:.3f}s, "
              f"from the plan's records {big['graph_records_median_s']:.3f}s")  # fmt: skip
        edit = big["plan_one_edit_median_s"]
        verdict = "meets" if edit < TARGET_S else "misses"
        print(f"{big['steps']} steps, first plan after an edit (brought up to date): "
              f"{edit:.2f}s ({verdict} the {TARGET_S}s target)")  # fmt: skip
    for text in big.get("profile", []):
        print(text.splitlines()[0].replace("===", "top 10 by cumulative time (wrappers left out):"))
        print(top_lines(text, 10))
    if "profile" in big:
        print(f"full profiles (also by own time): {c.OUT_DIR / (NAME + '_profile.txt')}")
    print(f"runs: {runs} each after one warm-up; `reproflake` on PATH: {record['launcher']}")
    print(f"wrote {c.write_result(NAME, record)}")
    return 0


# Frames that wrap the whole command (interpreter, runpy, click): 100% each, no information.
WRAPPERS = re.compile(r"builtins\.exec|<string>|runpy|/click/|reproflake/(__main__|cli)\.py")


def top_lines(text: str, k: int) -> str:
    """The header and first ``k`` rows of the first listing in ``text``, wrappers left out."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls")), None)
    if start is None:
        return text
    rows = []
    for ln in lines[start + 1 :]:
        if not ln.strip():
            break
        if not WRAPPERS.search(ln):
            rows.append(ln)
    return "\n".join([lines[start], *rows[:k]])


if __name__ == "__main__":
    c.main(bench)
