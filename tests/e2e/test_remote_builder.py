"""A remote builder over SSH with real Nix: a GPU step is built there, its result lands here.

The builder is this same machine seen through an sshd of the test's own (Debian's
openssh-server, a free port on 127.0.0.1, its own host key, config and authorized key;
the system's sshd is not used). Its Nix has a store of its own (`store = DIR` in the
nix.conf that the SSH session's NIX_CONF_DIR points at), so whatever it builds must be
copied back to be seen here. It advertises `gpu-nvidia`, which this machine lacks: no
GPU exists here, the feature is only a name both sides agree on.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git, needs_nix, reproflake

pytestmark = needs_nix

SSHD = Path("/usr/sbin/sshd")

GPU_STEP = """
[steps.train]
env = "base"
run = "echo trained on the builder > \\"$OUT/model\\""
outputs = ["model"]
hardware = { gpu = "nvidia" }
"""


@dataclass
class Builder:
    uri: str
    port: int
    key: Path
    host_key: str  # base64 of the host's public key line, as /etc/nix/machines wants it
    store: Path  # the builder's own store root (its paths live under store/nix/store)
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[Builder]:
    assert SSHD.exists(), "openssh-server is missing: run scripts/install-deps.sh"
    d = tmp_path / "builder"
    (d / "conf").mkdir(parents=True)
    keygen(d / "host")
    keygen(d / "client")
    shutil.copy(d / "client.pub", d / "authorized_keys")
    (d / "conf/nix.conf").write_text(
        f"store = {d / 'store'}\n"
        "system-features = benchmark big-parallel gpu-nvidia kvm nixos-test\n"
        "extra-experimental-features = nix-command ca-derivations\n"
        "sandbox = true\nsandbox-fallback = false\nsubstituters =\n"
    )
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        # The temporary directory is not root's own: sshd's ownership checks would refuse it.
        "StrictModes no\n"
        f"PidFile {d / 'sshd.pid'}\n"
        # The builder's Nix configuration, for the sessions of this sshd only.
        f"SetEnv NIX_CONF_DIR={d / 'conf'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the test's sshd did not start"
            time.sleep(0.1)
    host_key = (d / "host.pub").read_bytes()
    import base64

    b = Builder(
        "ssh-ng://root@127.0.0.1",
        port,
        d / "client",
        base64.b64encode(host_key).decode(),
        d / "store",
        process,
    )
    yield b
    b.stop()


def project_with_builder(tmp_path: Path, b: Builder) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config/reproflake/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[[builders]]\nhost = "{b.uri}"\nssh_key = "{b.key}"\n'
        f'features = ["gpu-nvidia"]\nhost_key = "{b.host_key}"\n'
    )
    root = tmp_path / "proj"
    reproflake("init", "-t", "minimal", str(root), cwd=tmp_path)
    with open(root / "reproflake.toml", "a") as f:
        # A fresh step each run: the builder must really build it.
        f.write(GPU_STEP.replace("on the builder", f"on the builder {uuid.uuid4()}"))
    git("init", "-q", cwd=root)
    # The port travels the way Nix documents: NIX_SSHOPTS (machines lines have no port).
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "NIX_SSHOPTS": f"-p {b.port}"}
    reproflake("lock", cwd=root, env=env)
    git("add", "-A", cwd=root)
    return root, env


def test_a_gpu_step_is_built_on_the_builder_and_lands_here(
    tmp_path: Path, builder: Builder
) -> None:
    root, env = project_with_builder(tmp_path, builder)
    plan = reproflake("plan", cwd=root, env=env).stdout
    assert "train: will build — " in plan
    assert "on the remote builder ssh-ng://root@127.0.0.1" in plan
    assert "cannot build here" not in plan

    run = reproflake("build", cwd=root, env=env)
    assert "0 failed" in run.stdout, run.output
    out = str((root / "results/train").readlink())
    assert (root / "results/train/model").read_text().startswith("trained on the builder ")
    # Built in the builder's own store, then copied into this one.
    assert (builder.store / out.lstrip("/")).is_dir()
    subprocess.run(["nix-store", "--check-validity", out], check=True)
    hello = str((root / "results/hello").readlink())
    assert not (builder.store / hello.lstrip("/")).exists()  # the CPU step stayed here
    record = json.loads((root / ".reproflake/cache/provenance.json").read_text())
    assert record["steps"]["train"]["built_on"] == "ssh-ng://root@127.0.0.1"
    assert record["steps"]["train"]["built_here"] is False
    assert record["steps"]["hello"]["built_on"] in ("this machine", None)  # None: built before

    # verify rebuilds it there too (this machine still lacks the feature).
    run = reproflake("verify", "train", "--vary", "umask", "--json", cwd=root, env=env, check=False)
    assert run.returncode == 0, run.output
    assert json.loads(run.stdout)["steps"]["train"]["verdict"] == "identical"

    # The builder goes down: a step that needs it is refused with a clear message.
    builder.stop()
    spec = root / "reproflake.toml"
    spec.write_text(spec.read_text().replace("on the builder", "again"))
    git("add", "-A", cwd=root)
    run = reproflake("build", "train", cwd=root, env=env, check=False)
    assert run.returncode == 1, run.output
    assert "step train needs a machine with" in run.stderr
    assert "the remote builder ssh-ng://root@127.0.0.1 that offers it did not answer" in run.stderr, run.stderr
    assert "Traceback" not in run.output
