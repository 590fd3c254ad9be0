"""Binary caches with real Nix: push to a cache, substitute every step in a second store.

The second store is a separate Nix store root (`store = DIR` through NIX_CONFIG): its
paths live under DIR/nix/store. The HTTP cache is a static file server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from conftest import git, needs_nix, reproflake

pytestmark = needs_nix

SHOUT = """
[steps.shout]
env = "base"
run = "tr a-z A-Z < results/hello/hello.txt > \\"$OUT/loud.txt\\""
needs = ["hello"]
outputs = ["loud.txt"]
"""


def keypair(tmp: Path, name: str) -> tuple[Path, str]:
    secret, public = tmp / f"{name}.sec", tmp / f"{name}.pub"
    subprocess.run(
        ["nix-store", "--generate-binary-cache-key", name, str(secret), str(public)], check=True
    )
    return secret, public.read_text().strip()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_cache(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "cache"
    root.mkdir()
    handler = partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def clone_with_cache(src: Path, dest: Path, url: str, key: str) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True)
    with open(dest / "reproflake.toml", "a") as f:
        f.write(f'\n[cache]\nurls = ["{url}"]\npublic_keys = ["{key}"]\n')
    return dest


def test_push_then_a_fresh_store_substitutes_every_step(
    tmp_path: Path, http_cache: tuple[Path, str]
) -> None:
    cache_dir, url = http_cache
    secret, public = keypair(tmp_path, "lab-a")
    _, other = keypair(tmp_path, "lab-b")
    config = tmp_path / "config-a"
    (config / "reproflake").mkdir(parents=True)
    (config / "reproflake/config.toml").write_text(
        f'[cache]\npush = "file://{cache_dir}?compression=zstd"\nsecret_key = "{secret}"\n'
    )
    a = tmp_path / "a"
    reproflake("init", "-t", "minimal", str(a), cwd=tmp_path)
    with open(a / "reproflake.toml", "a") as f:
        f.write(SHOUT)
    reproflake("lock", cwd=a)
    git("init", "-q", cwd=a)
    git("add", "-A", cwd=a)
    git("commit", "-qm", "a", cwd=a)
    env_a = {"XDG_CONFIG_HOME": str(config)}
    reproflake("build", cwd=a, env=env_a)
    pushed = reproflake("push", cwd=a, env=env_a).stdout
    assert "pushed 2 step(s)" in pushed
    assert list((cache_dir / "realisations").iterdir())  # content-addressed steps' mappings

    # A fresh clone in a separate, empty store, trusting lab-a: nothing is built.
    nobody = tmp_path / "config-none"
    b = clone_with_cache(a, tmp_path / "b", url, public)
    env_b = {"XDG_CONFIG_HOME": str(nobody), "NIX_CONFIG": f"store = {tmp_path / 'store-b'}"}
    run = reproflake("build", cwd=b, env=env_b)
    assert "summary: 0 built, 2 fetched from a cache" in run.stdout, run.output
    assert "building " not in run.stderr  # Nix started no step
    loud = next((tmp_path / "store-b/nix/store").glob("*-reproflake-step-shout"))
    assert (loud / "loud.txt").read_text() == "HELLO FROM A HERMETIC BUILD\n"

    # Trusting only lab-b: the cache's entries are not taken; the steps build here.
    c = clone_with_cache(a, tmp_path / "c", url, other)
    env_c = {"XDG_CONFIG_HOME": str(nobody), "NIX_CONFIG": f"store = {tmp_path / 'store-c'}"}
    run = reproflake("build", cwd=c, env=env_c)
    assert "summary: 2 built" in run.stdout, run.output
    # Nix 2.8 itself takes content-addressed results signed by any key: reproflake refuses.
    assert "refused 2 step result(s) from the cache, not signed by a trusted key: hello, shout" in (
        run.stderr
    )

    # pull into yet another store takes everything without building.
    env_d = {"XDG_CONFIG_HOME": str(nobody), "NIX_CONFIG": f"store = {tmp_path / 'store-d'}"}
    run = reproflake("pull", cwd=b, env=env_d)
    assert "summary: 2 pulled, 0 not in the cache" in run.stdout

    # The cache down: a one-line warning, a local build; pull fails naming the steps.
    shutil.rmtree(cache_dir)
    down = clone_with_cache(a, tmp_path / "down", "http://127.0.0.1:9", public)
    env_e = {"XDG_CONFIG_HOME": str(nobody), "NIX_CONFIG": f"store = {tmp_path / 'store-e'}"}
    run = reproflake("build", cwd=down, env=env_e)
    warnings = [x for x in run.stderr.splitlines() if "unreachable" in x]
    assert len(warnings) == 1 and "building without it" in warnings[0]
    assert "summary: 2 built" in run.stdout
    env_f = {"XDG_CONFIG_HOME": str(nobody), "NIX_CONFIG": f"store = {tmp_path / 'store-f'}"}
    run = reproflake("pull", cwd=down, env=env_f, check=False)
    assert run.returncode == 1
    assert "could not get hello, shout" in run.stderr
