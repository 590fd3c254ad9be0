"""Find a default Debian mirror and suite from the host's apt configuration.

Used only to pre-fill reproflake.toml: the lock itself always uses the mirror
written there, so a project locks the same way on every host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from reproflake.lock.debian import parse_deb822

# Suites layered on top of a release; a lock needs the release itself.
_OVERLAY_SUFFIXES = ("-updates", "-security", "-backports", "-backports-sloppy", "/updates")
# apt-only transports (mirror+http, tor+http, cdrom) cannot be fetched by urllib.
_FETCHABLE_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class AptSource:
    mirror: str
    suite: str
    components: tuple[str, ...]


@dataclass(frozen=True)
class AptEntry:
    """One `deb` source as apt declares it (one URI, possibly several suites)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_sources_list(text: str) -> list[AptEntry]:
    """Parse one-line-style ``deb [opts] uri suite [components...]`` lines."""
    entries: list[AptEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind != "deb":
            continue  # deb-src and junk
        rest = rest.strip()
        if rest.startswith("["):
            # Options may contain spaces ("[ arch=amd64 ]"); they end at ']'.
            _, bracket, rest = rest.partition("]")
            if not bracket:
                continue
        fields = rest.split()
        if len(fields) < 2:
            continue
        entries.append(AptEntry(fields[0], (fields[1],), tuple(fields[2:])))
    return entries


def parse_sources_deb822(text: str) -> list[AptEntry]:
    """Parse a deb822 ``.sources`` file (Types, URIs, Suites, Components, Enabled)."""
    entries: list[AptEntry] = []
    for stanza in parse_deb822(text):
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        entries.extend(AptEntry(uri, suites, components) for uri in stanza.get("uris", "").split())
    return entries


def read_entries(root: str | Path = "/") -> list[AptEntry]:
    """All `deb` entries in apt's reading order: sources.list, then sources.list.d/ sorted."""
    etc = Path(root) / "etc" / "apt"
    entries: list[AptEntry] = []
    main_list = etc / "sources.list"
    if main_list.is_file():
        entries += parse_sources_list(_read(main_list))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            # Only these two suffixes are read by apt; ".disabled", ".save" etc. are not.
            if path.suffix == ".list" and path.is_file():
                entries += parse_sources_list(_read(path))
            elif path.suffix == ".sources" and path.is_file():
                entries += parse_sources_deb822(_read(path))
    return entries


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""  # an unreadable file is a missing default, not an error


def is_release_suite(suite: str) -> bool:
    return bool(suite) and not suite.endswith("/") and not suite.endswith(_OVERLAY_SUFFIXES)


def _is_debian_archive(uri: str) -> bool:
    # A path segment "debian" marks the main archive, including snapshot
    # mirrors (…/archive/debian/<timestamp>); "debian-security" does not.
    return "debian" in urlparse(uri).path.split("/")


def default_source(root: str | Path = "/") -> AptSource | None:
    """The host's main Debian archive source, or None if apt has none usable."""
    candidates: list[AptSource] = []
    for entry in read_entries(root):
        if urlparse(entry.uri).scheme not in _FETCHABLE_SCHEMES or "main" not in entry.components:
            continue
        suite = next((s for s in entry.suites if is_release_suite(s)), None)
        if suite is not None:
            candidates.append(AptSource(entry.uri.rstrip("/"), suite, entry.components))
    preferred = [c for c in candidates if _is_debian_archive(c.mirror)]
    ranked = preferred or candidates
    return ranked[0] if ranked else None
