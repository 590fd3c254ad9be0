"""Real end-to-end runs: the reproflake CLI, real Nix with the sandbox on, real packages.

Nothing here is mocked. The Debian mirror and Python index come from this
machine's apt and pip configuration, as they would for a user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import teststore

NIX = shutil.which("nix")
# Without Nix a developer may run the unit tests alone; in CI a missing Nix is a failure,
# never a silent skip.
needs_nix = pytest.mark.skipif(
    NIX is None and not os.environ.get("CI"), reason="Nix is not installed"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory is end-to-end (`pytest -m "not e2e"` runs the rest)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


# The session's own Nix store (tests/teststore.py), or why it has none: set once, after
# collection and before the first test.
_STORE: teststore.IsolatedStore | None = None
_NO_STORE: str | None = None
_NO_STORE_FAILS = False


def pytest_collection_finish(session: pytest.Session) -> None:
    """When end-to-end tests are selected, mount the tests' own Nix store over /nix for this
    process and its children. A hook, not a fixture: entering a mount namespace needs a
    process with one thread, as it is before any test has run."""
    global _STORE, _NO_STORE, _NO_STORE_FAILS
    here = Path(__file__).parent
    if session.config.option.collectonly or NIX is None:
        return
    if not any(here in Path(str(item.fspath)).parents for item in session.items):
        return
    try:
        _STORE = teststore.isolate(os.environ)
    except teststore.StoreUnavailable as e:
        _NO_STORE = str(e)
        return
    except teststore.StoreError as e:
        _NO_STORE, _NO_STORE_FAILS = str(e), True
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"end-to-end tests: Nix store {_STORE.root / 'nix'} mounted over /nix "
            f"({_STORE.seeded} pinned files copied from the machine's store)"
        )


@pytest.fixture(scope="session", autouse=True)
def isolated_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[teststore.IsolatedStore | None]:
    """No end-to-end test runs against the machine's store. Without root the tests are
    skipped (a developer's unit-test run), and fail in CI; a setup that went wrong fails.
    At the end, the environments this session used stay rooted for the next one."""
    if _NO_STORE is not None:
        if _NO_STORE_FAILS or os.environ.get("CI"):
            pytest.fail(_NO_STORE, pytrace=False)
        pytest.skip(_NO_STORE)
    yield _STORE
    if _STORE is not None:
        teststore.keep(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """reproflake's caches (indexes, seeds, hashes' secret, crash log) for this session
    only: a test never reads what another run, or the user, left behind."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if saved is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = saved


# Settings a developer's shell may carry that change what reproflake does (caches to
# read, builders, directories it may read, echoing commands): never inherited by a test.
OWN_VARIABLES = (
    "REPROFLAKE_BUILDERS",
    "REPROFLAKE_READ_OUTSIDE",
    "REPROFLAKE_SUBSTITUTERS",
    "REPROFLAKE_VERBOSE",
)


@pytest.fixture(scope="session", autouse=True)
def _isolated_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """reproflake's own configuration ($XDG_CONFIG_HOME/reproflake: caches, builders,
    read_outside) and environment variables for this session only. Every other tool's
    configuration in the same directory (pip's and uv's: the machine's package index) is
    kept, linked: the tests resolve packages as a user of this machine would."""
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", *OWN_VARIABLES)}
    real = Path(saved["XDG_CONFIG_HOME"] or Path.home() / ".config")
    config = tmp_path_factory.mktemp("xdg-config")
    if real.is_dir():
        for entry in sorted(real.iterdir()):
            if entry.name != "reproflake":
                (config / entry.name).symlink_to(entry)
    os.environ["XDG_CONFIG_HOME"] = str(config)
    for name in OWN_VARIABLES:
        os.environ.pop(name, None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def reproflake(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1800,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"reproflake {' '.join(args)} exited {proc.returncode}:\n{run.output}")
    assert "Traceback" not in run.output, run.output
    return run


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def raw_nix_build(flake: Path, attr: str) -> str:
    """`nix build` exactly as a user with only Nix would run it; returns the out path."""
    proc = subprocess.run(
        [
            "nix",
            "--extra-experimental-features",
            "nix-command flakes ca-derivations",
            "--option",
            "sandbox",
            "true",
            "--option",
            "sandbox-fallback",
            "false",
            "--option",
            "substituters",
            "",
            "build",
            f"{flake}#{attr}",
            "--no-link",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    return str(json.loads(proc.stdout)[0]["outputs"]["out"])


@pytest.fixture(scope="session")
def python_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `python` template, locked and built once for the session."""
    if NIX is None:
        if os.environ.get("CI"):
            pytest.fail("Nix is not installed, and CI must run the end-to-end tests")
        pytest.skip("Nix is not installed")
    root = tmp_path_factory.mktemp("e2e") / "demo"
    reproflake("init", "--template", "python", str(root), cwd=root.parent)
    reproflake("lock", cwd=root)
    reproflake("build", cwd=root)
    yield root


@pytest.fixture
def project_copy(python_project: Path, tmp_path: Path) -> Path:
    """A private copy of the built project to edit (its store paths are shared)."""
    target = tmp_path / "copy"
    shutil.copytree(python_project, target, symlinks=True)
    return target
