from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import lzma
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reproflake.errors import HashMismatchError, LockError, SpecError
from reproflake.lock.debian import (
    DebPackage,
    PackageIndex,
    Relation,
    fetch_index,
    parse_deb822,
    parse_group,
    parse_packages,
    parse_release,
    parse_root,
    resolve_closure,
    strip_clearsign,
)


def stanza(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> str:
    """A Packages stanza; keyword names map to fields (pre_depends → Pre-Depends)."""
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        f"Architecture: {arch}",
    ]
    for key, value in fields.items():
        lines.append(f"{key.replace('_', '-').title()}: {value}")
    lines += [
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb",
        f"Size: {len(name) * 100}",
        f"SHA256: {hashlib.sha256(f'{name}{version}{arch}'.encode()).hexdigest()}",
        "Description: test package",
        " A long description line.",
        " .",
        " More text: with a colon.",
    ]
    return "\n".join(lines) + "\n"


PACKAGES = "\n".join(
    [
        stanza("libc6", "2.36-9+deb12u4", depends="libgcc-s1"),
        stanza("libc6", "2.28-10"),
        stanza("libc6", "2.99-1", arch="i386"),  # wrong architecture: never chosen
        stanza("libgcc-s1", "12.2.0-14", depends="gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)"),
        stanza("gcc-12-base", "12.2.0-14"),
        # Pre-Depends count; Recommends and Suggests do not.
        stanza(
            "app",
            "3.0-1",
            pre_depends="dpkg (>= 1.17)",
            depends="libc6 (>= 2.34),\n mawk | gawk, mail-transport-agent, python3:any,"
            " libfoo [amd64] <!nocheck>, libversioned (>= 2)",
            recommends="recommended-only",
            suggests="suggested-only",
        ),
        stanza("dpkg", "1.21.22", depends="tar (>= 1.28-1)"),
        stanza("tar", "1.34+dfsg-1.2", arch="amd64"),
        stanza("mawk", "1.3.4-1"),
        stanza("gawk", "1:5.2.1-2"),
        stanza("exim4-daemon-light", "4.96-15", provides="mail-transport-agent"),
        stanza("postfix", "3.7.9-0", provides="mail-transport-agent, default-mta"),
        stanza("python3", "3.11.2-1+b1", depends="python3.11 (>= 3.11.2-1~)"),
        stanza("python3.11", "3.11.2-6+deb12u6", depends="media-types | mime-support"),
        stanza("media-types", "10.0.0", arch="all"),
        stanza("libfoo", "1.0"),
        # Only a versioned Provides satisfies a versioned dependency.
        stanza("libversioned-old", "1.0", provides="libversioned"),
        stanza("libversioned-new", "1.0", provides="libversioned (= 2.5)"),
        stanza("recommended-only", "1.0"),
        stanza("suggested-only", "1.0"),
        stanza("broken-top", "1.0", depends="broken-mid"),
        stanza("broken-mid", "1.0", depends="libmissing (>= 1) | libc6 (>= 9)"),
        stanza("foreign", "1.0", depends="libfoo:i386"),
        stanza("wants-old-libc", "1.0", depends="libc6 (<< 2.30)"),
        stanza("busybox", "1:1.35.0-4+b3"),
    ]
)


@pytest.fixture(scope="module")
def index() -> PackageIndex:
    return parse_packages(PACKAGES)


def names(packages: list[DebPackage]) -> list[str]:
    return [p.name for p in packages]


# --------------------------------------------------------------------------- parsing


def test_parse_deb822_continuations_and_comments() -> None:
    text = "# comment\nA: 1\nB: x\n y\n\tz\n\n\nA: 2\n"
    assert parse_deb822(text) == [{"a": "1", "b": "x\ny\nz"}, {"a": "2"}]


def test_parse_packages_fields(index: PackageIndex) -> None:
    app = index.get("app")
    assert app is not None
    assert app.version == "3.0-1"
    assert app.size == 300
    assert app.filename == "pool/main/a/app/app_3.0-1_amd64.deb"
    # Pre-Depends first; multi-line Depends is joined.
    assert app.depends == (
        "dpkg (>= 1.17)",
        "libc6 (>= 2.34)",
        "mawk | gawk",
        "mail-transport-agent",
        "python3:any",
        "libfoo [amd64] <!nocheck>",
        "libversioned (>= 2)",
    )
    assert app.url("http://mirror.invalid/debian/") == (
        "http://mirror.invalid/debian/pool/main/a/app/app_3.0-1_amd64.deb"
    )


def test_highest_version_is_default(index: PackageIndex) -> None:
    assert [p.version for p in index.candidates("libc6")] == [
        "2.99-1",
        "2.36-9+deb12u4",
        "2.28-10",
    ]
    libc = index.get("libc6")
    assert libc is not None and libc.version == "2.99-1"  # highest, any architecture


def test_providers_with_versions(index: PackageIndex) -> None:
    mta = [(p.package.name, p.version) for p in index.providers["mail-transport-agent"]]
    assert mta == [("exim4-daemon-light", None), ("postfix", None)]
    versioned = [(p.package.name, p.version) for p in index.providers["libversioned"]]
    assert versioned == [("libversioned-new", "2.5"), ("libversioned-old", None)]


def test_parse_group_strips_qualifiers() -> None:
    assert parse_group("a:any (>= 1.0) [amd64 i386] <!nocheck> | b (<< 2~)") == (
        Relation("a", "any", ">=", "1.0"),
        Relation("b", None, "<<", "2~"),
    )


def test_parse_root_forms() -> None:
    assert parse_root("python3") == Relation("python3")
    assert parse_root("python3=3.11.2-1+b1") == Relation("python3", None, "=", "3.11.2-1+b1")
    assert parse_root("python3 (>= 3.11)") == Relation("python3", None, ">=", "3.11")
    with pytest.raises(SpecError):
        parse_root("python3 >= 3.11")


def test_stanza_without_sha256_is_rejected() -> None:
    with pytest.raises(LockError, match="lacks sha256"):
        parse_packages("Package: x\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\n")


# --------------------------------------------------------------------------- resolution


def test_closure(index: PackageIndex) -> None:
    closure = resolve_closure(index, ["app"], "amd64")
    assert names(closure) == [
        "app",
        "dpkg",  # Pre-Depends
        "exim4-daemon-light",  # smallest provider name of mail-transport-agent
        "gcc-12-base",
        "libc6",
        "libfoo",  # [amd64] <!nocheck> ignored
        "libgcc-s1",
        "libversioned-new",  # the only provider with a version
        "mawk",  # first alternative
        "media-types",  # Architecture: all
        "python3",  # :any stripped
        "python3.11",
        "tar",
    ]
    libc = next(p for p in closure if p.name == "libc6")
    assert (libc.version, libc.architecture) == ("2.36-9+deb12u4", "amd64")


def test_requested_alternative_and_provider_win(index: PackageIndex) -> None:
    closure = names(resolve_closure(index, ["app", "gawk", "postfix"], "amd64"))
    assert "gawk" in closure and "mawk" not in closure
    assert "postfix" in closure and "exim4-daemon-light" not in closure


def test_deterministic_regardless_of_root_order(index: PackageIndex) -> None:
    a = resolve_closure(index, ["app", "busybox"], "amd64")
    b = resolve_closure(index, ["busybox", "app"], "amd64")
    assert a == b


def test_root_version_pins(index: PackageIndex) -> None:
    closure = resolve_closure(index, ["libc6=2.28-10", "busybox (>= 1:1.30)"], "amd64")
    assert [(p.name, p.version) for p in closure] == [
        ("busybox", "1:1.35.0-4+b3"),
        ("libc6", "2.28-10"),
    ]
    with pytest.raises(LockError, match=r"available: 2\.28-10, 2\.36-9\+deb12u4"):
        resolve_closure(index, ["libc6 (>= 3)"], "amd64")


def test_virtual_root(index: PackageIndex) -> None:
    assert names(resolve_closure(index, ["mail-transport-agent"], "amd64")) == [
        "exim4-daemon-light"
    ]


def test_unsatisfiable_names_the_chain(index: PackageIndex) -> None:
    with pytest.raises(LockError) as info:
        resolve_closure(index, ["broken-top"], "amd64")
    message = str(info.value)
    assert "broken-top → broken-mid → Depends: libmissing (>= 1) | libc6 (>= 9)" in message
    assert "reproflake.toml" in message


def test_version_conflict_is_reported(index: PackageIndex) -> None:
    with pytest.raises(LockError, match=r"libc6 2\.36-9\+deb12u4 is already selected"):
        resolve_closure(index, ["libc6", "wants-old-libc"], "amd64")


def test_foreign_arch_qualifier_is_unsatisfiable(index: PackageIndex) -> None:
    with pytest.raises(LockError, match=r"foreign → Depends: libfoo:i386"):
        resolve_closure(index, ["foreign"], "amd64")


def test_unknown_root_suggests_names(index: PackageIndex) -> None:
    with pytest.raises(LockError) as info:
        resolve_closure(index, ["pyhton3"], "amd64")
    assert "did you mean python3" in str(info.value)
    assert info.value.hint is not None
    assert "check the package name for this suite" in info.value.hint


# --------------------------------------------------------------------------- fetching


def test_strip_clearsign() -> None:
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Test\n- -dashed\n"
        "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
    )
    assert strip_clearsign(signed) == "Origin: Test\n-dashed\n"
    assert strip_clearsign("Origin: Test\n") == "Origin: Test\n"


@dataclass
class Mirror:
    root: Path
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Mirror(root, f"http://127.0.0.1:{server.server_address[1]}/debian", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish(
    mirror: Mirror,
    files: dict[str, bytes],
    *,
    extra_fields: str = "",
    signed: bool = True,
    lie_about: str | None = None,
    by_hash: bool = False,
) -> None:
    """Write dists/test/<files> and an (In)Release listing their hashes."""
    dists = mirror.root / "debian" / "dists" / "test"
    lines = []
    for path, data in files.items():
        target = dists / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        if by_hash:
            hashed = target.parent / "by-hash" / "SHA256" / digest
            hashed.parent.mkdir(parents=True, exist_ok=True)
            hashed.write_bytes(data)
            target.unlink()  # prove the by-hash path is the one used
        if path == lie_about:
            digest = "0" * 64
        lines.append(f" {digest} {len(data)} {path}")
    body = (
        "Origin: Test\nSuite: test\nArchitectures: amd64\nComponents: main contrib\n"
        + extra_fields
        + ("Acquire-By-Hash: yes\n" if by_hash else "")
        + "SHA256:\n"
        + "\n".join(lines)
        + "\n"
    )
    for name in ("InRelease", "Release"):
        (dists / name).unlink(missing_ok=True)
    if signed:
        text = (
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
            + body
            + "-----BEGIN PGP SIGNATURE-----\n\nfake\n-----END PGP SIGNATURE-----\n"
        )
        (dists / "InRelease").write_text(text)
    else:
        (dists / "Release").write_text(body)


MAIN = stanza("hello", "2.10-3", depends="libc6 (>= 2.34)") + "\n" + stanza("libc6", "2.36-9")
CONTRIB = stanza("contrib-tool", "0.1", depends="hello")
ALL = stanza("docs-pkg", "1.0", arch="all")


def test_fetch_index_verifies_and_caches(mirror: Mirror, tmp_path: Path) -> None:
    main_xz = lzma.compress(MAIN.encode())
    publish(
        mirror,
        {
            "main/binary-amd64/Packages.xz": main_xz,
            "main/binary-amd64/Packages": MAIN.encode(),  # listed, not fetched
            "contrib/binary-amd64/Packages.gz": gzip.compress(CONTRIB.encode(), mtime=0),
            "main/binary-all/Packages.xz": lzma.compress(ALL.encode()),
        },
    )
    cache = tmp_path / "cache"
    index = fetch_index(mirror.url + "/", "test", ["main", "contrib"], "amd64", cache)
    assert sorted(index.packages) == ["contrib-tool", "docs-pkg", "hello", "libc6"]
    assert names(resolve_closure(index, ["contrib-tool"], "amd64")) == [
        "contrib-tool",
        "hello",
        "libc6",
    ]
    fetched = [r for r in mirror.requests if "Packages" in r]
    assert fetched == [
        "/debian/dists/test/main/binary-amd64/Packages.xz",
        "/debian/dists/test/main/binary-all/Packages.xz",
        "/debian/dists/test/contrib/binary-amd64/Packages.gz",
    ]
    assert (cache / f"Packages-{hashlib.sha256(main_xz).hexdigest()}").read_text() == MAIN

    # Same InRelease: only InRelease is downloaded again.
    mirror.requests.clear()
    again = fetch_index(mirror.url, "test", ["main", "contrib"], "amd64", cache)
    assert again == index
    assert mirror.requests == ["/debian/dists/test/InRelease"]


def test_fetch_index_falls_back_to_release(mirror: Mirror, tmp_path: Path) -> None:
    publish(
        mirror,
        {
            "main/binary-amd64/Packages.xz": lzma.compress(MAIN.encode()),
            "main/binary-all/Packages.xz": lzma.compress(ALL.encode()),
        },
        signed=False,
        # Declares that binary-amd64 already lists arch:all packages.
        extra_fields="No-Support-for-Architecture-all: Packages\n",
    )
    index = fetch_index(mirror.url, "test", ["main"], "amd64", tmp_path / "c")
    assert sorted(index.packages) == ["hello", "libc6"]
    assert mirror.requests == [
        "/debian/dists/test/InRelease",
        "/debian/dists/test/Release",
        "/debian/dists/test/main/binary-amd64/Packages.xz",
    ]


def test_fetch_index_uses_by_hash(mirror: Mirror, tmp_path: Path) -> None:
    data = lzma.compress(MAIN.encode())
    publish(mirror, {"main/binary-amd64/Packages.xz": data}, by_hash=True)
    index = fetch_index(mirror.url, "test", ["main"], "amd64", tmp_path / "c")
    assert sorted(index.packages) == ["hello", "libc6"]
    digest = hashlib.sha256(data).hexdigest()
    assert f"/debian/dists/test/main/binary-amd64/by-hash/SHA256/{digest}" in mirror.requests


def test_fetch_index_hash_mismatch(mirror: Mirror, tmp_path: Path) -> None:
    data = lzma.compress(MAIN.encode())
    publish(
        mirror,
        {"main/binary-amd64/Packages.xz": data},
        lie_about="main/binary-amd64/Packages.xz",
    )
    with pytest.raises(HashMismatchError) as info:
        fetch_index(mirror.url, "test", ["main"], "amd64", tmp_path / "c")
    message = str(info.value)
    assert hashlib.sha256(data).hexdigest() in message
    assert "0" * 64 in message
    assert not list((tmp_path / "c").glob("Packages-*"))  # nothing unverified is cached


def test_fetch_index_missing_component(mirror: Mirror, tmp_path: Path) -> None:
    publish(mirror, {"main/binary-amd64/Packages.xz": lzma.compress(MAIN.encode())})
    with pytest.raises(LockError, match="no index for non-free/binary-amd64") as info:
        fetch_index(mirror.url, "test", ["main", "non-free"], "amd64", tmp_path / "c")
    assert "components: main contrib" in str(info.value)


def test_fetch_index_unknown_suite(mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(LockError, match="suite 'nope' not found"):
        fetch_index(mirror.url, "nope", ["main"], "amd64", tmp_path / "c")


def test_fetch_index_network_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/debian"
    with pytest.raises(LockError) as info:
        fetch_index(url, "test", ["main"], "amd64", tmp_path / "c", timeout=5)
    assert f"{url}/dists/test/InRelease" in str(info.value)
    assert info.value.hint is not None and "reproflake.toml" in info.value.hint


def test_parse_release_requires_sha256() -> None:
    with pytest.raises(LockError, match="no SHA256"):
        parse_release("Origin: Test\nMD5Sum:\n abc 1 main/binary-amd64/Packages\n")


def _stanzas(*entries: str) -> PackageIndex:
    return parse_packages(
        "\n".join(
            f"{entry}\nArchitecture: amd64\nFilename: pool/{i}.deb\nSize: 1\nSHA256: {'0' * 64}\n"
            for i, entry in enumerate(entries)
        )
    )


CONFLICTING = _stanzas(
    "Package: app\nVersion: 1\nDepends: old, mta",
    "Package: old\nVersion: 1",
    "Package: a-mta\nVersion: 1\nProvides: mta\nConflicts: old",
    "Package: b-mta\nVersion: 1\nProvides: mta (= 2)\nBreaks: old (<< 1)",
    "Package: strict\nVersion: 1\nDepends: mta (>= 2)",
    "Package: picky\nVersion: 1\nDepends: a-mta",
)


def test_a_conflicting_alternative_is_passed_over() -> None:
    # a-mta is the first provider by name, but it conflicts with old, chosen first.
    assert names(resolve_closure(CONFLICTING, ["app"], "amd64")) == ["app", "b-mta", "old"]


def test_versioned_provides_satisfy_versioned_depends() -> None:
    assert names(resolve_closure(CONFLICTING, ["strict"], "amd64")) == ["b-mta", "strict"]


def test_an_unavoidable_conflict_names_both_chains() -> None:
    with pytest.raises(LockError) as err:
        resolve_closure(CONFLICTING, ["app", "picky"], "amd64")
    assert err.value.message == (
        "cannot satisfy picky → Depends: a-mta for amd64 "
        "(a-mta conflicts with old (chosen by app → old))"
    )


def test_conflicting_roots_are_refused() -> None:
    with pytest.raises(
        LockError, match=r"cannot install 'a-mta' beside old: a-mta conflicts with old"
    ):
        resolve_closure(CONFLICTING, ["old", "a-mta"], "amd64")
