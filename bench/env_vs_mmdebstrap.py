"""A configured environment from already-fetched .debs: reproflake against mmdebstrap.

The paper template's environment (Python with numpy and matplotlib, TeX Live with
latexmk: about 260 Debian packages) is realised by reproflake and by mmdebstrap from the
same local .deb files, alternately in the same run, configure (maintainer scripts and
triggers: TeX formats and font maps among them) included on both sides.

- reproflake: `nix build --rebuild` of `environments.paper` with reproflake's nix options.
  The .debs are already in the store; Nix unpacks and configures the root again in its
  sandbox and fails unless the new root is bit-for-bit the one it has.
- mmdebstrap (peer): `mmdebstrap --mode=root --variant=essential` into a new directory,
  `--include` naming every package of the environment's lock, from a flat `file:`
  repository made once (not timed) with `dpkg-scanpackages` over the very .debs in the
  store (hard links), `[trusted=yes]`. The Essential set is installed by dpkg, the rest
  by apt (its own unpack/configure order), with Debian 12's merged-/usr hook and the
  hook that makes the `file:` repository visible in the chroot. Same clock
  (SOURCE_DATE_EPOCH) as reproflake.

Both roots are checked to hold exactly the lock's packages, every one configured
("ii"), and their sizes are reported (du: bytes on disk and apparent size, files).
Needs root (mmdebstrap's root mode, as this machine's Nix runs as root), mmdebstrap and
dpkg-dev (`apt-get install mmdebstrap dpkg-dev`).

    python bench/env_vs_mmdebstrap.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import _common as c

NAME = "env_vs_mmdebstrap"
ENV = "paper"
MB = 1e6
# Debian 12's usr-is-merged refuses an unmerged /usr; a file: mirror is not visible in
# the chroot (where dpkg reads the .debs) unless bind-mounted there.
HOOKS = ("merged-usr", "file-mirror-automount")
HOOK_ROOT = Path("/usr/share/mmdebstrap/hooks")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="realisations of each side (default 3)")
    ap.add_argument("--quick", action="store_true", help="one run of each")
    return ap.parse_args()


class Paper:
    """The paper template's environment in a locked, generated project."""

    def __init__(self, root: Path) -> None:
        from reproflake.commands._project import generate, load_project

        self.root = root
        project = load_project(root, lambda _msg: None)
        generate(project)  # flake.nix and its data, staged in git
        lock = project.lock
        env = lock.environments[ENV]
        self.debs = [lock.debs[k] for k in env.debs]
        self.keys = list(env.debs)
        self.suite = lock.debian.suite
        self.epoch = lock.source_date_epoch
        self.attr = f".#legacyPackages.{c.SYSTEM}.environments.{ENV}"

    def nix(self, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        return c.run(["nix", *c.nix_options(), *args], cwd=self.root)

    def realise(self) -> str:
        """Fetch the .debs and build the root (once, not timed); its store path."""
        out = self.nix("build", self.attr, "--no-link", "--json")[1].stdout
        return str(json.loads(out)[0]["outputs"]["out"])

    def deb_paths(self) -> list[Path]:
        """The store paths of the environment's .debs, in the lock's order."""
        apply = "ds: builtins.mapAttrs (_: d: d.outPath) ds"
        out = self.nix("eval", "--json", f".#legacyPackages.{c.SYSTEM}.debs", "--apply", apply)
        paths = json.loads(out[1].stdout)
        return [Path(paths[k]) for k in self.keys]

    def rebuild(self) -> float:
        return self.nix("build", "--rebuild", self.attr, "--no-link")[0]


def flat_repository(repo: Path, debs: Sequence[Path], suite: str) -> None:
    """A flat apt repository over the store's .debs: Packages, and a Release naming the
    suite (mmdebstrap picks the Essential set by suite) with the index's hash."""
    repo.mkdir()
    for deb in debs:
        link = repo / deb.name.split("-", 1)[1]  # the store path's name: the .deb's file name
        try:
            os.link(deb, link)
        except OSError:  # another file system, or hard links to the store refused
            shutil.copyfile(deb, link)
    packages = c.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo)[1].stdout
    (repo / "Packages").write_text(packages)
    digest = hashlib.sha256(packages.encode()).hexdigest()
    size = len(packages.encode())
    (repo / "Release").write_text(
        f"Suite: {suite}\nCodename: {suite}\nArchitectures: amd64 all\n"
        f"SHA256:\n {digest} {size} Packages\n"
    )


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (from /proc/self/mountinfo)."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces and the like written as octal escapes.
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_all(path: Path) -> None:
    """A failed mmdebstrap can leave the mirror (and /proc, /sys) mounted in its target:
    unmounted before anything there is removed, or removing would reach into them."""
    for point in mounts_under(path):
        subprocess.run(["umount", point], check=False, capture_output=True)
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    left = mounts_under(path)
    if left:
        raise c.BenchError(f"still mounted (unmount by hand, then remove {path}): {left}")


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary directory, removed only when no mount is left in it."""
    tmp = Path(tempfile.mkdtemp(prefix=f"reproflake-bench-{NAME}-"))
    try:
        yield tmp
    finally:
        unmount_all(tmp)  # raises, leaving everything in place, when one stays mounted
        shutil.rmtree(tmp, ignore_errors=True)


def mmdebstrap(paper: Paper, repo: Path, target: Path, log: Path) -> float:
    names = ",".join(d.package for d in paper.debs)
    argv = ["mmdebstrap", "--mode=root", "--variant=essential", f"--include={names}"]
    argv += [f"--hook-dir={HOOK_ROOT / h}" for h in HOOKS]
    argv += [paper.suite, str(target), f"deb [trusted=yes] file://{repo} ./"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(paper.epoch)}
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, check=False)  # fmt: skip
    seconds = time.perf_counter() - start
    unmount_all(target)
    if proc.returncode != 0:
        kept = c.OUT_DIR / f"{NAME}.mmdebstrap.log"
        c.OUT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise c.BenchError(
            f"mmdebstrap failed with exit code {proc.returncode}; its whole output: {kept}\n"
            f"{tail[-4000:]}"
        )
    return seconds


def installed(root: str | Path) -> dict[str, str]:
    """package → version of every package a root's dpkg database holds; all must be "ii"."""
    fmt = "${Package}\t${Version}\t${db:Status-Abbrev}\n"
    admin = f"--admindir={root}/var/lib/dpkg"
    out = c.run(["dpkg-query", admin, "-W", "-f", fmt])[1].stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        if status.strip() != "ii":
            raise c.BenchError(f"{root}: {name} {version} is not configured ({status.strip()})")
        found[name] = version
    return found


def sizes(root: str | Path) -> dict[str, int]:
    def du(*flags: str) -> int:
        return int(c.run(["du", "-s", "--block-size=1", *flags, str(root)])[1].stdout.split()[0])

    files = int(c.run(["sh", "-c", 'find "$1" | wc -l', "sh", str(root)])[1].stdout)
    return {"disk_bytes": du(), "apparent_bytes": du("--apparent-size"), "entries": files}


def bench() -> int:
    args = parse_args()
    c.require_tools("nix", "nix-store", "reproflake", "git", "mmdebstrap", "dpkg-scanpackages")
    if os.geteuid() != 0:
        c.die("run as root: mmdebstrap's root mode (reproflake's side needs no root)")
    runs = 1 if args.quick else max(1, args.runs)
    with scratch() as tmp:
        root = c.new_project(tmp, "paper")
        c.run(["reproflake", "lock"], cwd=root)
        paper = Paper(root)
        env_root = paper.realise()
        repo = tmp / "repo"
        flat_repository(repo, paper.deb_paths(), paper.suite)
        expected = {d.package: d.version for d in paper.debs}
        print(f"environment {ENV}: {len(paper.debs)} .debs, "
              f"{sum(d.size for d in paper.debs) / MB:.1f} MB", file=sys.stderr)  # fmt: skip

        ours: list[float] = []
        peer: list[float] = []
        peer_sizes: dict[str, int] = {}
        for i in range(runs):
            # Alternate which goes first: neither always gets the warmer page cache.
            for who in ("reproflake", "mmdebstrap") if i % 2 == 0 else ("mmdebstrap", "reproflake"):
                if who == "reproflake":
                    ours.append(paper.rebuild())
                    print(f"run {i + 1}: reproflake {ours[-1]:.1f}s", file=sys.stderr)
                    continue
                target = tmp / f"mmdebstrap-{i}"
                peer.append(mmdebstrap(paper, repo, target, tmp / "mmdebstrap.log"))
                print(f"run {i + 1}: mmdebstrap {peer[-1]:.1f}s", file=sys.stderr)
                if installed(target) != expected:
                    raise c.BenchError(
                        f"mmdebstrap's root does not hold the lock's packages: {target}"
                    )
                peer_sizes = sizes(target)
                shutil.rmtree(target)
        if installed(env_root) != expected:
            raise c.BenchError(f"reproflake's root does not hold the lock's packages: {env_root}")
        our_sizes = sizes(env_root)

    record: dict[str, Any] = {
        "environment": ENV,
        "debs": len(paper.debs),
        "deb_mb": round(sum(d.size for d in paper.debs) / MB, 2),
        "runs": runs,
        "reproflake_runs_s": ours,
        "mmdebstrap_runs_s": peer,
        "reproflake_median_s": c.median(ours),
        "mmdebstrap_median_s": c.median(peer),
        "reproflake_root": our_sizes,
        "mmdebstrap_root": peer_sizes,
    }
    record["ratio"] = record["reproflake_median_s"] / record["mmdebstrap_median_s"]
    verdict = "meets" if record["ratio"] <= 1.5 else "misses"
    print(c.table(["what", "median s", "ratio"], [
        ["reproflake: nix build --rebuild (unpack + configure)", record["reproflake_median_s"],
         f"{record['ratio']:.2f}x (target <= 1.5x: {verdict})"],
        ["mmdebstrap --variant=essential, same .debs", record["mmdebstrap_median_s"], "1.00x"],
    ]))  # fmt: skip
    print(c.table(["root", "on disk MB", "apparent MB", "entries"], [
        [who, s["disk_bytes"] / MB, s["apparent_bytes"] / MB, s["entries"]]
        for who, s in (("reproflake", our_sizes), ("mmdebstrap", peer_sizes))
    ]))  # fmt: skip
    print(f"wrote {c.write_result(NAME, record)}")
    return 0


if __name__ == "__main__":
    c.main(bench)
