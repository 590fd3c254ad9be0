"""GPU steps see the GPU through Nix's pre-build hook, with real Nix and its sandbox.

No GPU exists on the machines that run these tests. Stand-ins: a fake `nvidia-smi` on
PATH (so this machine advertises gpu-nvidia), and a directory standing for the host's
root (REPROFLAKE_GPU_ROOT) holding plain files named like NVIDIA's device nodes and a
fake driver library. The hook, Nix's extra sandbox paths and the step's root are real.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from conftest import git, needs_nix, reproflake
from test_hardware_scheduling import FAKE_SMI, fake_gpu_path

pytestmark = needs_nix

STEPS = """
[steps.train]
env = "base"
run = "ls /dev > $OUT/dev.txt; cat /.reproflake-gpu/lib/libcuda.so.1 > $OUT/lib.txt; echo $LD_LIBRARY_PATH > $OUT/ld.txt"
outputs = ["dev.txt", "lib.txt"]
hardware = { gpu = "nvidia" }

[steps.cpu]
env = "base"
run = "ls /dev > $OUT/dev.txt; ls / > $OUT/root.txt; echo ${LD_LIBRARY_PATH:-none} > $OUT/ld.txt"
outputs = ["dev.txt"]
"""


def fake_host(tmp_path: Path) -> Path:
    """Plain files standing in for /dev/nvidia0, /dev/nvidiactl and libcuda."""
    root = tmp_path / "host"
    (root / "dev").mkdir(parents=True)
    (root / "dev/nvidia0").write_text("")
    (root / "dev/nvidiactl").write_text("")
    lib = root / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libcuda.so.550.54.15").write_text("fake libcuda 550.54.15\n")
    (lib / "libcuda.so.1").symlink_to("libcuda.so.550.54.15")
    return root


def test_a_gpu_step_sees_the_devices_and_driver_and_a_cpu_step_does_not(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    reproflake("init", "-t", "minimal", str(root), cwd=tmp_path)
    with open(root / "reproflake.toml", "a") as f:
        f.write(STEPS.replace("ls /dev", f"echo {uuid.uuid4()} >/dev/null; ls /dev"))
    git("init", "-q", cwd=root)
    reproflake("lock", cwd=root)
    git("add", "-A", cwd=root)
    env = {"PATH": fake_gpu_path(tmp_path), "REPROFLAKE_GPU_ROOT": str(fake_host(tmp_path))}
    reproflake("build", cwd=root, env=env)

    gpu = root / "results/train"
    assert {"nvidia0", "nvidiactl"} <= set((gpu / "dev.txt").read_text().split())
    assert (gpu / "lib.txt").read_text() == "fake libcuda 550.54.15\n"
    assert (gpu / "ld.txt").read_text() == "/.reproflake-gpu/lib\n"
    cpu = root / "results/cpu"
    assert "nvidia0" not in (cpu / "dev.txt").read_text().split()
    assert "nvidiactl" not in (cpu / "dev.txt").read_text().split()
    assert ".reproflake-gpu" not in (cpu / "root.txt").read_text().split()
    assert (cpu / "ld.txt").read_text() == "none\n"

    record = json.loads((root / ".reproflake/cache/provenance.json").read_text())
    profile = record["steps"]["train"]["gpu_profile"]
    assert profile["nvidia"] == [
        {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "550.54.15"}
    ]
    assert profile["cuda"] == "12.4"
    assert "gpu_profile" not in record["steps"]["cpu"]


PINNED = """
[steps.train]
env = "base"
run = "echo {token} > $OUT/model"
outputs = ["model"]
hardware = {{ gpu = "nvidia", pin_profile = true }}
"""


def other_driver_path(tmp_path: Path) -> str:
    """A fake nvidia-smi of the same GPU with another driver (another profile)."""
    tool = tmp_path / "fakebin2/nvidia-smi"
    tool.parent.mkdir()
    tool.write_text(FAKE_SMI.replace("550.54.15", "550.90.07"))
    tool.chmod(0o755)
    return f"{tool.parent}:{os.environ['PATH']}"


def test_a_pinned_profile_rebuilds_for_another_driver(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    reproflake("init", "-t", "minimal", str(root), cwd=tmp_path)
    with open(root / "reproflake.toml", "a") as f:
        f.write(PINNED.format(token=uuid.uuid4()))
    git("init", "-q", cwd=root)
    here = {"PATH": fake_gpu_path(tmp_path)}
    reproflake("lock", cwd=root, env=here)  # lock writes the flake: it resolves the pin too
    git("add", "-A", cwd=root)
    reproflake("build", "train", cwd=root, env=here)
    assert "train: already built" in reproflake("plan", "train", cwd=root, env=here).stdout
    there = {"PATH": other_driver_path(tmp_path)}
    plan = reproflake("plan", "train", cwd=root, env=there).stdout
    assert "train: will build — hardware constraints changed" in plan
    assert "550.54.15" in plan and "550.90.07" in plan
    run = reproflake("build", "train", cwd=root, check=False)  # no (fake) GPU at all
    assert run.returncode == 1, run.output
    assert "steps.train.hardware.pin_profile: true pins this machine's GPU profile" in run.stderr
