"""The resolver picks what `apt-get install --no-install-recommends` picks.

Both read the same Packages index (this machine's Debian mirror, as `reproflake
lock` would): apt through a temporary configuration of its own, with an empty
dpkg status, so that nothing of this machine's installed packages counts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reproflake.lock import aptconfig, debian
from reproflake.lock.inputs import cache_dir

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed")

# The packages the end-to-end tests install: TeX Live, matplotlib, R, Graphviz, ImageMagick.
ROOTS = [
    "texlive-latex-base",
    "texlive-latex-recommended",
    "texlive-xetex",
    "latexmk",
    "python3-numpy",
    "python3-matplotlib",
    "r-base-core",
    "r-cran-ggplot2",
    "graphviz",
    "imagemagick",
    "ca-certificates",
    "poppler-utils",
]


def _index_text() -> str:
    source = aptconfig.default_source()
    assert source is not None, "this machine's apt sources name no Debian mirror"
    base = source.mirror.rstrip("/")
    release_url, release, _ = debian._fetch_release(base, source.suite, 60.0, None)
    data = debian._load_packages(
        base, source.suite, "main/binary-amd64", release, release_url, cache_dir() / "debian", 60.0
    )
    assert data is not None
    return data.decode()


def _apt_closure(packages: str, tmp: Path, roots: list[str]) -> set[tuple[str, str]]:
    repo = tmp / "repo"
    state = tmp / "state"
    for d in (repo, state / "lists/partial", tmp / "cache/archives/partial"):
        d.mkdir(parents=True)
    (repo / "Packages").write_text(packages)
    (state / "status").write_text("")
    (tmp / "sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
    config = tmp / "apt.conf"
    config.write_text(
        "\n".join(
            f'{key} "{value}";'
            for key, value in {
                "Dir::Etc::SourceList": tmp / "sources.list",
                "Dir::Etc::SourceParts": tmp / "none",
                "Dir::Etc::Parts": tmp / "none",
                "Dir::Etc::Preferences": tmp / "none",
                "Dir::Etc::PreferencesParts": tmp / "none",
                "Dir::State": state,
                "Dir::State::status": state / "status",
                "Dir::Cache": tmp / "cache",
                "APT::Architecture": "amd64",
                "APT::Install-Recommends": "false",
                "Debug::NoLocking": "true",
            }.items()
        )
        + "\n"
    )
    env = {"APT_CONFIG": str(config), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        ["apt-get", "install", "-s", "--no-install-recommends", *roots],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return set(re.findall(r"^Inst (\S+) \((\S+)", proc.stdout, re.MULTILINE))


@pytest.mark.e2e
def test_closure_equals_apts(tmp_path: Path) -> None:
    text = _index_text()
    ours = {
        (p.name, p.version)
        for p in debian.resolve_closure(debian.parse_packages(text), ROOTS, "amd64")
    }
    apts = _apt_closure(text, tmp_path, ROOTS)
    assert len(apts) > 200
    assert sorted(ours - apts) == [] and sorted(apts - ours) == []
