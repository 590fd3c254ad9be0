from __future__ import annotations

from pathlib import Path

import pytest

from reproflake.lock.aptconfig import (
    AptEntry,
    AptSource,
    default_source,
    is_release_suite,
    parse_sources_deb822,
    parse_sources_list,
    read_entries,
)


def write(root: Path, relpath: str, text: str) -> None:
    path = root / "etc" / "apt" / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


DEB822 = """\
Types: deb deb-src
# a comment inside the stanza, as Debian's installer writes them
URIs: http://mirror.invalid/debian/
Suites: stable-updates stable
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: stable-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.invalid/debian
Suites: stable
Components: main
"""


def test_parse_deb822() -> None:
    assert parse_sources_deb822(DEB822) == [
        AptEntry(
            "http://mirror.invalid/debian/", ("stable-updates", "stable"), ("main", "contrib")
        ),
        AptEntry("http://mirror.invalid/debian-security", ("stable-security",), ("main",)),
    ]


def test_parse_one_line() -> None:
    text = """\
# deb http://commented.invalid/debian stable main
deb-src http://src.invalid/debian stable main
deb [ arch=amd64 signed-by=/k.gpg ] http://opts.invalid/debian bookworm main non-free
deb http://plain.invalid/debian bookworm-backports main  # trailing comment
deb http://flat.invalid/repo ./
"""
    assert parse_sources_list(text) == [
        AptEntry("http://opts.invalid/debian", ("bookworm",), ("main", "non-free")),
        AptEntry("http://plain.invalid/debian", ("bookworm-backports",), ("main",)),
        AptEntry("http://flat.invalid/repo", ("./",), ()),
    ]


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ("bookworm", True),
        ("stable", True),
        ("sid", True),
        ("bookworm-updates", False),
        ("bookworm-security", False),
        ("bookworm-backports", False),
        ("bookworm-backports-sloppy", False),
        ("bookworm-proposed-updates", False),
        ("buster/updates", False),
        ("./", False),
    ],
)
def test_release_suites(suite: str, expected: bool) -> None:
    assert is_release_suite(suite) is expected


def test_deb822_source(tmp_path: Path) -> None:
    write(tmp_path, "sources.list.d/debian.sources", DEB822)
    assert default_source(tmp_path) == AptSource(
        "http://mirror.invalid/debian", "stable", ("main", "contrib")
    )


def test_debian_archive_preferred_over_third_party(tmp_path: Path) -> None:
    # sources.list is read first, but its repo is not the Debian archive.
    write(tmp_path, "sources.list", "deb https://vendor.invalid/apt cloud-sdk main\n")
    write(tmp_path, "sources.list.d/50-local.list", "deb http://lan.invalid/debian bookworm main\n")
    assert default_source(tmp_path) == AptSource("http://lan.invalid/debian", "bookworm", ("main",))
    assert [e.uri for e in read_entries(tmp_path)] == [
        "https://vendor.invalid/apt",
        "http://lan.invalid/debian",
    ]


def test_snapshot_mirror_counts_as_debian(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sources.list",
        "deb https://vendor.invalid/apt stable main\n"
        "deb http://snapshot.invalid/archive/debian/20250520T000000Z bookworm main\n",
    )
    source = default_source(tmp_path)
    assert source is not None
    assert source.mirror == "http://snapshot.invalid/archive/debian/20250520T000000Z"


def test_third_party_used_when_nothing_else(tmp_path: Path) -> None:
    write(tmp_path, "sources.list", "deb https://vendor.invalid/apt stable main\n")
    assert default_source(tmp_path) == AptSource("https://vendor.invalid/apt", "stable", ("main",))


def test_ignored_sources(tmp_path: Path) -> None:
    write(tmp_path, "sources.list", "deb http://a.invalid/debian bookworm-security main\n")
    write(tmp_path, "sources.list.d/contrib.list", "deb http://b.invalid/debian bookworm contrib\n")
    write(tmp_path, "sources.list.d/x.sources.disabled", DEB822)  # apt does not read it
    write(tmp_path, "sources.list.d/y.list", "deb mirror+file:/etc/apt/mirrors.txt bookworm main\n")
    assert default_source(tmp_path) is None


def test_no_apt_config(tmp_path: Path) -> None:
    assert default_source(tmp_path) is None
    assert read_entries(tmp_path) == []
