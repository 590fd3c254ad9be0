"""Shared fixtures: a lock built by hand that matches a parsed spec (no network, no Nix)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake.lock.model import (
    DebianPin,
    Lock,
    LockedDeb,
    LockedEnv,
    LockedInput,
    Seed,
    python_index_request,
)
from reproflake.spec import Spec

FAKE_NAR_HASH = "sha256-" + "A" * 43 + "="
SEED_DEB = LockedDeb(
    package="busybox-static",
    version="1:1.35.0-4+b3",
    architecture="amd64",
    filename="pool/main/b/busybox/busybox-static_1%3a1.35.0-4+b3_amd64.deb",
    url="http://mirror.invalid/debian/pool/main/b/busybox/busybox-static_1%3a1.35.0-4+b3_amd64.deb",
    size=1024,
    sha256="0" * 64,
)


def lock_for(spec: Spec, *, source_date_epoch: int = 1700000000) -> Lock:
    """A lock that :func:`reproflake.lock.model.stale_entries` finds up to date for ``spec``."""
    d = spec.debian
    return Lock(
        debian=DebianPin(d.mirror, d.suite, d.components, d.architecture),
        python_index=python_index_request(spec),
        source_date_epoch=spec.source_date_epoch or source_date_epoch,
        seed=Seed(
            package=SEED_DEB.package,
            version=SEED_DEB.version,
            deb=SEED_DEB.key,
            member="./bin/busybox",
            sha256="1" * 64,
            nar_hash=FAKE_NAR_HASH,
        ),
        debs={SEED_DEB.key: SEED_DEB},
        wheels={},
        environments={
            name: LockedEnv(
                debian=env.all_debian,
                python=env.python,
                debs=(SEED_DEB.key,),
                wheels=(),
                python_version="3.11" if env.python else "",
                pylock="",
            )
            for name, env in sorted(spec.environments.items())
        },
        inputs={
            name: (
                LockedInput(kind="url", path=item.path, url=item.url, sha256=item.sha256)
                if item.is_url
                else LockedInput(kind="local", path=item.path, nar_hash=FAKE_NAR_HASH)
            )
            for name, item in sorted(spec.inputs.items())
        },
    )


@pytest.fixture(scope="session")
def make_lock() -> Callable[..., Lock]:
    return lock_for


@pytest.fixture(autouse=True)
def _isolated_home(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unit tests never write to the user's own cache or configuration (the end-to-end
    tests get a cache of their own per session: tests/e2e/conftest.py)."""
    if "unit" not in Path(str(request.node.fspath)).parts:
        return
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.delenv("REPROFLAKE_READ_OUTSIDE", raising=False)
