"""Cold toolchain realisation: fetch an environment's .debs and wheels and assemble its root.

In a fresh project from the python template, after `reproflake lock`, `nix build
.#legacyPackages.x86_64-linux.environments.py` is timed with the options reproflake
passes to nix, against a new, empty Nix store each run (`--store DIR`): nothing is
cached, and the machine's own store is left alone. Files whose locked URL is file:// (a
local mirror) are read when the flake is evaluated; they count as fetched but are not
downloaded.

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
    """What one environment of a locked, generated project needs, and building it cold."""

    def __init__(self, root: Path, env_name: str, tmp: Path) -> None:
        from reproflake.commands._project import generate, load_project

        self.root = root
        self.tmp = tmp
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
        self.attr = f".#legacyPackages.{c.SYSTEM}.environments.{env_name}"
        # Keys hold dots ("..._amd64.deb"): quoted in the attribute path.
        # file:// pins are read at evaluation, not fetched by a derivation.
        remote = lambda table, keys: [k for k in keys if not table[k].url.startswith("file://")]  # noqa: E731
        self.fetch_attrs = [
            f'.#legacyPackages.{c.SYSTEM}.debs."{k}"' for k in remote(lock.debs, env.debs)
        ] + [f'.#legacyPackages.{c.SYSTEM}.wheels."{k}"' for k in remote(lock.wheels, env.wheels)]
        self.runs = 0

    def deb_bytes(self) -> int:
        return sum(d.size for d in self.debs)

    def wheel_bytes(self) -> int:
        total = 0
        for w in self.wheels:
            if w.url.startswith("file://"):
                total += os.path.getsize(w.url[len("file://") :])
        return total

    def cold_store(self) -> str:
        """A new, empty store for one run."""
        self.runs += 1
        return str(self.tmp / f"store-{self.runs}")

    def build(self, installables: list[str], store: str) -> float:
        argv = ["nix", *c.nix_options(), "--store", store, "build", *installables, "--no-link"]
        return c.run(argv, cwd=self.root)[0]


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
        env = Env(root, args.env, tmp)
        http = [(d.url, d.sha256) for d in env.debs if not d.url.startswith("file://")]
        schemes = sorted(
            {c.url_scheme(d.url) for d in env.debs} | {c.url_scheme(w.url) for w in env.wheels}
        )
        local = [f"wheel {w.key}" for w in env.wheels if w.url.startswith("file://")]
        local += [f"Debian package {d.key}" for d in env.debs if d.url.startswith("file://")]
        print(
            f"environment {args.env}: {len(env.debs)} .debs, {len(env.wheels)} wheels; "
            f"URL schemes: {', '.join(schemes)}; locked in {lock_secs:.1f}s",
            file=sys.stderr,
        )
        if local:
            print(f"file:// (local mirror) files read at evaluation: {', '.join(local)}",
                  file=sys.stderr)  # fmt: skip

        realise: list[dict[str, float]] = []
        peer: list[float] = []
        keepalive: list[float] = []
        for i in range(runs):
            # Alternate which goes first so a caching mirror favours neither.
            order = ("nix", "urllib", "keepalive")
            for who in order if i % 2 == 0 else reversed(order):
                if who == "nix":
                    secs = env.build([env.attr], env.cold_store())
                    realise.append({"nix_build_s": secs, "total_s": secs})
                    print(f"run {i + 1}: nix build {secs:.2f}s", file=sys.stderr)
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
            store = env.cold_store()
            fetch = env.build(env.fetch_attrs, store)
            assemble = env.build([env.attr], store)
            split = {"fetch_s": fetch, "assemble_s": assemble}

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
        }
        record["ratio_realise_vs_urllib"] = record["realise_median_s"] / record["urllib_median_s"]
        if split:
            record["ratio_fetch_vs_urllib"] = split["fetch_s"] / record["urllib_median_s"]

    rows: list[list[Any]] = [
        ["cold realisation (nix build env, median)", record["nix_build_median_s"], ""],
        ["  vs urllib", record["realise_median_s"], f"{record['ratio_realise_vs_urllib']:.2f}x"],
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
