"""Debian package indices: parse, fetch (hash-verified, cached) and resolve closures.

Everything that touches the network lives in :func:`fetch_index`; parsing and
resolution are pure functions over text and :class:`PackageIndex`, so they are
tested without a mirror. Mirror URLs always come from the caller (reproflake.toml
or the host's apt configuration), never from this module.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import hashlib
import http.client
import lzma
import pickle
import re
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reproflake import __version__
from reproflake.errors import HashMismatchError, LockError, SpecError
from reproflake.fsutil import read_cache, write_atomic
from reproflake.lock import debver

DEFAULT_TIMEOUT = 60.0
# Bump when DebPackage changes: a cached parsed index of another shape is not reused.
PARSED_FORMAT = "3"
_MIRROR_HINT = (
    "check the Debian mirror and suite in reproflake.toml and that the mirror is reachable"
)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency: ``name[:arch] [(op version)]``."""

    name: str
    arch: str | None = None
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        text = self.name + (f":{self.arch}" if self.arch else "")
        if self.op is not None:
            text += f" ({self.op} {self.version})"
        return text


@dataclass(frozen=True)
class DebPackage:
    """One binary package stanza of a Packages index."""

    name: str
    version: str
    architecture: str
    filename: str  # pool path relative to the mirror root
    size: int
    sha256: str
    # Pre-Depends first, then Depends; one raw string per comma-separated
    # group, e.g. "libc6 (>= 2.34)" or "awk | mawk". Raw text keeps the
    # dataclass hashable and printable; parse_group() turns it into Relations.
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    # Conflicts and Breaks together, one relation each: dpkg refuses to configure a
    # package beside either, so a closure never holds both sides.
    conflicts: tuple[str, ...] = ()
    # Essential packages are never declared as dependencies: every Debian system has them.
    essential: bool = False

    def url(self, mirror: str) -> str:
        return f"{mirror.rstrip('/')}/{self.filename}"


@dataclass(frozen=True)
class Provider:
    """A package providing a virtual name, with the provided version if any."""

    package: DebPackage
    version: str | None


@dataclass(frozen=True)
class PackageIndex:
    """Name → candidates (highest version first) and virtual name → providers."""

    packages: Mapping[str, tuple[DebPackage, ...]]
    providers: Mapping[str, tuple[Provider, ...]]

    def candidates(self, name: str) -> tuple[DebPackage, ...]:
        return self.packages.get(name, ())

    def get(self, name: str) -> DebPackage | None:
        """The default candidate: the highest version of ``name``."""
        found = self.packages.get(name)
        return found[0] if found else None

    def essential(self) -> list[str]:
        """The names of the suite's Essential packages (highest versions)."""
        return sorted(name for name, found in self.packages.items() if found and found[0].essential)

    def __len__(self) -> int:
        return sum(len(c) for c in self.packages.values())


# --------------------------------------------------------------------------- parsing


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Split deb822 text into stanzas of lower-cased field name → value.

    Continuation lines are joined with newlines (leading whitespace dropped), so
    multi-line fields such as a Release file's SHA256 list stay line-structured.
    Lines starting with '#' in column 0 are comments (apt's .sources files).
    """
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t":
            if key is not None:
                current[key] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue  # not a field; tolerate like apt does for junk lines
        key = name.strip().lower()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


_RELATION_RE = re.compile(
    r"""^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9+.\-]*)
    (?::(?P<arch>[A-Za-z0-9\-]+))?\s*
    (?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)]+)\s*\))?\s*
    # Architecture restrictions [...] and build profiles <...> belong to
    # source-package relations; in binary Depends they are ignored.
    (?:\[[^\]]*\]\s*|<[^>]*>\s*)*$""",
    re.VERBOSE,
)


@functools.lru_cache(maxsize=65536)
def parse_relation(text: str) -> Relation:
    m = _RELATION_RE.match(text)
    if m is None:
        raise LockError(f"cannot parse package relation {text.strip()!r}")
    return Relation(m["name"], m["arch"], m["op"], m["version"])


@functools.lru_cache(maxsize=65536)
def parse_group(text: str) -> tuple[Relation, ...]:
    """Parse one dependency group ``a (>= 1) | b`` into its alternatives."""
    return tuple(parse_relation(alt) for alt in text.split("|"))


def _split_field(value: str) -> tuple[str, ...]:
    return tuple(" ".join(part.split()) for part in value.split(",") if part.strip())


def _package_from_stanza(stanza: Mapping[str, str]) -> DebPackage:
    name = stanza.get("package")
    if not name:
        raise LockError("Packages index has a stanza without a Package field")
    missing = [
        f for f in ("version", "architecture", "filename", "size", "sha256") if not stanza.get(f)
    ]
    if missing:
        # Without SHA256 a package cannot be pinned; refusing is the hermetic choice.
        raise LockError(f"Packages index entry {name!r} lacks {', '.join(missing)}")
    try:
        size = int(stanza["size"])
    except ValueError:
        raise LockError(f"Packages index entry {name!r} has a bad Size") from None
    depends = _split_field(stanza.get("pre-depends", "")) + _split_field(stanza.get("depends", ""))
    return DebPackage(
        name=name,
        version=stanza["version"],
        architecture=stanza["architecture"],
        filename=stanza["filename"],
        size=size,
        sha256=stanza["sha256"].lower(),
        depends=depends,
        provides=_split_field(stanza.get("provides", "")),
        conflicts=_split_field(stanza.get("conflicts", ""))
        + _split_field(stanza.get("breaks", "")),
        essential=stanza.get("essential", "").strip().lower() == "yes",
    )


def _by_version_desc(a: DebPackage, b: DebPackage) -> int:
    # Highest version first; ties broken by arch and filename so order never
    # depends on the order of the input files.
    c = debver.compare(b.version, a.version)
    if c:
        return c
    ka, kb = (a.architecture, a.filename), (b.architecture, b.filename)
    return (ka > kb) - (ka < kb)


def build_index(packages: Iterable[DebPackage]) -> PackageIndex:
    """Index packages; a (name, version, architecture) seen twice keeps the first."""
    seen: set[tuple[str, str, str]] = set()
    by_name: dict[str, list[DebPackage]] = {}
    provided: dict[str, list[Provider]] = {}
    for pkg in packages:
        key = (pkg.name, pkg.version, pkg.architecture)
        if key in seen:
            continue
        seen.add(key)
        by_name.setdefault(pkg.name, []).append(pkg)
        for entry in pkg.provides:
            rel = parse_relation(entry)
            provided.setdefault(rel.name, []).append(Provider(pkg, rel.version))
    order = functools.cmp_to_key(_by_version_desc)
    return PackageIndex(
        packages={n: tuple(sorted(c, key=order)) for n, c in sorted(by_name.items())},
        providers={
            n: tuple(sorted(p, key=lambda pr: (pr.package.name, order(pr.package))))
            for n, p in sorted(provided.items())
        },
    )


def parse_packages(text: str) -> PackageIndex:
    """Parse a Debian ``Packages`` file into a :class:`PackageIndex`."""
    return build_index(_package_from_stanza(s) for s in parse_deb822(text))


# --------------------------------------------------------------------------- fetching


@dataclass(frozen=True)
class ReleaseFile:
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    files: Mapping[str, ReleaseFile]  # path under dists/<suite>/ → hash and size
    fields: Mapping[str, str]

    @property
    def acquire_by_hash(self) -> bool:
        return self.fields.get("acquire-by-hash", "").lower() == "yes"

    @property
    def arch_indices_include_all(self) -> bool:
        # Debian declares that binary-<arch>/Packages already lists the
        # Architecture: all packages, so binary-all need not be fetched.
        return "packages" in self.fields.get("no-support-for-architecture-all", "").lower()


def strip_clearsign(text: str) -> str:
    """Return the signed body of an OpenPGP clear-signed message (or ``text`` as is)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "-----BEGIN PGP SIGNED MESSAGE-----":
        return text
    i = 1
    while i < len(lines) and lines[i].strip():
        i += 1  # armor headers ("Hash: SHA512") end at the first blank line
    body: list[str] = []
    for line in lines[i + 1 :]:
        if line.startswith("-----BEGIN PGP SIGNATURE-----"):
            break
        body.append(line[2:] if line.startswith("- ") else line)
    return "\n".join(body) + "\n"


def parse_release(text: str) -> Release:
    stanzas = parse_deb822(strip_clearsign(text))
    if not stanzas:
        raise LockError("the suite's Release file is empty", hint=_MIRROR_HINT)
    fields = stanzas[0]
    files: dict[str, ReleaseFile] = {}
    for line in fields.get("sha256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            files[parts[2]] = ReleaseFile(parts[0].lower(), int(parts[1]))
    if not files:
        raise LockError("the suite's Release file has no SHA256 section", hint=_MIRROR_HINT)
    return Release(files=files, fields=fields)


class _NotFound(Exception):
    """HTTP 404/410: lets callers fall back to another file name."""


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": f"reproflake/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise _NotFound(url) from None
        raise LockError(
            f"downloading {url} failed: HTTP {e.code} {e.reason}", hint=_MIRROR_HINT
        ) from None
    except urllib.error.URLError as e:
        raise LockError(f"downloading {url} failed: {e.reason}", hint=_MIRROR_HINT) from None
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets, short reads
        raise LockError(f"downloading {url} failed: {e}", hint=_MIRROR_HINT) from None


def download(url: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Download one file from the mirror (a .deb); a missing file is a LockError."""
    try:
        return _download(url, timeout)
    except _NotFound:
        raise LockError(
            f"{url} is missing from the mirror (HTTP 404)",
            hint="the package was probably superseded; run `reproflake lock --upgrade`",
        ) from None


Verify = Callable[[str, bytes, bytes | None], bytes]


def _fetch_release(
    base: str, suite: str, timeout: float, verify: Verify | None
) -> tuple[str, Release, bytes]:
    # InRelease is small and is what says which Packages are current, so it is
    # never cached. The detached-signature Release is the legacy fallback.
    for name in ("InRelease", "Release"):
        url = f"{base}/dists/{suite}/{name}"
        try:
            data = _download(url, timeout)
        except _NotFound:
            continue
        if verify is not None:
            detached = _download_required(f"{url}.gpg", timeout) if name == "Release" else None
            # Parse only what the signature covers.
            data = verify(url, data, detached)
        return url, parse_release(data.decode("utf-8", errors="replace")), data
    raise LockError(
        f"suite {suite!r} not found on {base}: neither InRelease nor Release exists",
        hint=_MIRROR_HINT,
    )


def _decompress(path: str, data: bytes) -> bytes:
    try:
        if path.endswith(".xz"):
            return lzma.decompress(data)
        if path.endswith(".gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise LockError(f"cannot decompress {path}: {e}") from None
    return data


def _verify(url: str, data: bytes, expected: ReleaseFile, release_url: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.sha256 or len(data) != expected.size:
        raise HashMismatchError(
            f"{url}: sha256 {actual} ({len(data)} bytes) does not match "
            f"{expected.sha256} ({expected.size} bytes) listed in {release_url}",
            hint="the mirror may be mid-update (retry later) or serving bad data; "
            "a snapshot mirror in reproflake.toml avoids the race",
        )


def _load_packages(
    base: str,
    suite: str,
    directory: str,
    release: Release,
    release_url: str,
    cache_dir: Path,
    timeout: float,
) -> bytes | None:
    """The decompressed Packages of ``directory`` (e.g. main/binary-amd64), or None."""
    listed = [
        n for n in ("Packages.xz", "Packages.gz", "Packages") if f"{directory}/{n}" in release.files
    ]
    if not listed:
        return None
    name = listed[0]
    entry = release.files[f"{directory}/{name}"]
    plain = release.files.get(f"{directory}/Packages")  # hash of the decompressed text
    cached = cache_dir / f"Packages-{entry.sha256}"
    if cached.is_file():
        data = cached.read_bytes()
        if plain is None or hashlib.sha256(data).hexdigest() == plain.sha256:
            return data
        # A corrupt cache entry is not an error: refetch and overwrite it.
    url = f"{base}/dists/{suite}/{directory}/{name}"
    if release.acquire_by_hash:
        # by-hash URLs never change content, so a mirror update between our
        # InRelease and Packages downloads cannot cause a spurious mismatch.
        try:
            by_hash = f"{base}/dists/{suite}/{directory}/by-hash/SHA256/{entry.sha256}"
            compressed = _download(by_hash, timeout)
            url = by_hash
        except _NotFound:
            compressed = _download_required(url, timeout)
    else:
        compressed = _download_required(url, timeout)
    _verify(url, compressed, entry, release_url)
    data = _decompress(name, compressed)
    if plain is not None and name != "Packages":
        _verify(f"{url} (decompressed)", data, plain, release_url)
    write_atomic(cached, data)
    return data


def _download_required(url: str, timeout: float) -> bytes:
    try:
        return _download(url, timeout)
    except _NotFound:
        raise LockError(
            f"{url} is listed in the suite's Release file but missing (HTTP 404)", hint=_MIRROR_HINT
        ) from None


def fetch_index(
    mirror: str,
    suite: str,
    components: Sequence[str],
    arch: str,
    cache_dir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    verify: Verify | None = None,
) -> PackageIndex:
    """Download, verify and parse the Packages indices of ``suite`` for ``arch``.

    Each Packages file is checked against the SHA256 listed in the suite's
    (In)Release and cached by that hash, so re-locking against an unchanged
    suite only downloads InRelease. ``verify`` checks the (In)Release signature
    and returns the signed content (see signature.verify).
    """
    base = mirror.rstrip("/")
    release_url, release, release_bytes = _fetch_release(base, suite, timeout, verify)
    archs = [arch]
    if arch != "all" and not release.arch_indices_include_all:
        archs.append("all")
    # Parsing a whole suite's index takes seconds; the parsed result is kept, keyed by the
    # (verified) Release content, which changes whenever any of its indexes does.
    key = hashlib.sha256(
        release_bytes + "\0".join([PARSED_FORMAT, release_url, *components, *archs]).encode()
    ).hexdigest()
    parsed = cache_dir / "parsed" / f"{key}.pickle"
    cached = _load_parsed(parsed)
    if cached is not None:
        return cached
    packages: list[DebPackage] = []
    for component in components:
        for a in archs:
            directory = f"{component}/binary-{a}"
            data = _load_packages(base, suite, directory, release, release_url, cache_dir, timeout)
            if data is None:
                if a == "all":
                    continue  # binary-all is optional; most archives fold it in
                raise LockError(
                    f"suite {suite!r} on {base} has no index for {directory}",
                    hint=f"components: {release.fields.get('components', '?')}; "
                    f"architectures: {release.fields.get('architectures', '?')}; "
                    "fix the components or architecture in reproflake.toml",
                )
            text = data.decode("utf-8", errors="replace")
            packages.extend(_package_from_stanza(s) for s in parse_deb822(text))
    index = build_index(packages)
    write_atomic(parsed, pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))
    return index


def _load_parsed(path: Path) -> PackageIndex | None:
    return read_cache(path, PackageIndex)


# --------------------------------------------------------------------------- resolution


def _arch_matches(rel: Relation, arch: str) -> bool:
    # ":any" (Multi-Arch: allowed) and ":native" both mean "our architecture"
    # in a single-architecture closure; a foreign qualifier can never match.
    return rel.arch in (None, "any", "native", arch, "all")


def _usable(pkg: DebPackage, arch: str) -> bool:
    return pkg.architecture in (arch, "all")


def _version_ok(version: str | None, rel: Relation) -> bool:
    if rel.op is None:
        return True
    if version is None or rel.version is None:
        return False  # an unversioned Provides never satisfies a versioned relation
    return debver.satisfies(version, rel.op, rel.version)


def _satisfied(
    index: PackageIndex, selected: Mapping[str, DebPackage], rel: Relation, arch: str
) -> bool:
    if not _arch_matches(rel, arch):
        return False
    pkg = selected.get(rel.name)
    if pkg is not None and _version_ok(pkg.version, rel):
        return True
    return any(
        selected.get(p.package.name) == p.package and _version_ok(p.version, rel)
        for p in index.providers.get(rel.name, ())
    )


def _hits(rel: Relation, pkg: DebPackage) -> bool:
    """Whether ``pkg`` is what the Conflicts/Breaks relation ``rel`` names (itself or a Provides)."""
    if rel.name == pkg.name:
        return _version_ok(pkg.version, rel)
    for entry in pkg.provides:
        provided = parse_relation(entry)
        # A package never conflicts with itself through what it provides.
        if provided.name == rel.name and (rel.op is None or _version_ok(provided.version, rel)):
            return True
    return False


def _clash(pkg: DebPackage, selected: Mapping[str, DebPackage]) -> tuple[DebPackage, str] | None:
    """A selected package that ``pkg`` conflicts with or breaks, or that does so to it."""
    for other in selected.values():
        if other.name == pkg.name:
            continue
        for text in pkg.conflicts:
            if _hits(parse_relation(text), other):
                return other, f"{pkg.name} conflicts with {text}"
        for text in other.conflicts:
            if _hits(parse_relation(text), pkg):
                return other, f"{other.name} conflicts with {text}"
    return None


def _choose(
    index: PackageIndex, selected: Mapping[str, DebPackage], rel: Relation, arch: str
) -> DebPackage | None:
    """Best new package for ``rel``: the real package first, then a provider; never one
    that conflicts with (or breaks, or is broken by) a package already selected."""
    if not _arch_matches(rel, arch):
        return None
    # A name already selected at another version cannot be installed twice.
    for pkg in index.candidates(rel.name):  # highest version first
        if (
            _usable(pkg, arch)
            and _version_ok(pkg.version, rel)
            and rel.name not in selected
            and _clash(pkg, selected) is None
        ):
            return pkg
    # Providers are sorted by (name, highest version): the first usable one is
    # the lexicographically smallest name, which keeps the choice deterministic.
    for p in index.providers.get(rel.name, ()):
        if (
            _usable(p.package, arch)
            and _version_ok(p.version, rel)
            and p.package.name not in selected
            and _clash(p.package, selected) is None
        ):
            return p.package
    return None


def parse_root(spec: str) -> Relation:
    """Parse a root request: ``name``, ``name=version`` or ``name (op version)``."""
    text = spec.strip()
    if "=" in text and "(" not in text:
        name, _, version = text.partition("=")
        text = f"{name.strip()} (= {version.strip()})"
    try:
        return parse_relation(text)
    except LockError:
        raise SpecError(
            f"cannot parse Debian package request {spec!r}",
            hint="write 'name', 'name=version' or 'name (>= version)'",
        ) from None


def _unknown_root(index: PackageIndex, spec: str, rel: Relation) -> LockError:
    names = list(index.packages) + list(index.providers)
    close = difflib.get_close_matches(rel.name, names, n=5, cutoff=0.6)
    suggestion = f"; did you mean {', '.join(close)}?" if close else ""
    return LockError(
        f"Debian package {rel.name!r} (requested as {spec!r}) is not in the index{suggestion}",
        hint="check the package name for this suite (and the components in reproflake.toml)",
    )


def _root_unsatisfiable(index: PackageIndex, spec: str, rel: Relation, arch: str) -> LockError:
    versions = sorted(
        {p.version for p in index.candidates(rel.name) if _usable(p, arch)},
        key=functools.cmp_to_key(debver.compare),
    )
    available = ", ".join(versions) if versions else "none for this architecture"
    return LockError(
        f"no version of Debian package {rel.name!r} satisfies {spec!r} for {arch} "
        f"(available: {available})",
        hint="change the requested version to one this suite has",
    )


def resolve_closure(index: PackageIndex, roots: Sequence[str], arch: str) -> list[DebPackage]:
    """The packages ``roots`` need over Pre-Depends and Depends, sorted by name.

    Recommends and Suggests are ignored. A candidate that conflicts with or breaks a
    package already chosen (or is broken by one) is passed over for the next
    alternative, as apt does; with none left, the error names both chains. One
    version per name; the first choice made (breadth-first, in root order) sticks,
    which makes the result a deterministic function of the index and the roots.
    """
    selected: dict[str, DebPackage] = {}
    # name → (parent package or None for a root, the relation text that chose it)
    reason: dict[str, tuple[str | None, str]] = {}
    queue: deque[DebPackage] = deque()

    def select(pkg: DebPackage, parent: str | None, why: str) -> None:
        selected[pkg.name] = pkg
        reason[pkg.name] = (parent, why)
        queue.append(pkg)

    for spec in roots:
        rel = parse_root(spec)
        if rel.name not in index.packages and rel.name not in index.providers:
            raise _unknown_root(index, spec, rel)
        if _satisfied(index, selected, rel, arch):
            continue  # e.g. the same root listed twice
        pkg = _choose(index, selected, rel, arch)
        if pkg is None:
            clash = next(
                (
                    (c, found)
                    for c in index.candidates(rel.name)
                    if _usable(c, arch) and _version_ok(c.version, rel)
                    for found in [_clash(c, selected)]
                    if found is not None
                ),
                None,
            )
            if clash is not None:
                other, why = clash[1]
                raise LockError(
                    f"cannot install {spec!r} beside {' → '.join(_chain(reason, other.name))}: {why}",
                    hint="remove one of the two from the environment's debian list",
                )
            if rel.name in selected:
                raise LockError(
                    f"conflicting root requests for {rel.name!r}: {spec!r} and "
                    f"{reason[rel.name][1]!r}",
                    hint="request each Debian package once",
                )
            raise _root_unsatisfiable(index, spec, rel, arch)
        select(pkg, None, spec)

    # As apt does, a choice among alternatives waits until every plain dependency known
    # so far is chosen: an alternative that something else needs anyway then wins.
    deferred: deque[tuple[DebPackage, str]] = deque()
    while queue or deferred:
        from_queue = bool(queue)
        if queue:
            pkg = queue.popleft()
            pending = [(pkg, text) for text in pkg.depends]
        else:
            pending = [deferred.popleft()]
        for parent, group_text in pending:
            group = parse_group(group_text)
            if any(_satisfied(index, selected, rel, arch) for rel in group):
                continue
            if len(group) > 1 and from_queue:
                deferred.append((parent, group_text))
                continue
            choice = next(
                (c for c in (_choose(index, selected, rel, arch) for rel in group) if c), None
            )
            if choice is None:
                raise _unsatisfiable(index, selected, reason, parent, group_text, group, arch)
            select(choice, parent.name, group_text)
    return [selected[name] for name in sorted(selected)]


def _chain(reason: Mapping[str, tuple[str | None, str]], name: str) -> list[str]:
    chain = [name]
    parent = reason[name][0]
    while parent is not None:
        chain.append(parent)
        parent = reason[parent][0]
    chain.reverse()
    root_spec = reason[chain[0]][1]
    return [root_spec, *chain[1:]] if root_spec != chain[0] else chain


def _unsatisfiable(
    index: PackageIndex,
    selected: Mapping[str, DebPackage],
    reason: Mapping[str, tuple[str | None, str]],
    pkg: DebPackage,
    group_text: str,
    group: Sequence[Relation],
    arch: str,
) -> LockError:
    path = " → ".join([*_chain(reason, pkg.name), f"Depends: {group_text}"])
    clashes = [
        f"{rel.name} {selected[rel.name].version} is already selected"
        for rel in group
        if rel.name in selected
    ]
    for rel in group:
        for candidate in index.candidates(rel.name):
            found = _clash(candidate, selected) if rel.name not in selected else None
            if (
                found is not None
                and _usable(candidate, arch)
                and _version_ok(candidate.version, rel)
            ):
                other, why = found
                clashes.append(f"{why} (chosen by {' → '.join(_chain(reason, other.name))})")
                break
    detail = f" ({'; '.join(clashes)})" if clashes else ""
    return LockError(
        f"cannot satisfy {path} for {arch}{detail}",
        hint="the suite's index has no package meeting this dependency; pin other "
        "root versions or add the component or suite that provides it in reproflake.toml",
    )
