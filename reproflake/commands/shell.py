"""`reproflake shell`: enter a step's environment as the step sees it, to debug it.

The stages: the project and its flake as `build` brings them up to date; the steps the
step needs, built; the step's description (``shells`` in nix/default.nix: its attributes
with every store path resolved by Nix, written by nix/step.sh's `describe` mode); then
nix/step.sh itself, in its `shell` mode, outside Nix's sandbox. /work, the root and the
variables are therefore laid out by the very script that lays them out for the step; only
the command differs, and a network namespace of its own keeps the shell offline as Nix's
sandbox keeps the step.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reproflake import _proc, executor, hardware
from reproflake.commands._project import Log, Project, generate, load_project, store_items
from reproflake.errors import BuildError, HardwareError, ReproflakeError, UsageError
from reproflake.spec import listing, suggest

SYSTEM = "x86_64-linux"


class NamespaceError(ReproflakeError):
    """This machine does not let reproflake make the namespaces a shell needs."""


def run(
    start: Path,
    step: str | None,
    env: str | None,
    command: Sequence[str],
    *,
    log: Log,
) -> int:
    """Enter STEP's environment (or ENV's, with an empty /work); the command's exit status."""
    if (step is None) == (env is None):
        raise UsageError(
            "name a step or an environment" if step is None else "name a step or --env, not both",
            hint="reproflake shell STEP [-- COMMAND...], or reproflake shell --env ENV "
            "[-- COMMAND...]",
        )
    executor.require_nix()
    p = load_project(start, log, steps=[step] if step else [])
    envs = p.spec.environments
    if env is not None and env not in envs:
        raise UsageError(
            f"unknown environment: {env}",
            hint=f"known environments: {listing(envs)}{suggest(env, envs)}",
        )
    check_namespaces()
    generate(p)
    if step is not None:
        build_needs(p, step, log)
        attr = f"legacyPackages.{SYSTEM}.shells.steps.{step}"
    else:
        attr = f"legacyPackages.{SYSTEM}.shells.environments.{env}"
    log(f"preparing {f'step {step}' if step else f'environment {env}'} …")
    (description,) = executor.build_paths(p.root, [attr]).values()
    if not command:
        log("entering it: no network; changes in /work are lost on exit (exit to leave)")
    return enter(Path(description), command)


def build_needs(p: Project, step: str, log: Log) -> None:
    """Build what the step needs (their outputs appear under /work/results) and put its
    inputs in the store, as `reproflake build STEP` would before running it."""
    needs = p.graph.upstream([step]) - {step}
    for what in executor.ensure_in_store(store_items(p, [*needs, step])):
        log(f"added {what} to the Nix store")
    if not needs:
        return
    required = {s: h.features() for s in needs if (h := p.spec.steps[s].hardware) is not None}
    features: list[str] = []
    if required:  # probing the host's hardware only when a needed step declares some
        g = hardware.gate(required)
        if g.unbuildable:
            raise HardwareError(
                "no machine can build the steps this one needs: "
                + "; ".join(f"{s} {g.why(s)}" for s in g.unbuildable),
                hint=hardware.GATE_HINT,
            )
        features = list(g.offered)

    def event(kind: str, name: str, seconds: float) -> None:
        if kind in ("start", "env-start"):
            log(f"building {name} …")

    order = [s for s in p.graph.order() if s in needs]
    outcome = executor.build(p.root, order, event, features=features)
    if outcome.failed or any(s not in outcome.outputs for s in order):
        failed = sorted(outcome.failed) or sorted(s for s in order if s not in outcome.outputs)
        raise BuildError(
            f"step {step} needs {', '.join(failed)}, which failed to build",
            hint=f"run `reproflake build {failed[0]}` to see its log, or "
            f"`reproflake shell {failed[0]}` to debug it",
        )


def enter(description: Path, command: Sequence[str]) -> int:
    """Run nix/step.sh's `shell` mode with the variables a step's description holds."""
    env = {f.name: os.fsdecode(f.read_bytes()) for f in sorted(description.iterdir())}
    with tempfile.TemporaryDirectory(prefix="reproflake-shell-") as top:
        env.update(NIX_BUILD_TOP=top, out=f"{top}/out", shellCommand=shlex.join(command))
        return _proc.interactive([env["busybox"], "sh", "-e", env["script"], "shell"], env=env)


def check_namespaces() -> None:
    """Fail early, and say what to change, where this user may not make the namespaces."""
    unshare = shutil.which("unshare")
    if unshare is None:  # util-linux is missing: the shell itself will say what fails
        return
    result = _proc.run([unshare, "-U", "-r", "-m", "-n", "true"], check=False)
    if result.returncode == 0:
        return
    said = result.stderr.strip().splitlines()[-1:] or ["no reason given"]
    raise NamespaceError(
        "reproflake shell needs a user, mount and network namespace (to be root in its own "
        "namespace, lay out /work and chroot, with no network), and this machine refuses "
        f"them to this user ({os.geteuid()}): unshare: {said[0]}",
        hint=namespace_hint(),
    )


def namespace_hint() -> str:
    """What on this machine turns user namespaces off, as far as /proc tells."""
    sysctl = Path("/proc/sys")
    fixes = []
    for key, bad, fix in (
        ("kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone=1"),
        ("user/max_user_namespaces", "0", "user.max_user_namespaces=15000"),
        (
            "kernel/apparmor_restrict_unprivileged_userns",
            "1",
            "kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile for busybox)",
        ),
    ):
        try:
            if (sysctl / key).read_text().strip() == bad:
                fixes.append(fix)
        except OSError:
            continue
    if fixes:
        return f"as root: sysctl -w {' '.join(fixes)}; or run reproflake shell as root"
    return "allow unprivileged user namespaces on this machine, or run reproflake shell as root"
