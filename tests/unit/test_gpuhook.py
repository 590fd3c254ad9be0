"""The GPU pre-build hook: which derivations are lent the GPU, and what they are lent.

No GPU exists on the machines that run these tests: a temporary directory stands for the
host's root, with plain files named like the device nodes and a fake driver library.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reproflake import gpuhook
from reproflake.cli import main

DRV = (
    'Derive([("out","","r:sha256","")],[],[],"x86_64-linux","/nix/store/x-busybox",[],'
    '[("builder","/nix/store/x-busybox"),("name","reproflake-step-train"),'
    '("requiredSystemFeatures","{features}"),("var_NOTE","{note}")])'
)


def drv(store: Path, features: str, note: str = "") -> Path:
    path = store / "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-reproflake-step-train.drv"
    path.write_text(DRV.format(features=features, note=note))
    return path


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "dev/nvidia-caps").mkdir(parents=True)
    for name in (
        "nvidia0",
        "nvidia1",
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-caps/nvidia-cap1",
        "null",
    ):
        (root / "dev" / name).write_text("")
    lib = root / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libcuda.so.550.54.15").write_text("")
    (lib / "libcuda.so.1").symlink_to("libcuda.so.550.54.15")
    (lib / "libnvidia-ml.so.1").write_text("")
    (lib / "libc.so.6").write_text("")
    return root


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("NIX_STORE_DIR", str(store))
    return store


def test_a_gpu_derivation_is_lent_the_devices_and_driver(host: Path, store: Path) -> None:
    out = gpuhook.answer(drv(store, "ca-derivations gpu-nvidia"), host)
    lib = host / "usr/lib/x86_64-linux-gnu"
    assert out == (
        "extra-sandbox-paths\n"
        f"/.reproflake-gpu/lib/libcuda.so.1={lib / 'libcuda.so.550.54.15'}\n"
        f"/.reproflake-gpu/lib/libcuda.so.550.54.15={lib / 'libcuda.so.550.54.15'}\n"
        f"/.reproflake-gpu/lib/libnvidia-ml.so.1={lib / 'libnvidia-ml.so.1'}\n"
        f"/dev/nvidia-caps/nvidia-cap1={host / 'dev/nvidia-caps/nvidia-cap1'}\n"
        f"/dev/nvidia-uvm={host / 'dev/nvidia-uvm'}\n"
        f"/dev/nvidia0={host / 'dev/nvidia0'}\n"
        f"/dev/nvidia1={host / 'dev/nvidia1'}\n"
        f"/dev/nvidiactl={host / 'dev/nvidiactl'}\n"
        "\n"
    )


def test_a_cpu_derivation_is_lent_nothing(host: Path, store: Path) -> None:
    assert gpuhook.answer(drv(store, "ca-derivations cpu-avx2"), host) == ""


def test_text_in_the_derivation_cannot_ask_for_the_gpu(host: Path, store: Path) -> None:
    # A step's variable holding what looks like the features entry: escaped in ATerm.
    note = '\\"),(\\"requiredSystemFeatures\\",\\"gpu-nvidia'
    assert gpuhook.answer(drv(store, "ca-derivations", note), host) == ""


def test_only_derivations_of_the_store_are_read(host: Path, store: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv"
    elsewhere.write_text(DRV.format(features="gpu-nvidia", note=""))
    assert gpuhook.answer(elsewhere, host) == ""
    assert gpuhook.answer(store / "missing.drv", host) == ""


def test_the_launcher_runs_the_hook_isolated(
    host: Path, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = tmp_path / "hook"
    launcher.write_text(gpuhook.launcher())
    launcher.chmod(0o755)
    # A directory named like the package where Nix runs the hook (the project) is ignored.
    (tmp_path / "reproflake").mkdir()
    (tmp_path / "reproflake/gpuhook.py").write_text("print('the project ran')\n")
    env = {**os.environ, "REPROFLAKE_GPU_ROOT": str(host)}
    out = subprocess.run(
        [str(launcher), str(drv(store, "gpu-nvidia"))],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("extra-sandbox-paths\n/.reproflake-gpu/lib/libcuda.so.1=")
    assert f"'{sys.executable}' -I -m reproflake.gpuhook" in gpuhook.launcher()


def test_hw_installs_the_hook_and_prints_its_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    target = tmp_path / "etc/gpu-hook"
    target.parent.mkdir()
    result = CliRunner().invoke(main, ["hw", "--install-hook", str(target)])
    assert result.exit_code == 0, result.output
    assert f"  pre-build-hook = {target}\n" in result.output
    assert target.read_text() == gpuhook.launcher()
    assert os.access(target, os.X_OK)
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(main, ["hw", "--install-hook", str(tmp_path / "a-file/hook")])
    assert result.exit_code == 2
    assert "cannot write the GPU hook to" in result.output


@pytest.mark.parametrize(
    ("features", "path_has_grep", "python_runs"),
    [
        ("", True, False),  # most derivations: answered by grep alone
        ("big-parallel", True, False),
        ("gpu-nvidia", True, True),
        ("gpu-amd", True, True),
        ("", False, True),  # no grep: Python decides, as before
    ],
)
def test_the_launcher_starts_python_only_for_a_gpu_feature(
    store: Path, tmp_path: Path, features: str, path_has_grep: bool, python_runs: bool
) -> None:
    ran = tmp_path / "python-ran"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" > {ran}\n')
    fake.chmod(0o755)
    launcher = tmp_path / "hook"
    launcher.write_text(gpuhook.launcher(str(fake)))
    launcher.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if path_has_grep:
        (bin_dir / "grep").symlink_to("/bin/grep")
    out = subprocess.run(
        ["/bin/sh", str(launcher), str(drv(store, features))],
        env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out == ""
    assert ran.exists() == python_runs
    if python_runs:
        assert ran.read_text().startswith("-I -m reproflake.gpuhook ")
