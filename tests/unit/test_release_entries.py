"""entries.json: what SHA256SUMS cannot say (kinds, modes, links' targets, directories),
written by `release` and checked by `reproduce`, through the real writer and extractor."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from reproflake.artifacts import extract, recorded
from reproflake.artifacts import release as rel

TOP = "demo-0123"


def _items() -> list[rel.Item]:
    items = [
        rel.memory("reproflake.toml", b"spec\n"),
        rel.memory("run.sh", b"#!/bin/sh\n", executable=True),
        rel.Item("src/data", "0" * 64, link="../data"),
        rel.memory("data/x.csv", b"1,2\n"),
        rel.memory("results/fit/model.json", b"{}\n"),
    ]
    statement = {
        "subject": [{"name": "results/fit/model.json", "digest": {"sha256": items[-1].sha256}}],
        "predicate": {"buildDefinition": {
            "externalParameters": {"project": "demo", "commit": "c" * 40},
            "internalParameters": {"outputs": {"fit": "/nix/store/" + "a" * 32 + "-x"}},
        }},
    }  # fmt: skip
    items.append(rel.memory(rel.PROVENANCE, json.dumps(statement).encode()))
    items.append(rel.memory(rel.ENTRIES, rel.entries_record(items, [rel.ENTRIES, rel.SUMS])))
    items.append(rel.memory(rel.SUMS, rel.sums(items)))
    return sorted(items, key=lambda i: i.path)


def _archive(
    tmp_path: Path,
    change: Callable[[tarfile.TarFile], None] | None = None,
    header: Callable[[tarfile.TarInfo], None] | None = None,
    items: list[rel.Item] | None = None,
    name: str = "r.tar.gz",
) -> Path:
    """A release of ``items`` (default: _items()), rewritten with ``header`` applied to
    every entry and ``change`` adding entries at the end, when given."""
    buf = io.BytesIO()
    rel.write(buf, TOP, _items() if items is None else items, 0, "tar.gz")
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    if change is None and header is None:
        path.write_bytes(buf.getvalue())
        return path
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for info in src:
            data = src.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            if header is not None:
                header(info)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
        if change is not None:
            change(dst)
    path.write_bytes(out.getvalue())
    return path


def _check(archive: Path, dest: Path) -> list[str] | None:
    got = extract.extract(archive, dest)
    rec = recorded.read(got.top)
    return recorded.check_files(rec, got.members) + (
        recorded.check_entries(got.top, rec, got.members) or []
    )


def test_the_record_lists_every_entry_with_its_kind_and_mode() -> None:
    items = _items()
    doc = json.loads(next(i.content for i in items if i.path == rel.ENTRIES) or b"")
    entries = doc["entries"]
    assert entries["run.sh"] == {"kind": "file", "mode": "0755"}
    assert entries["reproflake.toml"] == {"kind": "file", "mode": "0644"}
    assert entries["src/data"] == {"kind": "symlink", "target": "../data"}
    assert entries["results"] == entries["results/fit"] == entries["src"] == {"kind": "dir"}
    assert entries[rel.SUMS] == entries[rel.ENTRIES] == {"kind": "file", "mode": "0644"}
    assert list(entries) == sorted(entries, key=lambda p: p.split("/"))


def test_an_untouched_release_agrees(tmp_path: Path) -> None:
    assert _check(_archive(tmp_path), tmp_path / "x") == []


def _link(name: str, target: str) -> Callable[[tarfile.TarFile], None]:
    def add(dst: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(f"{TOP}/{name}")
        info.type, info.linkname = tarfile.SYMTYPE, target
        dst.addfile(info)

    return add


def test_an_added_link_is_named(tmp_path: Path) -> None:
    problems = _check(_archive(tmp_path, _link("src/extra.py", "../run.sh")), tmp_path / "x")
    assert problems == ["src/extra.py: a symlink in the archive, but not listed in entries.json"]


def test_a_changed_mode_and_a_changed_link_are_named(tmp_path: Path) -> None:
    def edit(info: tarfile.TarInfo) -> None:
        if info.name.endswith("/reproflake.toml"):
            info.mode = 0o755
        if info.name.endswith("/src/data"):
            info.linkname = "../results"

    problems = _check(_archive(tmp_path, header=edit), tmp_path / "x")
    assert problems == [
        "entries.json: reproflake.toml is listed as a file of mode 0644, the archive has a "
        "file of mode 0755",
        "entries.json: src/data is listed as a link to '../data', the archive has a link to "
        "'../results'",
    ]


def test_a_release_from_before_entries_json_is_told_apart(tmp_path: Path) -> None:
    items = [i for i in _items() if i.path not in (rel.ENTRIES, rel.SUMS)]
    items.append(rel.memory(rel.SUMS, rel.sums(items)))
    buf = io.BytesIO()
    rel.write(buf, TOP, sorted(items, key=lambda i: i.path), 0, "tar.gz")
    archive = tmp_path / "old.tar.gz"
    archive.write_bytes(buf.getvalue())
    got = extract.extract(archive, tmp_path / "x")
    rec = recorded.read(got.top)
    assert recorded.check_files(rec, got.members) == []
    assert recorded.check_entries(got.top, rec, got.members) is None


def test_a_listed_entries_json_that_is_missing_is_named(tmp_path: Path) -> None:
    buf = io.BytesIO()
    rel.write(buf, TOP, [i for i in _items() if i.path != rel.ENTRIES], 0, "tar.gz")
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(buf.getvalue())
    problems = _check(archive, tmp_path / "x")
    assert problems == [
        "SHA256SUMS:6: entries.json is listed, but the archive has no such file",
    ]


def test_the_signature_is_the_envelope_not_an_entry(tmp_path: Path) -> None:
    def sign(dst: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(f"{TOP}/SHA256SUMS.sig")
        info.size = 3
        dst.addfile(info, io.BytesIO(b"sig"))

    assert _check(_archive(tmp_path, sign), tmp_path / "x") == []
    # Any other file added is named.
    assert _check(_archive(tmp_path / "b", _link("SHA256SUMS.asc", "x")), tmp_path / "y") == [
        "SHA256SUMS.asc: a symlink in the archive, but not listed in entries.json"
    ]


def _old_release(tmp_path: Path, change: Callable[[tarfile.TarFile], None]) -> Path:
    """A release from before entries.json (SHA256SUMS lists none), with ``change`` added."""
    items = [i for i in _items() if i.path not in (rel.ENTRIES, rel.SUMS)]
    items.append(rel.memory(rel.SUMS, rel.sums(items)))
    return _archive(tmp_path, change, items=sorted(items, key=lambda i: i.path), name="old.tar.gz")


def _dir(name: str) -> Callable[[tarfile.TarFile], None]:
    def add(dst: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(f"{TOP}/{name}")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(info)

    return add


def test_an_unlisted_entries_json_that_is_no_file_does_not_pass_for_checked(
    tmp_path: Path,
) -> None:
    # An old release with a directory or a link named entries.json added: neither may
    # silence "links and modes are not checked" nor pass for a check that found nothing.
    for n, change in enumerate([_dir(rel.ENTRIES), _link(rel.ENTRIES, rel.SUMS)]):
        got = extract.extract(_old_release(tmp_path / str(n), change), tmp_path / f"x{n}")
        rec = recorded.read(got.top)
        kind = got.members[rel.ENTRIES].kind
        assert recorded.check_files(rec, got.members) == []
        assert recorded.check_entries(got.top, rec, got.members) == [
            f"{rel.ENTRIES}: a {kind} in the archive, but not listed in {rel.SUMS}"
        ]


def test_a_signature_that_is_no_file_is_named(tmp_path: Path) -> None:
    # The signature is exempt as the envelope, a file; a link or a directory in its
    # place is something added.
    assert _check(_archive(tmp_path, _link("SHA256SUMS.sig", "SHA256SUMS")), tmp_path / "x") == [
        "SHA256SUMS.sig: a symlink in the archive, but not listed in entries.json"
    ]
    assert _check(_archive(tmp_path / "b", _dir("SHA256SUMS.sig")), tmp_path / "y") == [
        "SHA256SUMS.sig: a dir in the archive, but not listed in entries.json"
    ]
