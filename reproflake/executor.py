"""The one place reproflake runs Nix.

Builds always run with the sandbox on and no fallback, and with no
substituters unless the user configures some: a build that cannot be
sandboxed fails rather than silently running unsandboxed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reproflake import _proc, gpuhook, nixlog
from reproflake._paths import LEGACY, SYSTEM, unusable_in_flake_path
from reproflake.errors import HashMismatchError, NixError

FEATURES = "nix-command flakes ca-derivations"
STEP_PREFIX = "reproflake-step-"
# reproflake's own derivations that are neither steps, environments nor fetched files.
HELPERS = frozenset({"reproflake-applets", "reproflake-all", "reproflake-seed-check"})
INSTALL_HINT = (
    "install Nix (on Debian: apt-get install nix-bin), then run the command again; see README.md"
)


# Binary caches and remote builders for this process (see reproflake.remote), set once by
# the command before it builds: substituters, trusted-public-keys, builders, secret-key-files.
_remote_options: dict[str, str] = {}


def configure_remote(
    *,
    substituters: Sequence[str] = (),
    public_keys: Sequence[str] = (),
    builders: str = "",
    secret_key: str | None = None,
) -> None:
    """Hand Nix the user's caches and builders (signatures stay required: never
    require-sigs = false). A step Nix cannot substitute is built (``fallback``)."""
    _remote_options.clear()
    if substituters:
        _remote_options["substituters"] = " ".join(substituters)
        _remote_options["trusted-public-keys"] = " ".join(public_keys)
        _remote_options["fallback"] = "true"
        # A cache that stops answering is not retried for every path of the build.
        _remote_options["connect-timeout"] = "5"
    if builders:
        _remote_options["builders"] = builders
        _remote_options["builders-use-substitutes"] = "true" if substituters else "false"
    if secret_key:
        # Nix signs what it builds (paths and content-addressed realisations) with it.
        _remote_options["secret-key-files"] = secret_key


def nix_options() -> list[str]:
    substituters = os.environ.get("REPROFLAKE_SUBSTITUTERS", "")
    options = [
        "--extra-experimental-features", FEATURES,
        "--option", "sandbox", "true",
        "--option", "sandbox-fallback", "false",
        "--option", "substituters", substituters,
        "--option", "warn-dirty", "false",
    ]  # fmt: skip
    for name, value in sorted(_remote_options.items()):
        options += ["--option", name, value]
    return options


def check_flake_path(root: Path) -> None:
    """Nix 2.8 turns a flake's directory into a URL without escaping it: refuse early."""
    bad = unusable_in_flake_path(root)
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise NixError(
            f"Nix cannot build a flake whose directory path contains {shown}: {root.resolve()}",
            hint="move or rename the project directory (and its parents) to a path without them",
        )


def require_nix() -> str:
    nix = shutil.which("nix")
    if nix is None:
        raise NixError("Nix is not installed (no `nix` on PATH)", hint=INSTALL_HINT)
    return nix


def _nix(args: Sequence[str], *, cwd: Path | None = None, check: bool = True) -> _proc.Result:
    require_nix()
    return _proc.run(["nix", *nix_options(), *args], cwd=cwd, check=check)


# --------------------------------------------------------------------------- the store


def _hex(sri: str) -> str:
    return base64.b64decode(sri.split("-", 1)[1]).hex()


def fixed_path(sri: str, name: str, *, recursive: bool, store: str = "/nix/store") -> str:
    """The store path Nix gives fixed-output content (as `nix-store --print-fixed-path`).

    Computed here rather than asked of Nix: a no-op build checks many such paths.
    """
    import hashlib

    from reproflake.lock.deb import nix_base32

    digest = _hex(sri)
    if recursive:
        kind, inner = "source", digest
    else:
        kind = "output:out"
        inner = hashlib.sha256(f"fixed:out:sha256:{digest}:".encode()).hexdigest()
    full = hashlib.sha256(f"{kind}:sha256:{inner}:{store}:{name}".encode()).digest()
    folded = bytearray(20)
    for i, byte in enumerate(full):
        folded[i % 20] ^= byte
    return f"{store}/{nix_base32(bytes(folded))}-{name}"


def invalid_paths(paths: Iterable[str]) -> set[str]:
    """The paths that are not (or no longer) valid in the store."""
    ordered = sorted(set(paths))
    invalid: set[str] = set()
    # As few commands as the kernel's argument limit allows (each costs Nix's start-up):
    # 10,000 steps' outputs fit in one, a hundred thousand would not.
    for chunk in _chunks(ordered) if ordered else []:
        argv = ["nix-store", "--check-validity", "--print-invalid", *chunk]
        invalid.update(_proc.run(argv).stdout.split())
    return invalid


@dataclass(frozen=True)
class StoreItem:
    """A file the build needs that Nix cannot fetch by itself from inside its sandbox."""

    local: Path
    name: str
    sri: str
    recursive: bool
    what: str


def ensure_in_store(items: Sequence[StoreItem]) -> list[str]:
    """Add local content (large data, file:// mirrors) under its pinned, content-derived path."""
    expected = {fixed_path(i.sri, i.name, recursive=i.recursive): i for i in items}
    added = []
    for path in sorted(invalid_paths(expected)):
        item = expected[path]
        if not item.local.exists():
            raise NixError(
                f"{item.what}: {item.local} does not exist",
                hint="restore the file, or fix its path in reproflake.toml",
            )
        if not item.recursive:  # never open a FIFO or a device a lock names
            from reproflake._confine import regular_file

            regular_file(item.local, item.what)
        got = _content_hash(item)
        if got != item.sri:
            # A file:// pin comes from the lock, which a repository supplies: the hash of
            # what is really at that path is not echoed (it would reveal any host file).
            seen = f", got {_hex(got)}" if item.recursive else ""
            raise HashMismatchError(
                f"{item.what}: {item.local} does not match the lock: "
                f"expected sha256 {_hex(item.sri)}{seen}",
                hint="if the new content is intended, run `reproflake lock` (URL inputs: "
                "update sha256 in reproflake.toml first)",
            )
        verb = "add-path" if item.recursive else "add-file"
        _nix(["store", verb, "--name", item.name, str(item.local)])
        added.append(item.what)
    return added


def _content_hash(item: StoreItem) -> str:
    if item.recursive:
        from reproflake.lock.hashing import nar_hash

        return nar_hash(item.local)
    from reproflake.fsutil import sha256_file

    return "sha256-" + base64.b64encode(sha256_file(item.local).digest()).decode()


def add_indirect_root(link: Path) -> None:
    """Register ``link`` as a garbage-collector root, as `nix build --out-link` does."""
    import hashlib

    roots = Path("/nix/var/nix/gcroots/auto")
    try:
        roots.mkdir(parents=True, exist_ok=True)
        entry = roots / hashlib.sha256(str(link.absolute()).encode()).hexdigest()[:32]
        if not entry.is_symlink():
            os.symlink(str(link.absolute()), entry)
    except OSError:
        pass  # not fatal: the result stays usable, it is just collectable


# --------------------------------------------------------------------------- building


@dataclass
class BuildOutcome:
    outputs: dict[str, str] = field(default_factory=dict)  # step → store path
    built: list[str] = field(default_factory=list)  # steps Nix actually ran
    failed: dict[str, list[str]] = field(default_factory=dict)  # step → last log lines
    drvs: dict[str, str] = field(default_factory=dict)  # step → .drv path that ran (for its log)
    substituted: set[str] = field(default_factory=set)  # store paths Nix took from a cache
    derivations: dict[str, str] = field(default_factory=dict)  # step → .drv path as evaluated
    errors: list[str] = field(default_factory=list)  # Nix's own error lines
    machines: dict[str, str] = field(default_factory=dict)  # step → remote builder that ran it


# (kind, name, seconds): "start", "done", "failed" (steps), "env-start", "env-done"
# (environments), "fetch" (a pinned file's derivation starts).
Event = Callable[[str, str, float], None]
# Where the build stands, after every change Nix reports and twice a second meanwhile.
Status = Callable[[nixlog.Snapshot], None]
STATUS_SECONDS = 0.5


def _env_of(drv: str) -> str | None:
    name = _drv_name(drv)
    return name[len("reproflake-env-") :] if name.startswith("reproflake-env-") else None


def _step_of(drv: str) -> str | None:
    name = drv.rsplit("/", 1)[-1]
    name = re.sub(r"^[a-z0-9]{32}-", "", name).removesuffix(".drv")
    return name[len(STEP_PREFIX) :] if name.startswith(STEP_PREFIX) else None


class _LogReader:
    """Follows Nix's internal-json log: which step builds, its log lines, errors, and
    Nix's counts of what is fetched and built (:mod:`reproflake.nixlog`)."""

    END_OF_STEP = re.compile(r"^reproflake: step '([^']+)' (finished|failed)")

    def __init__(
        self,
        on_event: Event,
        outcome: BuildOutcome,
        on_status: Status | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_event = on_event
        self.on_status = on_status
        self.clock = clock
        self.outcome = outcome
        self.active: dict[int, tuple[str | None, str, float]] = {}
        self.running: dict[int, nixlog.Running] = {}  # activity id → step or environment
        self.acts = nixlog.Activities()
        self.logs: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def feed(self, line: str) -> None:
        msg = nixlog.parse(line)
        if msg is None:
            if not line.startswith("@nix ") and line.strip():
                self.outcome.errors.append(line.rstrip())
            return
        with self.lock:
            changed = self.acts.feed(msg)
        action = msg.get("action")
        ident = msg.get("id", -1)
        fields = msg.get("fields") or [""]
        if action == "start" and msg.get("type") == nixlog.Act.SUBSTITUTE:
            self.outcome.substituted.add(str(fields[0]))
        elif action == "start" and msg.get("type") == nixlog.Act.BUILD:
            drv = str(fields[0])
            step = _step_of(drv)
            now = self.clock()
            with self.lock:
                self.active[ident] = (step, drv, now)
            if step is not None:
                self.outcome.drvs[step] = drv
                # On a remote builder, Nix reports the build twice: once naming the
                # machine (fields: drv, machine, ...), once as the builder's own Nix runs it.
                if len(fields) > 1 and fields[1]:
                    self.outcome.machines[step] = str(fields[1])
                if step not in self.outcome.built:  # the machine's report came first
                    self.outcome.built.append(step)
                    with self.lock:
                        self.running[ident] = nixlog.Running("step", step, now)
                    self.on_event("start", step, 0.0)
            elif (env := _env_of(drv)) is not None:
                with self.lock:
                    self.running[ident] = nixlog.Running("environment", env, now)
                self.on_event("env-start", env, 0.0)
            elif _drv_name(drv) not in HELPERS:
                self.on_event("fetch", _drv_name(drv), 0.0)
        elif action == "stop" and ident in self.active:
            # Nix stops a content-addressed step's activity only when its dependents are
            # done too; a step's own end is the last line of its log (below).
            with self.lock:
                step, _drv, started = self.active.pop(ident)
                self.running.pop(ident, None)
            if step is None and (env := _env_of(_drv)) is not None:
                self.on_event("env-done", env, self.clock() - started)
        elif action == "result" and msg.get("type") == nixlog.Res.BUILD_LOG_LINE:
            entry = self.active.get(ident)
            if entry is not None:
                text = str(fields[0])
                self.logs.setdefault(entry[1], []).append(text)
                m = self.END_OF_STEP.match(text)
                if m and entry[0] == m.group(1):
                    with self.lock:
                        self.active[ident] = (None, entry[1], entry[2])
                        self.running.pop(ident, None)
                        changed = True
                    kind = "done" if m.group(2) == "finished" else "failed"
                    self.on_event(kind, m.group(1), self.clock() - entry[2])
        elif action == "msg" and msg.get("level", 9) <= 0:
            self.outcome.errors.append(_strip_ansi(str(msg.get("msg", ""))))
        if changed and self.on_status is not None:
            self.on_status(self.snapshot())

    def snapshot(self) -> nixlog.Snapshot:
        with self.lock:
            running = tuple(sorted(self.running.values(), key=lambda r: (r.started, r.name)))
            return nixlog.Snapshot.of(self.acts, running)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


STEPS = "steps"  # the flake's steps
VERIFY = "verify"  # the same steps, built a second time independently (`reproflake verify`)
# The same, with chosen variations: VERIFY_VARIED + ".time_umask" (see nix/default.nix).
VERIFY_VARIED = "verifyVaried"
# Far below the kernel's 2 MiB for arguments and environment: a list of derivations longer
# than this is built by several `nix build` commands, one after another.
ARGV_BYTES = 1 << 20


def default_jobs() -> int:
    """How many steps Nix builds at once unless told: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def derivations(root: Path, which: str = STEPS) -> dict[str, str]:
    """Every step's .drv path, from one evaluation of the flake.

    Nix 2.8 reads the flake anew (and starts git) for every `.#name` on a command line:
    about 12 ms per step, against milliseconds for all of them evaluated at once."""
    check_flake_path(root)
    attr = f".#{LEGACY}.drvPaths.{which}"
    result = _nix(["eval", "--json", attr], cwd=root, check=False)
    if result.returncode != 0:
        raise NixError(
            "Nix cannot evaluate the flake:\n" + _strip_ansi(result.stderr.strip())[-3000:],
            hint="run `reproflake lock` to regenerate it; if it persists, report it with this output",
        )
    found = json.loads(result.stdout)
    return {str(k): str(v) for k, v in found.items()}


def install_gpu_hook(path: Path | None = None) -> Path:
    """Write the GPU pre-build hook's launcher (default: in reproflake's cache); its path."""
    from reproflake._paths import user_cache_dir
    from reproflake.fsutil import write_if_changed

    path = path or user_cache_dir() / "gpu-hook"
    write_if_changed(path, gpuhook.launcher(), mode=0o755)
    return path


def _chunks(paths: Sequence[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for path in paths:
        if chunks[-1] and size + len(path) + 1 > ARGV_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(path)
        size += len(path) + 1
    return chunks


def build(
    root: Path,
    steps: Sequence[str],
    on_event: Event,
    *,
    on_status: Status | None = None,
    which: str = STEPS,
    labels: Mapping[str, str] | None = None,
    features: Iterable[str] = (),
    jobs: int | None = None,
    tail_lines: int = 25,
    keep_going: bool = True,
    substitute_only: bool = False,
) -> BuildOutcome:
    """Build ``steps`` of the flake in ``root``; never raises for a failing step.

    ``steps`` come in build order (needs first): a list too long for one command line is
    built in several commands. ``jobs`` steps are built at once (default: one per core).
    ``on_event`` hears of steps and environments starting and ending; ``on_status`` gets
    Nix's progress after each change and every STATUS_SECONDS."""
    require_nix()
    drvs = derivations(root, which)
    outcome = BuildOutcome(derivations={s: drvs[s] for s in steps})
    reader = _LogReader(on_event, outcome, on_status)
    extra = sorted(set(features))
    # Substitute only (`reproflake pull`): no local job slot and no builders, so Nix can
    # only take what the caches have.
    options = ["--max-jobs", "0" if substitute_only else str(jobs or default_jobs())]
    if substitute_only:
        options += ["--option", "builders", ""]
    if extra:
        options += ["--option", "extra-system-features", " ".join(extra)]
    if any(f in gpuhook.DEVICES for f in extra) and not substitute_only:
        # This machine lends its GPU: Nix asks the hook before each build, and the hook
        # lends it only to derivations that require the GPU feature (reproflake/gpuhook.py).
        options += ["--option", "pre-build-hook", str(install_gpu_hook())]
    step_of = {drvs[s]: s for s in steps}
    wanted = [drvs[s] for s in steps]
    stop_ticks = threading.Event()

    def ticker() -> None:
        # Nix says nothing while a step runs quietly: the clock still moves on.
        while on_status is not None and not stop_ticks.wait(STATUS_SECONDS):
            on_status(reader.snapshot())

    timer = threading.Thread(target=ticker, daemon=True)
    if on_status is not None:
        timer.start()
    failed_commands = False
    try:
        for chunk in _chunks(wanted):
            argv = [
                "nix", *nix_options(), *options, "build", *chunk,
                "--no-link", "--json", "--log-format", "internal-json",
                *(["--keep-going"] if keep_going else []),
            ]  # fmt: skip
            proc = _proc.stream(argv, reader.feed, cwd=root)
            if proc.returncode == 0:
                _read_outputs(proc.stdout, step_of, outcome)
            else:
                failed_commands = True
    finally:
        stop_ticks.set()
        if timer.is_alive():
            timer.join()  # no status drawn after the build returns (and its line is cleared)
    if not failed_commands:
        return outcome

    blocked = set()
    for error in outcome.errors:
        m = re.search(r"builder for '([^']+)' failed", error)
        if m and (step := _step_of(m.group(1))) is not None:
            outcome.failed[step] = reader.logs.get(m.group(1), [])[-tail_lines:]
        m = re.search(r"dependencies of derivation '([^']+)' failed to build", error)
        if m and (step := _step_of(m.group(1))) is not None:
            blocked.add(step)
    _raise_for_infrastructure(outcome, labels or {}, reader.logs)
    # A failed `nix build --json` prints no outputs: ask Nix again for the steps that
    # neither failed nor wait on a failure (cheap: built already, nothing to evaluate).
    ok = [drvs[s] for s in steps if s not in outcome.failed and s not in blocked]
    ok = [d for d in ok if step_of[d] not in outcome.outputs]
    for chunk in _chunks(ok) if ok else []:
        result = _nix([*options, "build", *chunk, "--no-link", "--json"], cwd=root, check=False)
        if result.returncode == 0:
            _read_outputs(result.stdout, step_of, outcome)
    if not outcome.failed and not outcome.outputs and not substitute_only:
        raise NixError("nix build failed:\n" + "\n".join(outcome.errors[-20:]))
    return outcome


def path_infos(paths: Sequence[str]) -> dict[str, dict[str, object]]:
    """Nix's record of valid store paths (narHash, narSize, references, signatures, ca)."""
    if not paths:
        return {}
    result = _nix(["path-info", "--json", *paths], check=False)
    return {str(e["path"]): e for e in json.loads(result.stdout or "[]") if "path" in e}


def delete_paths(paths: Sequence[str]) -> None:
    """Remove store paths (and the realisations that point at them) if nothing holds them."""
    if paths:
        _nix(["store", "delete", *paths], check=False)


def closure_for_push(drvs: Sequence[str]) -> list[str]:
    """What a machine needs to get these steps without building: the derivations'
    build-time closure (sources, and every derivation, standing for its outputs)."""
    result = _proc.run(["nix-store", "--query", "--requisites", *drvs])
    return sorted(set(result.stdout.split()))


def copy_to(url: str, installables: Sequence[str], secret_key: str | None) -> _proc.Result:
    """`nix copy` to a binary cache, signing what it uploads when a key is given (a
    derivation stands for its outputs, with their realisations when content-addressed)."""
    target = url
    if secret_key:
        target += ("&" if "?" in url else "?") + "secret-key=" + secret_key
    args = ["copy", "--to", target, *installables]
    return _nix(args, check=False)


def _read_outputs(stdout: str, step_of: Mapping[str, str], outcome: BuildOutcome) -> None:
    """Each built derivation's output path, from `nix build --json`."""
    for entry in json.loads(stdout or "[]"):
        step = step_of.get(entry.get("drvPath", ""))
        if step is not None:
            outcome.outputs[step] = entry["outputs"]["out"]


def _drv_name(drv: str) -> str:
    return re.sub(r"^[a-z0-9]{32}-", "", drv.rsplit("/", 1)[-1]).removesuffix(".drv")


def _raise_for_infrastructure(
    outcome: BuildOutcome, labels: Mapping[str, str], logs: Mapping[str, list[str]] | None = None
) -> None:
    """Turn Nix's own errors that are not a step's fault into clear messages."""
    text = "\n".join(outcome.errors)
    failed = re.findall(r"builder for '([^']+)' failed", text)
    fetches = [d for d in failed if _step_of(d) is None and _env_of(d) is None]
    fetch_log = "\n".join(line for d in fetches for line in (logs or {}).get(d, []))
    m = re.search(r"unable to download '([^']+)': ([^\n]+)", _strip_ansi(fetch_log + "\n" + text))
    if m:
        what = ", ".join(labels.get(_drv_name(d), _drv_name(d)) for d in fetches) or "a pinned file"
        raise NixError(
            f"cannot download {what} from {m.group(1)}: {m.group(2).strip()}",
            hint="check the network and the URL (for packages: [debian] mirror, [python] index); "
            "a file that left the mirror needs a snapshot mirror or a kept copy",
        )
    m = re.search(
        r"hash mismatch in fixed-output derivation '([^']+)':\s*specified:\s*(\S+)\s*got:\s*(\S+)",
        text,
    )
    if m:
        name = _drv_name(m.group(1))
        raise HashMismatchError(
            f"sha256 mismatch for {labels.get(name, name)} ({name}): "
            f"the lock says {m.group(2)}, the download is {m.group(3)}",
            hint="if the new content is intended, update its sha256 in reproflake.toml and run `reproflake lock`",
        )
    m = re.search(r"a '([^']+)' with features \{([^}]*)\} is required to build '([^']+)'", text)
    if m:
        from reproflake.errors import HardwareError

        step = _step_of(m.group(3)) or m.group(3)
        # ca-derivations is Nix's own requirement of every step, not the user's.
        wanted = ", ".join(f for f in m.group(2).split(", ") if f != "ca-derivations")
        down = re.findall(r"cannot build on '([^']+)': (?:error: )?([^\n]+)", text)
        if down:
            uri, why = down[-1]
            raise HardwareError(
                f"step {step} needs a machine with {wanted}; this machine lacks it, and the "
                f"remote builder {uri} that offers it did not answer: {why.strip()}",
                hint=f"check that {uri} is up and reachable over SSH (NIX_SSHOPTS for a port), "
                "or build on a machine that has the hardware",
            )
        raise HardwareError(
            f"step {step} needs a machine with {wanted}, and neither this machine nor a "
            "configured remote builder offers it",
            hint="run on a machine that has it, or add a remote builder that advertises it "
            "([[builders]] in reproflake's config.toml, or nix.conf: builders)",
        )
    if "sandbox" in text and "not supported" in text:
        raise NixError(
            "Nix cannot sandbox builds on this machine and reproflake will not build without it",
            hint="run as root or enable user namespaces (kernel.unprivileged_userns_clone=1)",
        )


def known_outputs(
    root: Path, steps: Sequence[str], drvs: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """What Nix already has for these steps as the flake stands (a dry run: nothing builds).

    A step's output path when Nix has built it with exactly these inputs, else None.
    ``drvs`` are the steps' derivations (from :func:`derivations`), if known already."""
    if not steps:
        return {}
    drvs = drvs if drvs is not None else derivations(root)
    step_of = {drvs[s]: s for s in steps}
    result = _nix(["build", *step_of, "--dry-run", "--json"], cwd=root, check=False)
    if result.returncode != 0:
        return {}
    found: dict[str, str | None] = {}
    for entry in json.loads(result.stdout or "[]"):
        step = step_of.get(entry.get("drvPath", ""))
        if step is not None:
            found[step] = (entry.get("outputs") or {}).get("out")
    return found


@dataclass(frozen=True)
class Recheck:
    """The outcome of building something again to compare bytes.

    ``same`` and ``differs`` are verdicts on the bytes; when neither holds, the rebuild
    itself failed (Nix crashed, a download failed, the builder broke) and ``detail``
    says why: that is "could not verify", never a claim that bytes differ."""

    same: bool
    differs: bool
    detail: tuple[str, ...] = ()


DIFFERS = re.compile(r"may not be deterministic|differs from|reproflake: the seed differs")


def _recheck(result: _proc.Result) -> Recheck:
    if result.returncode == 0:
        return Recheck(same=True, differs=False)
    text = _strip_ansi(result.stderr[-200_000:])
    lines = tuple(line for line in text.splitlines() if line.strip())[-20:]
    return Recheck(same=False, differs=bool(DIFFERS.search(text)), detail=lines)


def rebuild_matches(root: Path, attr: str) -> Recheck:
    """Build an input-addressed attribute again and let Nix compare the bytes (--rebuild).

    `--rebuild` needs a first build to compare with. A step whose content-addressed
    output Nix already had does not need its environment's root built, and the root may
    have been garbage-collected since: it is built first when missing."""
    first = _nix(["build", f".#{attr}", "--no-link"], cwd=root, check=False)
    if first.returncode != 0:
        return _recheck(first)
    return _recheck(_nix(["build", f".#{attr}", "--rebuild", "--no-link"], cwd=root, check=False))


def check_seed(root: Path) -> Recheck:
    """Re-extract the bootstrap seed from its pinned .deb inside Nix and compare."""
    return _recheck(
        _nix(["build", f".#checks.{SYSTEM}.seed", "--no-link", "-L"], cwd=root, check=False)
    )


def build_log(root: Path, drv: str) -> str | None:
    """The whole log Nix kept of building ``drv``, or None when it has none."""
    result = _nix(["log", drv], cwd=root, check=False)
    return result.stdout if result.returncode == 0 else None


def log_command(drv: str) -> str:
    """The command that shows a build's whole log (Nix 2.8 wants the feature flag)."""
    return f"nix --extra-experimental-features 'nix-command ca-derivations' --option substituters '' log {drv}"


def lock_flake(root: Path, *, update: Sequence[str] = ()) -> None:
    """Pin the flake's inputs in flake.lock (reproflake's library, when it comes from a
    flake input); ``update``: inputs to pin afresh rather than keep."""
    require_nix()
    check_flake_path(root)
    args = ["flake", "lock"]
    for name in update:
        args += ["--update-input", name]
    result = _nix(args, cwd=root, check=False)
    if result.returncode != 0:
        lines = [line for line in _strip_ansi(result.stderr).splitlines() if line.strip()]
        raise NixError(
            "nix flake lock failed:\n" + "\n".join(f"  {line}" for line in lines[-15:]),
            hint="check [nix] library in reproflake.toml: Nix must be able to fetch that flake "
            "from this machine",
        )


def build_paths(root: Path, attrs: Sequence[str]) -> dict[str, str]:
    """Build flake attributes (environments, fetched files): derivation name → output path."""
    if not attrs:
        return {}
    check_flake_path(root)
    result = _nix(["build", *[f".#{a}" for a in attrs], "--no-link", "--json"], cwd=root)
    return {
        _drv_name(e.get("drvPath", "")): e["outputs"]["out"]
        for e in json.loads(result.stdout or "[]")
    }


@dataclass(frozen=True)
class Freed:
    paths: int
    bytes: int


def collect_garbage(*, dry_run: bool = False) -> Freed:
    """Nix's garbage collector over the whole store; what it deleted (or would delete)."""
    require_nix()
    if dry_run:
        dead = _proc.run(["nix-store", "--gc", "--print-dead"]).stdout.split()
        total = 0
        for chunk in _chunks(dead) if dead else []:  # a command line holds only so much
            sizes = _proc.run(["nix-store", "-q", "--size", *chunk], check=False).stdout
            total += sum(int(x) for x in sizes.split() if x.isdigit())
        return Freed(len(dead), total)
    result = _proc.run(["nix-store", "--gc"])
    text = result.stdout + result.stderr
    m = re.search(r"(\d+) store paths deleted, ([\d.]+) (\w+) freed", text)
    if m is None:
        return Freed(0, 0)
    scale = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    return Freed(int(m.group(1)), int(float(m.group(2)) * scale.get(m.group(3), 1)))
