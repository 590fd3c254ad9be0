"""Failures a user meets with real Nix: bad hashes, no Nix, a stale lock; and the minimal template."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from conftest import needs_nix, reproflake

pytestmark = needs_nix


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A file served over HTTP on this machine's loopback only."""
    content = os.urandom(4096)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ref.bin").write_bytes(content)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ref.bin", content
    server.shutdown()
    server.server_close()


def add_url_input(root: Path, url: str, sha256: str) -> None:
    with open(root / "reproflake.toml", "a") as f:
        f.write(
            f'\n[inputs.ref]\nurl = "{url}"\nsha256 = "{sha256}"\n'
            '\n[steps.use_ref]\nenv = "py"\ninputs = ["ref"]\n'
            'run = "sha256sum inputs/ref/ref.bin > $OUT/sum"\noutputs = ["sum"]\n'
        )


def test_url_input_is_fetched_and_checked(project_copy: Path, served: tuple[str, bytes]) -> None:
    url, content = served
    digest = hashlib.sha256(content).hexdigest()
    add_url_input(project_copy, url, digest)
    reproflake("lock", cwd=project_copy)
    reproflake("build", "use_ref", cwd=project_copy)
    assert (project_copy / "results/use_ref/sum").read_text().split()[0] == digest


def test_sha256_mismatch_names_the_input_and_both_hashes(
    project_copy: Path, served: tuple[str, bytes]
) -> None:
    url, content = served
    wrong = hashlib.sha256(b"something else" + content).hexdigest()
    add_url_input(project_copy, url, wrong)
    reproflake("lock", cwd=project_copy)
    run = reproflake("build", "use_ref", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "sha256 mismatch for input ref (ref.bin)" in run.stderr
    assert "the lock says" in run.stderr and "the download is" in run.stderr


def test_file_url_mismatch_names_both_hashes(project_copy: Path, tmp_path: Path) -> None:
    data = tmp_path / "local.bin"
    data.write_bytes(os.urandom(1000))
    wrong = "0" * 64
    add_url_input(project_copy, f"file://{data}", wrong)
    # Outside the project: refused, and nothing about the file is said, until this
    # machine's user allows the directory.
    run = reproflake("lock", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert f"inputs.ref.url: file://{data} is outside the project" in run.stderr
    assert hashlib.sha256(data.read_bytes()).hexdigest() not in run.output
    allow = {"REPROFLAKE_READ_OUTSIDE": str(tmp_path)}
    # A local file is checked when locking, with the line of the sha256 to fix.
    run = reproflake("lock", cwd=project_copy, check=False, env=allow)
    assert run.returncode == 2
    actual = hashlib.sha256(data.read_bytes()).hexdigest()
    assert f"inputs.ref.sha256: {data} has sha256 {actual}, not {wrong}" in run.stderr
    assert "reproflake.toml:" in run.stderr
    # Changed after locking: the build checks it again before Nix sees it.
    good = project_copy / "reproflake.toml"
    good.write_text(good.read_text().replace(wrong, actual))
    reproflake("lock", cwd=project_copy, env=allow)
    data.write_bytes(os.urandom(1000))
    run = reproflake("build", "use_ref", cwd=project_copy, check=False, env=allow)
    assert run.returncode == 2
    changed = hashlib.sha256(data.read_bytes()).hexdigest()
    assert f"inputs.ref.sha256: {data} has sha256 {changed}, not {actual}" in run.stderr


def test_missing_nix_says_how_to_install_it(project_copy: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    with open(project_copy / "src/fit.py", "a") as f:
        f.write("# an edit, so the build has work to do\n")
    run = reproflake("build", cwd=project_copy, check=False, env={"PATH": str(empty)})
    assert run.returncode == 1
    assert "Nix is not installed" in run.stderr
    assert "apt-get install nix-bin" in run.stderr


def test_lock_check_fails_on_a_stale_lock(project_copy: Path) -> None:
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('"numpy==2.2.6"', '"numpy==2.2.6", "six"'))
    run = reproflake("lock", "--check", cwd=project_copy, check=False)
    assert run.returncode == 1
    assert "environments.py.python: requirements changed" in run.stderr
    assert "reproflake.lock" in run.stderr
    before = (project_copy / "reproflake.lock").read_bytes()
    assert (project_copy / "reproflake.lock").read_bytes() == before  # --check writes nothing
    import json

    run = reproflake("lock", "--check", "--json", cwd=project_copy, check=False)
    assert run.returncode == 1
    doc = json.loads(run.stdout)
    assert doc["up_to_date"] is False
    assert "environments.py.python: requirements changed" in doc["stale"]


def test_minimal_template_builds(tmp_path: Path) -> None:
    root = tmp_path / "mini"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    reproflake("lock", cwd=root)
    run = reproflake("build", cwd=root)
    assert "summary:" in run.stdout and "0 failed" in run.stdout
    assert (root / "results/hello/hello.txt").read_text() == "hello from a hermetic build\n"
    assert sys.executable  # the CLI ran under this interpreter


def test_project_in_a_subdirectory_of_a_git_repository(tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    mono.mkdir()
    pygit2.init_repository(str(mono))
    (mono / "README").write_text("a monorepo\n")
    root = mono / "analysis" / "pipeline"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    assert not (root / ".git").exists()  # no repository nested inside the monorepo
    reproflake("lock", cwd=root)
    reproflake("build", cwd=root)
    assert (root / "results/hello/hello.txt").read_text() == "hello from a hermetic build\n"
    index = pygit2.Repository(str(mono)).index
    assert "analysis/pipeline/flake.nix" in index
    assert "README" not in index  # only what the flake needs is staged


def test_unreachable_url_input_names_the_input_and_the_cause(project_copy: Path) -> None:
    # A closed port on this machine's loopback: refused at once, nothing leaves the machine.
    add_url_input(project_copy, "http://127.0.0.1:9/gone.bin", "0" * 64)
    reproflake("lock", cwd=project_copy)
    run = reproflake("build", "use_ref", cwd=project_copy, check=False)
    assert run.returncode == 1
    assert "cannot download input ref from http://127.0.0.1:9/gone.bin" in run.stderr
    assert "check the network and the URL" in run.stderr


def test_every_command_that_needs_nix_says_how_to_install_it(
    project_copy: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin-without-nix"
    bin_dir.mkdir()
    for tool in ("git", "dot"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    with open(project_copy / "src/fit.py", "a") as f:
        f.write("# an edit, so nothing is answered from the stamp\n")
    for command in (["plan"], ["graph"], ["build"], ["verify"]):
        run = reproflake(*command, cwd=project_copy, check=False, env={"PATH": str(bin_dir)})
        assert run.returncode == 1, (command, run.output)
        assert "Nix is not installed" in run.stderr, (command, run.stderr)
        assert "apt-get install nix-bin" in run.stderr, command
