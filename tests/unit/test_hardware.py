"""Hardware constraints → Nix system features, and the host probe.

There is no GPU on the machines that run these tests, so a fake `nvidia-smi`
on PATH stands in for the driver's tool; everything else is real.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reproflake import hardware
from reproflake.errors import SpecError
from reproflake.spec import Hardware, parse

BASE = """
[project]
name = "hw"
[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"
[environments.base]
debian = []
[steps.train]
env = "base"
run = "true"
outputs = ["x"]
"""

FAKE_SMI = """#!/bin/sh
# A stand-in for NVIDIA's nvidia-smi: prints what the real one prints on an H100.
if [ "$1" = "--query-gpu=name,compute_cap,driver_version" ]; then
  echo "NVIDIA H100 80GB HBM3, 9.0, 550.54.15"
  exit 0
fi
echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |"
"""


@pytest.fixture
def fake_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text(FAKE_SMI)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")


def fake_proc(tmp_path: Path, flags: str = "fpu sse2 avx2", mem_kb: int = 32 * 1024 * 1024) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cpuinfo").write_text(f"model name\t: Test CPU\nflags\t\t: {flags}\n")
    (proc / "meminfo").write_text(f"MemTotal:       {mem_kb} kB\n")
    return proc


def test_constraints_become_features() -> None:
    hw = Hardware(
        gpu="nvidia", compute_capability="8.0", cuda="12.2", cpu_features=("avx2",), memory_gb=16
    )
    assert hw.features() == ("cpu-avx2", "cuda-12.2", "gpu-nvidia", "gpu-sm-8.0", "memory-16g")


def test_spec_parses_hardware() -> None:
    text = (
        BASE
        + 'hardware = { gpu = "nvidia", cuda = "12.2", cpu_features = ["avx2"], memory_gb = 8 }\n'
    )
    step = parse(text, Path("/p/reproflake.toml")).steps["train"]
    assert step.hardware == Hardware(gpu="nvidia", cuda="12.2", cpu_features=("avx2",), memory_gb=8)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('{ gpu = "voodoo" }', "expected one of: amd, nvidia"),
        ('{ gpu = "nvidia", cuda = "twelve" }', 'expected a version like "8.0"'),
        ('{ cuda = "12.2" }', 'compute_capability and cuda need gpu = "nvidia"'),
        ('{ cpu_features = ["AVX 2"] }', "is not a CPU flag"),
        ("{ memory_gb = 0 }", "expected a positive integer"),
        ("{ tpu = true }", "unknown key 'tpu'"),
    ],
)
def test_bad_hardware_is_a_clear_error(table: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(BASE + f"hardware = {table}\n", Path("/p/reproflake.toml"))
    assert problem in str(err.value)
    assert "/p/reproflake.toml:13" in str(err.value)  # the hardware line


def test_probe_without_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    host = hardware.probe(fake_proc(tmp_path))
    assert host.gpus == () and host.cuda is None
    assert host.offers("cpu-avx2") and not host.offers("cpu-avx512f")
    assert host.offers("memory-32g") and not host.offers("memory-33g")
    assert host.missing(["gpu-nvidia", "cpu-avx2"]) == ["gpu-nvidia"]
    assert "no NVIDIA GPU" in host.describe()


def test_probe_with_fake_nvidia_smi(tmp_path: Path, fake_gpu: None) -> None:
    host = hardware.probe(fake_proc(tmp_path))
    assert host.gpus == (hardware.Gpu("NVIDIA H100 80GB HBM3", "9.0", "550.54.15"),)
    assert host.cuda == "12.4"
    assert host.offers("gpu-nvidia")
    assert (
        host.offers("gpu-sm-8.0") and host.offers("gpu-sm-9.0") and not host.offers("gpu-sm-10.0")
    )
    assert host.offers("cuda-12.2") and host.offers("cuda-12.4") and not host.offers("cuda-12.10")


def test_advertised_features_list_every_minimum_met(tmp_path: Path, fake_gpu: None) -> None:
    host = hardware.probe(fake_proc(tmp_path, mem_kb=4 * 1024 * 1024), tmp_path / "sys")
    found = hardware.advertised(host, required=["gpu-sm-8.1", "cuda-12.9"])
    # Nix matches features exactly: every minimum the machine meets is advertised.
    assert {
        "gpu-nvidia",
        "gpu-sm-8.0",
        "gpu-sm-8.1",
        "gpu-sm-9.0",
        "cuda-12.2",
        "cuda-12.4",
    } <= set(found)
    assert {"gpu-sm-10.0", "cuda-12.5", "cuda-12.9", "gpu-amd", "memory-5g"}.isdisjoint(found)
    assert {"cpu-avx2", "memory-1g", "memory-4g"} <= set(found)
    assert list(found) == sorted(found)
    line = hardware.nix_conf_line(["gpu-nvidia", "cpu-avx2"], ["kvm", "big-parallel"])
    assert line == "system-features = big-parallel kvm cpu-avx2 gpu-nvidia"
    assert hardware.machines_line("gpu1.lab", ["gpu-nvidia", "cpu-avx2"], 8) == (
        "ssh-ng://root@gpu1.lab x86_64-linux - 8 1 cpu-avx2,gpu-nvidia - -"
    )


def test_probe_finds_amd_gpus_in_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither nvidia-smi nor rocm-smi
    sys_root = tmp_path / "sys"
    for card, vendor in (("card0", "0x1002"), ("card1", "0x8086"), ("card0-DP-1", "0x1002")):
        device = sys_root / "class/drm" / card / "device"
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n")
        (device / "device").write_text("0x740f\n")
    host = hardware.probe(fake_proc(tmp_path), sys_root)
    assert host.amd_gpus == (hardware.AmdGpu("AMD GPU 0x740f", "", "amdgpu"),)
    assert host.offers("gpu-amd") and not host.offers("gpu-nvidia")
    assert "gpu-amd" in hardware.advertised(host)


# --------------------------------------------------------------------------- pin_profile

H100 = hardware.HostProfile(
    "Test CPU", (), 16, (hardware.Gpu("NVIDIA H100 80GB HBM3", "9.0", "550.54.15"),), "12.4"
)


def pinned(value: str) -> str:
    return BASE + f'hardware = {{ gpu = "nvidia", pin_profile = {value} }}\n'


def test_a_pinned_profile_is_a_feature_of_its_own_and_part_of_the_hash() -> None:
    spec = parse(pinned('"NVIDIA H100 80GB HBM3, driver 550.54.15"'), Path("/p/reproflake.toml"))
    hw = spec.steps["train"].hardware
    assert hw is not None
    feature = (
        "gpu-profile-"
        + __import__("hashlib").sha256(b"NVIDIA H100 80GB HBM3, driver 550.54.15").hexdigest()[:16]
    )
    assert hw.features() == ("gpu-nvidia", feature)
    assert hw.as_dict()["pin_profile"] == "NVIDIA H100 80GB HBM3, driver 550.54.15"
    assert H100.offers(feature)
    assert feature in hardware.advertised(H100)
    other = hardware.HostProfile(
        "Test CPU", (), 16, (hardware.Gpu("NVIDIA H100 80GB HBM3", "9.0", "550.90.07"),), "12.4"
    )
    assert not other.offers(feature)  # another driver is another profile


def test_pin_profile_true_becomes_this_machines_profile() -> None:
    spec = parse(pinned("true"), Path("/p/reproflake.toml"))
    resolved = hardware.resolve_pins(spec, H100)
    hw = resolved.steps["train"].hardware
    assert hw is not None and hw.pin_profile == "NVIDIA H100 80GB HBM3, driver 550.54.15"
    assert hardware.resolve_pins(parse(BASE, Path("/p/reproflake.toml"))).steps  # no probe


def test_pin_profile_true_without_a_gpu_is_a_clear_error() -> None:
    from reproflake.errors import HardwareError

    spec = parse(pinned("true"), Path("/p/reproflake.toml"))
    none = hardware.HostProfile("Test CPU", (), 16, (), None)
    with pytest.raises(HardwareError) as err:
        hardware.resolve_pins(spec, none)
    assert "steps.train.hardware.pin_profile: true pins this machine's GPU profile" in str(
        err.value
    )
    assert "no NVIDIA GPU" in str(err.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3", "expected true, false or a GPU profile string, got an integer"),
        ('""', "expected true, false or a GPU profile string"),
    ],
)
def test_a_bad_pin_profile_is_refused(value: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(pinned(value), Path("/p/reproflake.toml"))
    assert message in str(err.value)
    assert "reproflake.toml:" in str(err.value)


def test_pin_profile_needs_an_nvidia_gpu() -> None:
    text = BASE + 'hardware = { gpu = "amd", pin_profile = true }\n'
    with pytest.raises(SpecError) as err:
        parse(text, Path("/p/reproflake.toml"))
    assert 'pin_profile needs gpu = "nvidia"' in str(err.value)
