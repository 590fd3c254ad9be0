"""Cold toolchain realisation: fetch an environment's .debs and wheels and assemble its root.

In a fresh project from the python template, after `reproflake lock`, the environment's
root filesystem and every package file it is built from are deleted from the Nix store;
then `nix build .#legacyPackages.x86_64-linux.environments.py` is timed with the options
reproflake passes to nix. Files whose locked URL is file:// (a local mirror) cannot be
fetched from inside Nix's sandbox; reproflake puts them into the store itself before it
builds (executor.ensure_in_store), so that is timed too, separately.

Peer: the same .deb URLs downloaded with urllib (and sha256-checked) in the same run, one
at a time; and the same over one kept-alive HTTP connection (one DNS lookup in all), which
shows how much of either side is name resolution rather than transfer. A probe of 50 DNS
lookups of the mirror's host (its name is not recorded) shows whether lookups stall here.

    python bench/toolchain_cold.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _common as c

NAME = "toolchain_cold"
MB = 1e6


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="cold realisations to time (default 3)")
    ap.add_argument("--quick", action="store_true", help="one run, no fetch/assemble split")
    ap.add_argument("--env", default="py", help="environment of the python template (default py)")
    return ap.parse_args()


class Env:
    """What one environment of a locked, generated project needs in the store."""

    def __init__(self, root: Path, env_name: str) -> None:
        from reproflake.commands._project import generate, load_project, store_items

        self.root = root
        self.project = load_project(root, lambda _msg: None)
        generate(self.project)  # flake.nix and its data, staged in git
        lock = self.project.lock
        if env_name not in lock.environments:
            raise c.BenchError(
                f"no environment {env_name!r} in the lock (have: {', '.join(lock.environments)})"
            )
        env = lock.environments[env_name]
        self.debs = [lock.debs[k] for k in env.debs]
        self.wheels = [lock.wheels[k] for k in env.wheels]
        names = {*env.debs, *env.wheels}
        whats = {f"Debian package {k}" for k in env.debs} | {f"wheel {k}" for k in env.wheels}
        self.local_items = [i for i in store_items(self.project) if i.what in whats]
        self.attr = f"{root}#legacyPackages.{c.SYSTEM}.environments.{env_name}"
        opts = c.nix_options()
        self.drv = c.run(["nix", *opts, "path-info", "--derivation", self.attr], cwd=root)[
            1
        ].stdout.strip()
        self.out = c.run(["nix-store", "-q", "--outputs", self.drv])[1].stdout.split()
        closure = c.run(["nix-store", "-qR", self.drv])[1].stdout.split()
        self.fetch_drvs = sorted(d for d in closure if _store_name(d).removesuffix(".drv") in names)
        if len(self.fetch_drvs) != len(names):
            raise c.BenchError(
                f"found {len(self.fetch_drvs)} fetch derivations for {len(names)} locked files"
            )
        self.fetch_outs = c.run(["nix-store", "-q", "--outputs", *self.fetch_drvs])[
            1
        ].stdout.split()

    def deb_bytes(self) -> int:
        return sum(d.size for d in self.debs)

    def wheel_bytes(self) -> int:
        total = 0
        for w in self.wheels:
            if w.url.startswith("file://"):
                total += os.path.getsize(w.url[len("file://") :])
            else:  # no size in the lock: measure the fetched file (valid after a build)
                out = next(o for o in self.fetch_outs if _store_name(o) == w.key)
                total += os.path.getsize(out)
        return total

    def make_cold(self, attempts: int = 20) -> int:
        """Delete the root and its package files, and the unrooted .drv files that name them.

        Content-addressed steps are "resolved" before they build: Nix writes a .drv that
        names the environment's output directly, and while such a file is in the store the
        output counts as alive. Those .drv files are recreated on the next build; anything
        else that refers to these paths (a rooted build result) stops the benchmark. A path
        held by another Nix process's temporary root (a build running beside this one) is
        retried a few seconds later. Returns how many waits that took.
        """
        paths = self.out + self.fetch_outs
        for waited in range(attempts):
            valid = sorted(set(paths) - _invalid(paths))
            if not valid:
                return waited
            closure = c.run(["nix-store", "-q", "--referrers-closure", *valid])[1].stdout.split()
            others = sorted(p for p in closure if p not in paths and not p.endswith(".drv"))
            if others:
                raise c.BenchError(
                    f"{len(others)} other store path(s) refer to the environment, e.g. "
                    f"{others[0]}; delete them (or their GC roots) first"
                )
            _secs, proc = c.run(["nix-store", "--delete", *closure], check=False)
            still = sorted(set(valid) - _invalid(valid))
            if not still:
                return waited
            roots = c.run(["nix-store", "-q", "--roots", *still], check=False)[1].stdout
            held = [r for r in roots.splitlines() if r.strip()]
            if held and all(r.startswith("{temp:") for r in held):
                time.sleep(3)
                continue
            raise c.BenchError(
                f"{len(still)} store path(s) could not be deleted, e.g. {still[0]}:\n"
                f"{proc.stderr.strip()[-800:]}\nGC roots:\n{roots.strip() or '(none)'}"
            )
        raise c.BenchError(
            f"other Nix processes kept the environment's paths alive for {3 * attempts}s; "
            "run the benchmark when no other build uses this environment"
        )

    def add_local(self) -> float:
        from reproflake import executor

        start = time.perf_counter()
        executor.ensure_in_store(self.local_items)
        return time.perf_counter() - start

    def build(self, installables: list[str]) -> float:
        argv = ["nix", *c.nix_options(), "build", *installables, "--no-link"]
        return c.run(argv, cwd=self.root)[0]


def _store_name(path: str) -> str:
    return path.rsplit("/", 1)[-1].split("-", 1)[1]


def _invalid(paths: list[str]) -> set[str]:
    if not paths:
        return set()
    out = c.run(["nix-store", "--check-validity", "--print-invalid", *paths])[1].stdout
    return set(out.split())


def urllib_fetch(urls_and_hashes: list[tuple[str, str]], dest: Path) -> float:
    """Download each URL to a file and check its sha256, one at a time."""
    start = time.perf_counter()
    for i, (url, sha256) in enumerate(urls_and_hashes):
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=120) as resp, open(dest / f"{i}.deb", "wb") as f:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != sha256:
            raise c.BenchError(f"sha256 mismatch downloading {url.rsplit('/', 1)[-1]}")
    return time.perf_counter() - start


def keepalive_fetch(urls_and_hashes: list[tuple[str, str]], dest: Path) -> float:
    """The same downloads over one kept-alive connection per host: one DNS lookup in all."""
    conns: dict[tuple[str, str], http.client.HTTPConnection] = {}
    start = time.perf_counter()
    try:
        for i, (url, sha256) in enumerate(urls_and_hashes):
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc)
            if key not in conns:
                cls = (
                    http.client.HTTPSConnection
                    if parts.scheme == "https"
                    else http.client.HTTPConnection
                )
                conns[key] = cls(parts.netloc, timeout=120)
            conn = conns[key]
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise c.BenchError(f"HTTP {resp.status} for {url.rsplit('/', 1)[-1]}")
            if hashlib.sha256(data).hexdigest() != sha256:
                raise c.BenchError(f"sha256 mismatch downloading {url.rsplit('/', 1)[-1]}")
            (dest / f"{i}.deb").write_bytes(data)
    finally:
        for conn in conns.values():
            conn.close()
    return time.perf_counter() - start


def dns_probe(urls: list[str], lookups: int = 50) -> dict[str, Any]:
    """How often resolving the mirror's host name stalls here (the name is not recorded)."""
    hosts = sorted({urlsplit(u).hostname or "" for u in urls} - {""})
    if not hosts:
        return {"lookups": 0}
    times = []
    for _ in range(lookups):
        start = time.perf_counter()
        with contextlib.suppress(OSError):
            socket.getaddrinfo(hosts[0], 80, proto=socket.IPPROTO_TCP)
        times.append(time.perf_counter() - start)
    slow = [t for t in times if t > 1.0]
    return {
        "lookups": lookups,
        "over_1s": len(slow),
        "slow_s": [round(t, 2) for t in slow],
        "median_ms": round(c.median(times) * 1000, 2),
    }


def bench() -> int:
    args = parse_args()
    c.require_tools("nix", "nix-store", "reproflake", "git")
    runs = 1 if args.quick else max(1, args.runs)
    with c.temp_dir(NAME) as tmp:
        root = c.new_project(tmp, "python")
        lock_secs = c.run(["reproflake", "lock"], cwd=root)[0]
        env = Env(root, args.env)
        http = [(d.url, d.sha256) for d in env.debs if not d.url.startswith("file://")]
        schemes = sorted(
            {c.url_scheme(d.url) for d in env.debs} | {c.url_scheme(w.url) for w in env.wheels}
        )
        local = [i.what for i in env.local_items]
        print(
            f"environment {args.env}: {len(env.debs)} .debs, {len(env.wheels)} wheels; "
            f"URL schemes: {', '.join(schemes)}; locked in {lock_secs:.1f}s",
            file=sys.stderr,
        )
        if local:
            print(f"file:// (local mirror) files put in the store by reproflake: {', '.join(local)}",
                  file=sys.stderr)  # fmt: skip

        waits = 0
        realise: list[dict[str, float]] = []
        peer: list[float] = []
        keepalive: list[float] = []
        for i in range(runs):
            # Alternate which goes first so a caching mirror favours neither.
            order = ("nix", "urllib", "keepalive")
            for who in order if i % 2 == 0 else reversed(order):
                if who == "nix":
                    waits += env.make_cold()
                    add = env.add_local()
                    secs = env.build([env.attr])
                    realise.append({"local_add_s": add, "nix_build_s": secs, "total_s": add + secs})
                    print(
                        f"run {i + 1}: nix build {secs:.2f}s (+ local add {add:.2f}s)",
                        file=sys.stderr,
                    )
                else:
                    fetch_fn = urllib_fetch if who == "urllib" else keepalive_fetch
                    with c.temp_dir(who) as dest:
                        secs = fetch_fn(http, dest)
                    (peer if who == "urllib" else keepalive).append(secs)
                    print(f"run {i + 1}: {who} {secs:.2f}s", file=sys.stderr)
        dns = dns_probe([u for u, _ in http])

        split: dict[str, float] | None = None
        if not args.quick:
            # One more cold run in two parts: the fetch derivations alone, then the root.
            waits += env.make_cold()
            add = env.add_local()
            fetch = env.build(env.fetch_drvs)
            assemble = env.build([env.attr])
            split = {"local_add_s": add, "fetch_s": fetch, "assemble_s": assemble}

        deb_mb = env.deb_bytes() / MB
        wheel_mb = env.wheel_bytes() / MB
        record: dict[str, Any] = {
            "environment": args.env,
            "runs": runs,
            "debs": len(env.debs),
            "wheels": len(env.wheels),
            "deb_mb": round(deb_mb, 2),
            "wheel_mb": round(wheel_mb, 2),
            "url_schemes": schemes,
            "local_mirror_files": local,
            "realise_runs": realise,
            "realise_median_s": c.median([r["total_s"] for r in realise]),
            "nix_build_median_s": c.median([r["nix_build_s"] for r in realise]),
            "urllib_runs_s": peer,
            "urllib_median_s": c.median(peer),
            "keepalive_runs_s": keepalive,
            "keepalive_median_s": c.median(keepalive),
            "dns_probe": dns,
            "split": split,
            "waits_for_other_nix_processes": waits,
        }
        record["ratio_realise_vs_urllib"] = record["realise_median_s"] / record["urllib_median_s"]
        if split:
            record["ratio_fetch_vs_urllib"] = split["fetch_s"] / record["urllib_median_s"]

    rows: list[list[Any]] = [
        ["cold realisation (nix build env, median)", record["nix_build_median_s"], ""],
        ["  + file:// files added to the store", c.median([r["local_add_s"] for r in realise]), ""],
        ["  total", record["realise_median_s"], f"{record['ratio_realise_vs_urllib']:.2f}x"],
        [f"peer: urllib download of the {len(http)} .debs", record["urllib_median_s"], "1.00x"],
        ["peer: same over one kept-alive connection", record["keepalive_median_s"], ""],
    ]
    if split:
        rows += [
            ["split run: fetch derivations only", split["fetch_s"],
             f"{record['ratio_fetch_vs_urllib']:.2f}x"],
            ["split run: assemble root only", split["assemble_s"], ""],
        ]  # fmt: skip
    print(c.table(["what", "seconds", "vs urllib"], rows))
    print(
        f"fetched: {deb_mb:.1f} MB of .debs ({len(env.debs)}) + {wheel_mb:.1f} MB of wheels "
        f"({len(env.wheels)}); runs: {runs}"
    )
    if dns.get("over_1s"):
        print(
            f"note: {dns['over_1s']} of {dns['lookups']} DNS lookups of the mirror's host took "
            f"over 1 s here ({', '.join(map(str, dns['slow_s']))} s): every download that "
            "resolves the name anew (Nix's and urllib's) can stall like that"
        )
    if local:
        print(f"note: {len(local)} file(s) come from a file:// local mirror (not downloaded): "
              + ", ".join(local))  # fmt: skip
    print(f"wrote {c.write_result(NAME, record)}")
    return 0


if __name__ == "__main__":
    c.main(bench)
