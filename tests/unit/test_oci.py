"""Deterministic layers and images: pinned bytes, and independence from the host's metadata."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from reproflake.artifacts import layers, oci, tarball
from reproflake.artifacts.validate import check_layout


def tree(root: Path, mode: int, mtime: int) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "usr/share/doc").mkdir(parents=True)
    (root / "usr/share/doc/readme").write_bytes(b"x" * 1000)
    (root / "tmp").mkdir()
    os.symlink("usr/bin", root / "bin")
    os.chmod(root / "usr/bin/tool", 0o700 | mode)
    os.chmod(root / "usr/share/doc/readme", 0o600 | mode)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    return root


def layer_bytes(root: Path, compression: str) -> tuple[bytes, tarball.Written]:
    entries = tarball.with_parents(layers.walk(root, ""))
    buf = io.BytesIO()
    written = tarball.write_tar(entries, 315532800, buf, compression)
    return buf.getvalue(), written


@pytest.mark.parametrize("compression", tarball.COMPRESSIONS)
def test_layer_bytes_ignore_host_modes_times_and_owners(tmp_path: Path, compression: str) -> None:
    a, wa = layer_bytes(tree(tmp_path / "a", 0o044, 1), compression)
    b, wb = layer_bytes(tree(tmp_path / "b", 0o000, 2_000_000_000), compression)
    assert a == b
    assert wa == wb
    assert wa.digest == "sha256:" + hashlib.sha256(a).hexdigest()


def test_layer_entries_are_normalised(tmp_path: Path) -> None:
    data, written = layer_bytes(tree(tmp_path / "a", 0, 5), "none")
    assert written.digest == written.diff_id
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == [
        "bin", "tmp", "usr", "usr/bin", "usr/bin/tool", "usr/share", "usr/share/doc",
        "usr/share/doc/readme",
    ]  # fmt: skip
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {
        (0, 0, "", "", 315532800)
    }
    assert members["usr/bin/tool"].mode == 0o755
    assert members["usr/share/doc/readme"].mode == 0o644
    assert members["tmp"].mode == 0o1777
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"


def test_layer_bytes_are_pinned(tmp_path: Path) -> None:
    """The exact bytes: a change to the tar or gzip framing must be deliberate (FORMAT)."""
    data, written = layer_bytes(tree(tmp_path / "a", 0, 5), "none")
    assert len(data) == 9 * 512 + 2 * 512 + 2 * 512
    assert written.diff_id == ("sha256:" + hashlib.sha256(data).hexdigest())
    assert hashlib.sha256(data).hexdigest()[:16] == PINNED_TAR


PINNED_TAR = "65a100318bb5cb57"


def test_packages_keep_their_group_whatever_else_is_installed() -> None:
    assert layers.group_of("python3.11") == layers.group_of("python3.11")
    groups = {layers.group_of(f"pkg{i}") for i in range(200)}
    assert groups == set(range(layers.GROUPS))  # every group is used, none beyond


def test_one_more_package_changes_one_layer(tmp_path: Path) -> None:
    root = tmp_path / "env"
    owners: dict[str, str] = {}
    for i in range(40):
        (root / f"p{i}").mkdir(parents=True)
        (root / f"p{i}/file").write_text(str(i))
        owners[f"p{i}/file"] = f"pkg{i}"
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root")
    before = layers.environment_layers(root, owners, "e")
    (root / "extra").mkdir()
    (root / "extra/file").write_text("new")
    after = layers.environment_layers(root, {**owners, "extra/file": "pkg-extra"}, "e")
    new = [lay for lay in after if lay not in before]
    assert len(new) == 1 and "pkg-extra" in new[0].owners
    kept = [lay for lay in before if lay in after]
    assert len(kept) >= len(before) - 1  # at most the group that gained the package differs
    assert after[-1].comment == "environment e: configuration"


def test_an_image_layout_validates_and_a_flipped_byte_does_not(tmp_path: Path) -> None:
    store = oci.BlobStore(tmp_path / "cache")
    layer = layers.Layer(
        "files", tuple(tarball.with_parents(layers.walk(tree(tmp_path / "t", 0, 1), "app")))
    )
    blob = store.layer(layer, 0, "gzip")
    cfg = oci.ImageConfig(
        "1970-01-01T00:00:00Z", ["/app/usr/bin/tool"], [], {"A": "1"}, "/", {}, {}
    )
    manifest = oci.image(store, [blob], cfg)
    ref = oci.referrer(store, manifest, oci.IN_TOTO, b'{"x":1}', {})
    tagged = oci.Descriptor(
        manifest.media_type, manifest.digest, manifest.size, {oci.REF_NAME: "latest"}
    )
    oci.write_dir(store, [tagged, ref], tmp_path / "image")
    assert check_layout(tmp_path / "image") == []
    oci.write_archive(store, [tagged], tmp_path / "image.tar", 0, extra=[ref])
    assert check_layout(tmp_path / "image.tar") == []
    referrer = json.loads((tmp_path / "image/blobs/sha256" / ref.digest[7:]).read_bytes())
    assert referrer["subject"]["digest"] == manifest.digest
    # A second store (another machine, another time) writes the same bytes.
    store2 = oci.BlobStore(tmp_path / "cache2")
    layer2 = layers.Layer(
        "files", tuple(tarball.with_parents(layers.walk(tree(tmp_path / "t2", 0o044, 9), "app")))
    )
    assert oci.image(store2, [store2.layer(layer2, 0, "gzip")], cfg) == manifest
    config = json.loads(
        store.path(
            json.loads(store.path(manifest.digest).read_bytes())["config"]["digest"]
        ).read_bytes()
    )
    assert config["rootfs"]["diff_ids"] == [blob.diff_id]
    target = tmp_path / "image/blobs/sha256" / blob.descriptor.digest[7:]
    data = bytearray(target.read_bytes())
    data[-10] ^= 1
    target.unlink()
    target.write_bytes(bytes(data))
    problems = check_layout(tmp_path / "image")
    assert any("content hashes to" in p for p in problems)


def test_the_fast_tar_header_is_the_bytes_tarfile_writes() -> None:
    from reproflake.artifacts import tarball

    cases = [
        tarball.Entry("a", "dir"),
        tarball.Entry("tmp", "dir"),
        tarball.Entry("usr/bin/x", "file", source="/x", executable=True),
        tarball.Entry("a/b", "file"),
        tarball.Entry("l", "symlink", target="../x"),
        tarball.Entry("x" * 100, "file"),
        tarball.Entry("x" * 101, "file"),  # a PAX record: tarfile's own
        tarball.Entry("\u00e9", "file"),
        tarball.Entry("d" * 99, "dir"),
        tarball.Entry("d" * 100, "dir"),
        tarball.Entry("l2", "symlink", target="t" * 101),
    ]
    for entry in cases:
        for size in (0, 5, 12345678):
            size = size if entry.kind == "file" else 0
            fast = tarball.header(entry, 1700000000, size)
            assert fast == tarball._tarfile_header(entry, 1700000000, size), entry


def test_gathered_writes_compress_as_one_stream(tmp_path: Path) -> None:
    """The sink gathers small writes: the layer must still be the tar compressed whole."""
    import io
    import zlib

    import zstandard

    from reproflake.artifacts import tarball

    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 9000)  # more than one gathered piece
    entries = [tarball.Entry("big", "file", source=str(big))]
    for i in range(300):
        small = tmp_path / f"s{i:03}"
        small.write_bytes(b"x" * i)
        entries.append(tarball.Entry(small.name, "file", source=str(small)))
    raw = io.BytesIO()
    tarball.write_tar(entries, 0, raw, "none")
    for kind in ("gzip", "zstd"):
        out = io.BytesIO()
        tarball.write_tar(entries, 0, out, kind)
        if kind == "gzip":
            z = zlib.compressobj(tarball.GZIP_LEVEL, zlib.DEFLATED, 31)
            whole = z.compress(raw.getvalue()) + z.flush()
        else:
            c = zstandard.ZstdCompressor(level=tarball.ZSTD_LEVEL, threads=1, write_checksum=True)
            zobj = c.compressobj()
            whole = zobj.compress(raw.getvalue()) + zobj.flush()
        assert out.getvalue() == whole, kind


def test_zstd_bytes_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    """Layers are written with one zstd worker each, a release with one per core: the
    same bytes, also over several of zstd's jobs (more than 8 MiB) and with the
    compression context reused by the next stream."""
    import zstandard

    data = os.urandom(3 << 20) + bytes(6 << 20) + bytes(range(256)) * (40 << 12)
    src = tmp_path / "big"
    src.write_bytes(data)
    entries = [tarball.Entry("big", "file", source=str(src))]
    outputs = set()
    for threads in (1, 2, 3, 1):
        out = io.BytesIO()
        tarball.write_tar(entries, 0, out, "zstd", threads=threads)
        outputs.add(out.getvalue())
    assert len(outputs) == 1
    raw = io.BytesIO()
    tarball.write_tar(entries, 0, raw, "none")
    c = zstandard.ZstdCompressor(level=tarball.ZSTD_LEVEL, threads=1, write_checksum=True)
    zobj = c.compressobj()
    assert outputs.pop() == zobj.compress(raw.getvalue()) + zobj.flush()


@pytest.mark.parametrize("compression", tarball.COMPRESSIONS)
def test_only_the_hashes_asked_for_and_the_same_bytes(tmp_path: Path, compression: str) -> None:
    root = tree(tmp_path / "a", 0, 5)
    entries = tarball.with_parents(layers.walk(root, ""))
    full = io.BytesIO()
    both = tarball.write_tar(entries, 0, full, compression)
    assert both.digest == "sha256:" + hashlib.sha256(full.getvalue()).hexdigest()
    for diff_id, digest in ((False, True), (True, False), (False, False)):
        out = io.BytesIO()
        got = tarball.write_tar(entries, 0, out, compression, diff_id=diff_id, digest=digest)
        assert out.getvalue() == full.getvalue()
        assert got.size == both.size == len(full.getvalue())
        if compression != "none":  # uncompressed, one hash serves as both
            assert got.diff_id == (both.diff_id if diff_id else "")
            assert got.digest == (both.digest if digest else "")


def test_unhashed_plain_tar_into_a_file_is_copied_by_the_kernel(tmp_path: Path) -> None:
    """An archive of blobs: file contents go file to file (sendfile), same bytes."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * tarball.CHUNK + 7))
    entries = [
        tarball.Entry("a", "file", content=b"x" * 10),
        tarball.Entry("big", "file", source=str(big)),
        tarball.Entry("c", "file", source=str(tree(tmp_path / "t", 0, 1) / "usr/bin/tool")),
    ]
    expected = io.BytesIO()
    tarball.write_tar(entries, 7, expected, "none")
    dest = tmp_path / "out.tar"
    with open(dest, "wb", buffering=0) as f:
        written = tarball.write_tar(entries, 7, f, "none", diff_id=False, digest=False)
    assert dest.read_bytes() == expected.getvalue()
    assert written == tarball.Written("", "", len(expected.getvalue()))
    with tarfile.open(dest) as tar:
        member = tar.extractfile("big")
        assert member is not None and member.read() == big.read_bytes()


def test_layers_written_side_by_side_are_the_bytes_each_gets_alone(tmp_path: Path) -> None:
    """zstd layers are written by two threads at once, each with its own context: every
    blob, digest and diff_id is the one a lone single-worker stream gives that layer."""
    import zstandard

    from reproflake.artifacts import recipe

    todo = []
    for i in range(6):
        src = tmp_path / f"f{i}"
        src.write_bytes(os.urandom(1 << 16) + bytes([i]) * ((i + 1) << 19))
        entries = tuple(tarball.with_parents([tarball.Entry(f"d{i}/f", "file", source=str(src))]))
        todo.append(layers.Layer(f"layer {i}", entries))
    store = oci.BlobStore(tmp_path / "store")
    blobs = recipe._write_layers(store, todo, 0, "zstd")
    for layer, blob in zip(todo, blobs, strict=True):
        raw = io.BytesIO()
        tarball.write_tar(layer.entries, 0, raw, "none")
        c = zstandard.ZstdCompressor(level=tarball.ZSTD_LEVEL, threads=1, write_checksum=True)
        zobj = c.compressobj()
        alone = zobj.compress(raw.getvalue()) + zobj.flush()
        assert store.path(blob.descriptor.digest).read_bytes() == alone
        assert blob.descriptor.digest == "sha256:" + hashlib.sha256(alone).hexdigest()
        assert blob.diff_id == "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
        assert blob.layer is layer
