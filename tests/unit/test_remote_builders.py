"""Remote builders: the user's [[builders]] as Nix's machines, and the hardware gate's verdict.

No GPU exists on the machines that run these tests: host profiles are written by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reproflake import hardware, remote
from reproflake.hardware import Gpu, HostProfile

NO_GPU = HostProfile("Test CPU", ("avx2", "sse2"), 16, (), None)
H100 = HostProfile(
    "Test CPU", ("avx2", "sse2"), 16, (Gpu("NVIDIA H100 80GB HBM3", "9.0", "550.54.15"),), "12.4"
)


@pytest.fixture(autouse=True)
def _no_nix_conf_builders(monkeypatch: pytest.MonkeyPatch) -> None:
    # The gate asks Nix for nix.conf's builders; these tests are about reproflake's own.
    monkeypatch.setattr(hardware, "remote_builders_configured", lambda: False)


def write_config(text: str) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "reproflake/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_builder_is_one_machines_line_that_offers_content_addressing() -> None:
    write_config(
        '[[builders]]\nhost = "ssh-ng://root@gpu1"\nssh_key = "/k/id"\n'
        'features = ["gpu-nvidia"]\nmax_jobs = 2\nhost_key = "QUJD"\n'
    )
    r = remote.load()
    # Steps are content-addressed: Nix requires ca-derivations of whoever builds them.
    assert r.builders_setting() == (
        "ssh-ng://root@gpu1 x86_64-linux /k/id 2 1 ca-derivations,gpu-nvidia - QUJD"
    )
    assert r.offers() == {"ssh-ng://root@gpu1": ("ca-derivations", "gpu-nvidia")}


def test_a_bad_builder_names_the_file_and_key() -> None:
    path = write_config('[[builders]]\nhost = "gpu1"\n')
    with pytest.raises(remote.ConfigError) as err:
        remote.load()
    assert str(err.value).startswith(f"{path}: builders[0].host: expected ssh-ng://USER@HOST\n")


def test_a_step_only_a_builder_offers_is_sent_there() -> None:
    g = hardware.gate(
        {"train": ["gpu-nvidia"], "fit": ["cpu-avx2"]},
        host=NO_GPU,
        builders={"ssh-ng://root@gpu1": ["ca-derivations", "gpu-nvidia"]},
    )
    assert g.unbuildable == {}
    assert g.remote == {"train": "ssh-ng://root@gpu1"}
    assert g.offered == ("cpu-avx2",)


def test_a_builder_must_offer_every_feature_of_the_step() -> None:
    # Nix picks one machine for a step: this machine's avx2 does not help the builder.
    g = hardware.gate(
        {"train": ["cpu-avx2", "gpu-nvidia"]},
        host=NO_GPU,
        builders={"ssh-ng://root@gpu1": ["gpu-nvidia"]},
    )
    assert g.remote == {}
    assert g.why("train") == (
        "needs gpu-nvidia; this machine has Test CPU; 16 GB; no NVIDIA GPU; no CUDA driver, "
        "and no configured remote builder offers all of them "
        "(ssh-ng://root@gpu1 offers gpu-nvidia)"
    )


def test_without_builders_the_refusal_says_so() -> None:
    g = hardware.gate({"train": ["gpu-amd"]}, host=H100)
    assert g.why("train").endswith(", and no remote builder is configured")
    assert "Nix has no remote builders" not in hardware.GATE_HINT
    assert "[[builders]]" in hardware.GATE_HINT


def test_the_local_gpu_wins_over_a_builder() -> None:
    g = hardware.gate(
        {"train": ["gpu-nvidia"]}, host=H100, builders={"ssh-ng://root@gpu1": ["gpu-nvidia"]}
    )
    assert g.remote == {} and g.unbuildable == {} and g.offered == ("gpu-nvidia",)
