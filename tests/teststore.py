"""The end-to-end tests' own Nix store, mounted over /nix for the test process only.

reproflake, Nix and the tests read outputs at their `/nix/store/...` paths (results links,
records, images, releases), so the tests' store cannot be a chroot store somewhere else:
it has to *be* /nix for them. The test process therefore moves into a private mount
namespace and bind-mounts a store directory of its own over /nix. Every process it starts
(reproflake, nix, the remote-builder test's sshd, podman, `unshare -n`) inherits that
view; the machine's /nix is neither read nor written by a test, and `reproflake gc` in a
test collects the tests' store only.

The directory persists between sessions so later sessions start warm. Before the mount,
the machine's flat content-addressed files (pinned .debs, wheels, URL inputs: each
checked against its sha256 by Nix) are copied into it, so a new test store downloads
only what the machine's store lacks; nothing that is built is copied, so every
environment and step of the suite is built in the tests' store by the tests themselves.

Linux only, and it needs root (CAP_SYS_ADMIN) for the namespace and the mount.
"""

from __future__ import annotations

import ctypes
import grp
import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Where the store lives (the directory that holds its `nix/`): a variable of the test
# suite, not of reproflake.
LOCATION_VARIABLE = "REPROFLAKE_TEST_STORE"
DEFAULT_LOCATION = Path("/var/cache/reproflake-tests")
# A file at the top of the tests' /nix: present there means the mount is in place.
MARKER = ".reproflake-test-store"
# Nix's build-user locks, under a store's /nix.
USERPOOL = "var/nix/userpool"
# Roots that keep the last session's environments and pinned files for the next one.
KEPT = "var/nix/gcroots/reproflake-tests"
KEEP_DAYS = 14

NIX_FLAGS = ("--extra-experimental-features", "nix-command")

# <sched.h> and <sys/mount.h>; Python 3.11 has no os.unshare and no mount().
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


class StoreUnavailable(Exception):
    """This process cannot have a store of its own (not root, or already threaded); the
    message says why and what to do."""


class StoreError(Exception):
    """Setting up the tests' store failed where it should work (the mount, the seeding)."""


@dataclass(frozen=True)
class IsolatedStore:
    root: Path  # the directory mounted over /nix is root / "nix"
    seeded: int  # files copied from the machine's store this session
    machine_nix: int  # a descriptor of the machine's /nix, opened before the mount


def location(environ: Mapping[str, str]) -> Path:
    value = environ.get(LOCATION_VARIABLE, "")
    if not value:
        return DEFAULT_LOCATION
    path = Path(value)
    if not path.is_absolute():
        raise StoreError(
            f"{LOCATION_VARIABLE}={value!r}: expected an absolute directory path "
            f"(the tests' Nix store lives in its nix/); set it to one, or unset it for "
            f"{DEFAULT_LOCATION}"
        )
    return path


def is_flat_fixed(ca: str | None) -> bool:
    """A file added by its flat hash (`fixed:sha256:...`): what `builtin:fetchurl` and a
    flat `builtins.path` make. Built outputs are never flat: fixed-output and
    content-addressed derivations that make a tree are `fixed:r:...`, the rest have no ca."""
    return ca is not None and ca.startswith("fixed:") and not ca.startswith("fixed:r:")


def seed_paths(path_info: Sequence[Mapping[str, object]]) -> list[str]:
    """The store paths worth copying into a new test store, from `nix path-info --json`."""
    chosen = []
    for info in path_info:
        ca = info.get("ca")
        if isinstance(ca, str) and is_flat_fixed(ca):
            chosen.append(str(info["path"]))
    return sorted(chosen)


def worth_keeping(info: Mapping[str, object]) -> bool:
    """An environment's root (minutes to configure) or a pinned download, by
    `nix path-info --json` entry; steps are cheap to build again."""
    ca = info.get("ca")
    name = Path(str(info["path"])).name.partition("-")[2]
    return name.startswith("reproflake-env-") or (isinstance(ca, str) and is_flat_fixed(ca))


def parse_roots(text: str, under: Path) -> list[str]:
    """Store paths of `nix-store --gc --print-roots` lines (`LINK -> PATH`) whose link lies
    under `under`."""
    prefix = f"{under}/"
    found = set()
    for line in text.splitlines():
        link, sep, path = line.partition(" -> ")
        if sep and link.startswith(prefix):
            found.add(path)
    return sorted(found)


def keep(basetemp: Path, nix: Path = Path("/nix")) -> int:
    """Roots the environments and pinned files that this session's projects (under
    `basetemp`) use, for the sessions after it; returns how many. A root not used by any
    session for KEEP_DAYS is dropped, so the kept set follows what the suite uses.

    Without it a warm store would not stay warm: test_gc collects what no live root
    reaches, and pytest keeps only the last three sessions' temporary directories (of all
    the machine's pytest runs), where the projects' roots live."""
    roots = parse_roots(_run(["nix-store", "--gc", "--print-roots"]), basetemp)
    chosen: list[str] = []
    if roots:
        closure = _run(["nix-store", "--query", "--requisites", *roots]).split()
        listing = json.loads(_run(["nix", *NIX_FLAGS, "path-info", "--json", *closure]))
        chosen = sorted(str(info["path"]) for info in listing if worth_keeping(info))
    kept = nix / KEPT
    kept.mkdir(parents=True, exist_ok=True)
    for path in chosen:
        # A new link replaces the old one whole (a collector running meanwhile, in another
        # test run, sees one or the other); its time says when it was last used.
        link, fresh = kept / Path(path).name, kept / f".{Path(path).name}.new"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(path)
        os.replace(fresh, link)
    cutoff = time.time() - KEEP_DAYS * 86400
    for link in kept.iterdir():
        if link.lstat().st_mtime < cutoff:
            link.unlink()
    return len(chosen)


def prepare(root: Path) -> None:
    """The directories Nix expects under /nix, with the machine store's modes (Nix makes
    its database and the rest on first use)."""
    nix = root / "nix"
    store = nix / "store"
    for d in (store, nix / "var/nix/gcroots/auto", nix / "var/nix/profiles", nix / USERPOOL):
        d.mkdir(parents=True, exist_ok=True)
    # Like the machine's /nix/store: group nixbld (the sandbox's build users), sticky,
    # group-writable. Nix sets the same when it opens the store as root.
    try:
        gid = grp.getgrnam("nixbld").gr_gid
    except KeyError:
        gid = -1
    if gid != -1 and store.stat().st_gid != gid:
        os.chown(store, 0, gid)
    store.chmod(0o1775)
    marker = nix / MARKER
    if not marker.exists():
        marker.write_text(
            "The end-to-end tests' own Nix store (mounted over /nix for the tests only).\n"
            "Delete the directory that holds this nix/ to start from nothing.\n"
        )


def require_root() -> None:
    if os.geteuid() != 0:
        raise StoreUnavailable(
            "the end-to-end tests need root: they mount a Nix store of their own over /nix "
            "in a private mount namespace (CAP_SYS_ADMIN); run them as root"
        )


def _run(args: Sequence[str]) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if proc.returncode != 0:
        raise StoreError(
            f"setting up the tests' Nix store failed: `{' '.join(args[:6])} ...` exited "
            f"{proc.returncode}:\n{proc.stderr.strip()}"
        )
    return proc.stdout


def seed(root: Path, machine_db: Path = Path("/nix/var/nix/db/db.sqlite")) -> int:
    """Copies the machine's flat content-addressed files that the tests' store lacks;
    returns how many. Nix checks each against its hash on the way in."""
    if not machine_db.exists():
        return 0  # a machine without a store yet: nothing to copy, the tests download
    listing = json.loads(_run(["nix", *NIX_FLAGS, "path-info", "--json", "--all"]))
    chosen = seed_paths(listing)
    present = set(os.listdir(root / "nix/store"))
    # All of them, not only those missing from the directory: Nix skips the valid ones (in
    # milliseconds) and replaces a path left half-copied. In batches: Nix 2.8's `copy` has
    # no --stdin, and a long-lived store can list more paths than one command line holds.
    for start in range(0, len(chosen), 1000):
        batch = chosen[start : start + 1000]
        _run(["nix", *NIX_FLAGS, "copy", "--no-check-sigs", "--to", f"local?root={root}", *batch])
    return sum(Path(p).name not in present for p in chosen)


def _single_threaded() -> bool:
    # unshare(CLONE_NEWNS) also unshares the file-system context, which threads share:
    # the kernel refuses it (EINVAL) in a process with more than one thread.
    status = Path("/proc/self/status").read_text()
    threads = next(line for line in status.splitlines() if line.startswith("Threads:"))
    return threading.active_count() == 1 and threads.split()[1] == "1"


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise StoreError(f"{what} failed: {os.strerror(err)} (errno {err})")


def enter(root: Path, target: Path = Path("/nix")) -> int:
    """Moves this process into a private mount namespace with root/nix over `target`.
    Returns a descriptor of what was at `target` before (the machine's /nix), through
    which a test can see that what it built is not in the machine's store."""
    require_root()
    if not _single_threaded():
        raise StoreUnavailable(
            "the test process already runs other threads, and a process with threads "
            "cannot enter a new mount namespace; run the end-to-end tests without plugins "
            "that start threads at collection"
        )
    source = root / "nix"
    # Build users (nixbld1, ...) are the machine's, whichever store builds: Nix takes one by
    # locking a file in its store's var/nix/userpool, and kills every process of the user it
    # took before building. With a pool of its own, the tests' Nix would take a user that a
    # build in the machine's store is running as, and kill that build (seen: "failed due to
    # signal 9"). So the tests' store uses the machine's pool.
    pool = target / USERPOOL
    pool.mkdir(parents=True, exist_ok=True)
    (source / USERPOOL).mkdir(parents=True, exist_ok=True)
    machine_nix = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Nothing mounted from here on may reach the machine's namespace (systemd makes / a
    # shared mount, whose new mounts propagate to every peer).
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(
        libc.mount(os.fsencode(pool), os.fsencode(source / USERPOOL), None, MS_BIND, None),
        f"mount --bind {pool} {source / USERPOOL}",
    )
    _check(
        libc.mount(os.fsencode(source), os.fsencode(target), None, MS_BIND | MS_REC, None),
        f"mount --rbind {source} {target}",
    )
    if not (target / MARKER).exists():
        raise StoreError(f"{target} is not the tests' store after mounting {source} over it")
    return machine_nix


def isolate(environ: Mapping[str, str]) -> IsolatedStore:
    """The whole setup, in order: where, layout, seed (in the machine's namespace), mount."""
    root = location(environ)
    require_root()
    prepare(root)
    seeded = seed(root)
    machine_nix = enter(root)
    # With the machine's /nix hidden, only this store can be used: never a daemon's (the
    # daemon runs in the machine's namespace).
    os.environ.pop("NIX_REMOTE", None)
    return IsolatedStore(root=root, seeded=seeded, machine_nix=machine_nix)
