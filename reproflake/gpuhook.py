"""Nix's pre-build hook for GPU steps: the machine's GPU device nodes and driver libraries
as extra sandbox paths, for derivations that require a GPU feature, and for no other.

Nix runs the hook (nix.conf ``pre-build-hook``) before each build with the derivation's
path (and the sandbox's root); the hook answers ``extra-sandbox-paths`` followed by one
``INSIDE=OUTSIDE`` line per path and an empty line. This is the mechanism nixpkgs'
nix-required-mounts uses.

What is trusted: only this machine. The derivation (which a project writes) decides
nothing but *whether* the GPU is lent, through its ``requiredSystemFeatures`` — the same
features Nix already schedules it by. *What* is lent comes from the machine: the device
nodes under ``/dev`` and the driver's libraries in the system's library directories.
``REPROFLAKE_GPU_ROOT`` (in the environment of the Nix process, never the project's)
moves that lookup under another directory: for a driver installed elsewhere, and for
tests with stand-in files, since no GPU exists on the machines that run them.

Inside the sandbox the devices keep their paths (/dev/nvidia0, ...) and the libraries
appear under ``/.reproflake-gpu/lib``; nix/step.sh binds that directory into the
step's root and puts it on LD_LIBRARY_PATH.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# Where a GPU step finds the driver's libraries, in the sandbox and in the step's root alike:
# a top-level directory of its own, as the root's /run, /opt, ... are the environment's,
# read-only.
GPU_DIR = "/.reproflake-gpu"
LIB_DIR = GPU_DIR + "/lib"

# The features that lend a GPU, and what each lends: device nodes (globs under /dev) and
# the driver's user-space libraries (globs in the library directories).
DEVICES = {
    "gpu-nvidia": ("nvidia[0-9]*", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                   "nvidia-modeset", "nvidia-caps/*"),
    "gpu-amd": ("kfd", "dri/card[0-9]*", "dri/renderD[0-9]*"),
}  # fmt: skip
LIBRARIES = {
    "gpu-nvidia": ("libcuda.so*", "libcudadebugger.so*", "libnvidia-*.so*", "libnvcuvid.so*"),
    "gpu-amd": (),  # ROCm's user space comes with the step's environment; the kernel driver is all
}
LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib")


def required_features(drv_text: str) -> set[str]:
    """``requiredSystemFeatures`` of a derivation, from its ATerm text (the .drv file).

    In ATerm a string's own quotes are escaped (\\"), so ``("requiredSystemFeatures","``
    only ever starts an environment entry, never text inside one."""
    m = re.search(r'\("requiredSystemFeatures","((?:[^"\\]|\\.)*)"\)', drv_text)
    return set(m.group(1).split()) if m else set()


def _found(root: Path, base: str, patterns: Iterable[str]) -> list[Path]:
    where = root / base
    return sorted({p for pat in patterns for p in where.glob(pat) if p.exists()})


def sandbox_paths(features: set[str], root: Path = Path("/")) -> list[str]:
    """The INSIDE=OUTSIDE lines that lend this machine's GPU to a derivation requiring
    ``features`` (none for a derivation that requires no GPU feature)."""
    lines: dict[str, str] = {}
    for feature in sorted(features & set(DEVICES)):
        for dev in _found(root, "dev", DEVICES[feature]):
            lines["/dev/" + dev.relative_to(root / "dev").as_posix()] = str(dev)
        for lib_dir in LIB_DIRS:
            for lib in _found(root, lib_dir, LIBRARIES[feature]):
                # The name a program loads, the file it resolves to (links are not lent).
                lines.setdefault(f"{LIB_DIR}/{lib.name}", str(lib.resolve()))
    return [f"{inside}={outside}" for inside, outside in sorted(lines.items())]


def answer(drv: Path, root: Path) -> str:
    """What the hook prints for ``drv``: nothing, or Nix's extra-sandbox-paths block."""
    store = os.environ.get("NIX_STORE_DIR", "/nix/store")
    if drv.parent != Path(store) or not drv.name.endswith(".drv") or not drv.is_file():
        return ""  # not a derivation of this store: lend nothing
    paths = sandbox_paths(required_features(drv.read_text(errors="replace")), root)
    return "extra-sandbox-paths\n" + "".join(f"{p}\n" for p in paths) + "\n" if paths else ""


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: python -m reproflake.gpuhook DRV [SANDBOX-ROOT]", file=sys.stderr)
        return 2
    root = Path(os.environ.get("REPROFLAKE_GPU_ROOT") or "/")
    sys.stdout.write(answer(Path(argv[0]), root))
    return 0


def launcher(python: str = sys.executable) -> str:
    """The executable Nix is pointed at (``pre-build-hook`` takes a program, no arguments).

    Nix runs it before every build on the machine, and most derivations need no GPU: a
    .drv that does not even contain a GPU feature's name is answered here, by `grep`
    (nothing lent), without starting Python (about 1 ms instead of 30). Only grep's "no
    match" (exit 1) skips Python; anything else (a match, grep missing or failing) asks
    it. Python runs isolated (-I): not the project's directory nor PYTHON* variables on
    its path."""
    quoted = "'" + python.replace("'", "'\\''") + "'"
    names = " ".join(f"-e {feature}" for feature in sorted(DEVICES))
    return (
        "#!/bin/sh\n"
        "# Generated by reproflake: Nix's pre-build hook for GPU steps.\n"
        f'grep -q -F {names} -- "$1" 2>/dev/null\n'
        "[ $? -eq 1 ] && exit 0\n"
        f'exec {quoted} -I -m reproflake.gpuhook "$@"\n'
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
