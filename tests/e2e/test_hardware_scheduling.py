"""Hardware constraints with real Nix: scheduled only where the machine offers them.

No GPU exists on the machines that run these tests: a fake `nvidia-smi` on PATH
stands in for the driver's tool (the only fake here). Nix, the sandbox and the
scheduling by system features are real.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

from conftest import git, needs_nix, reproflake

pytestmark = needs_nix

FAKE_SMI = """#!/bin/sh
if [ "$1" = "--query-gpu=name,compute_cap,driver_version" ]; then
  echo "NVIDIA H100 80GB HBM3, 9.0, 550.54.15"; exit 0
fi
echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |"
"""


def gpu_step(root: Path, cuda: str = "12.2") -> None:
    with open(root / "reproflake.toml", "a") as f:
        f.write(
            f'\n[steps.train]\nenv = "py"\nrun = "echo {uuid.uuid4()} > $OUT/model"\n'
            f'outputs = ["model"]\nhardware = {{ gpu = "nvidia", cuda = "{cuda}", cpu_features = ["sse2"] }}\n'
        )


def fake_gpu_path(tmp_path: Path) -> str:
    tool = tmp_path / "fakebin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text(FAKE_SMI)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return f"{tool.parent}{os.pathsep}{os.environ['PATH']}"


def test_gpu_step_without_a_gpu_is_a_clear_error(project_copy: Path) -> None:
    gpu_step(project_copy)
    run = reproflake("build", "train", cwd=project_copy, check=False)
    assert run.returncode == 1
    assert "no machine can build these steps: train needs cuda-12.2, gpu-nvidia" in run.stderr
    assert "no NVIDIA GPU" in run.stderr
    assert "remote builder" in run.stderr
    plan = reproflake("plan", "train", cwd=project_copy).stdout
    assert "train: cannot build here — needs cuda-12.2, gpu-nvidia" in plan
    assert "1 cannot build here" in plan
    # Other steps still build.
    reproflake("build", "report", cwd=project_copy)


def test_gpu_step_builds_where_the_gpu_is(project_copy: Path, tmp_path: Path) -> None:
    gpu_step(project_copy)
    path = fake_gpu_path(tmp_path)
    run = reproflake("build", "train", cwd=project_copy, env={"PATH": path})
    assert "1 built" in run.stdout
    provenance = json.loads((project_copy / ".reproflake/cache/provenance.json").read_text())
    assert provenance["host"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert provenance["host"]["cuda"] == "12.4"
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('cuda = "12.2"', 'cuda = "12.4"'))
    plan = reproflake("plan", "train", cwd=project_copy, env={"PATH": path}).stdout
    assert "train: will build — hardware constraints changed" in plan
    spec.write_text(spec.read_text().replace('cuda = "12.4"', 'cuda = "12.2"'))
    # A constraint the (fake) GPU cannot meet is refused.
    spec.write_text(spec.read_text().replace('cuda = "12.2"', 'cuda = "13.0"'))
    plan = reproflake("plan", "train", cwd=project_copy, env={"PATH": path}).stdout
    assert "train: cannot build here — needs cuda-13.0" in plan  # the (fake) GPU has 12.4
    run = reproflake("build", "train", cwd=project_copy, check=False, env={"PATH": path})
    assert run.returncode == 1
    assert "train needs cuda-13.0" in run.stderr


def test_diff_names_changed_hardware_constraints(project_copy: Path) -> None:
    gpu_step(project_copy)
    git("add", "-A", cwd=project_copy)
    git("commit", "-qm", "gpu step", cwd=project_copy)
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('cuda = "12.2"', 'cuda = "13.0"'))
    out = reproflake("diff", cwd=project_copy).stdout
    assert "hardware constraints:\n  train: gpu nvidia, cuda 12.2" in out
    assert "→ gpu nvidia, cuda 13.0" in out
    assert "train: hardware constraints changed" in out
