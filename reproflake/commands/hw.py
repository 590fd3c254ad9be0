"""`reproflake hw`: this machine's hardware, and how to advertise it to Nix."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from reproflake import executor, hardware
from reproflake.commands._project import Log
from reproflake.errors import SpecError, UsageError
from reproflake.spec import gpu_profile_feature


def _project_features(start: Path) -> tuple[str, ...]:
    """The features a project's steps require, when run inside one (else none)."""
    from reproflake.spec import find_spec, load

    try:
        spec = load(find_spec(start))
    except SpecError:
        return ()
    return tuple(
        f for step in spec.steps.values() if step.hardware for f in step.hardware.features()
    )


def run(start: Path, *, as_json: bool, out: Log, hook: Path | None = None) -> int:
    host = hardware.probe()
    hook_line = None
    if hook is not None:
        # For Nix itself (builds on this machine as a remote builder, plain `nix build`):
        # `reproflake build` passes the hook by itself when this machine offers a GPU.
        try:
            hook_line = f"pre-build-hook = {executor.install_gpu_hook(hook.absolute())}"
        except OSError as exc:
            raise UsageError(
                f"cannot write the GPU hook to {hook}: {exc.strerror}",
                hint="choose a writable path (as root: /etc/nix/reproflake-gpu-hook)",
            ) from None
    features = hardware.advertised(host, _project_features(start))
    defaults = hardware.nix_default_features()
    jobs = len(os.sched_getaffinity(0))
    conf = hardware.nix_conf_line(features, defaults)
    machine = hardware.machines_line(socket.getfqdn(), [*defaults, *features], jobs)
    if as_json:
        doc = {
            "host": host.as_dict(),
            "features": list(features),
            "nix_conf": conf,
            "machines": machine,
            "pre_build_hook": hook_line,
        }
        out(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    out(f"cpu: {host.cpu_model} ({len(host.cpu_flags)} flags)")
    out(f"memory: {host.memory_gb} GB")
    for g in host.gpus:
        out(f"gpu: {g.name}, compute capability {g.compute_capability}, driver {g.driver}")
        out(f"profile: {g.profile} (pin_profile feature {gpu_profile_feature(g.profile)})")
    for a in host.amd_gpus:
        out(f"gpu: {a.name}{f' ({a.gfx})' if a.gfx else ''}, driver {a.driver}")
    if not host.gpus and not host.amd_gpus:
        out("gpu: none found (nvidia-smi, rocm-smi, /sys/class/drm)")
    out(f"cuda: {host.cuda or 'none'}")
    out(f"features: {' '.join(features)}")
    out("\nTo build steps that need these features on this machine, add to /etc/nix/nix.conf:")
    out(f"  {conf}")
    out("To offer this machine to others as a remote builder, add to their /etc/nix/machines:")
    out(f"  {machine}")
    if hook_line:
        out(f"Wrote {hook}; to lend this machine's GPU to GPU steps, add to /etc/nix/nix.conf:")
        out(f"  {hook_line}")
    return 0
