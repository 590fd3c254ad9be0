from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake import spec
from reproflake.errors import LockError, StaleLockError
from reproflake.lock import model
from reproflake.lock.model import Lock, LockedDeb, LockedWheel, store_name

PATH = Path("/project/reproflake.toml")
LOCK_PATH = Path("/project/reproflake.lock")
SHA = "ef" * 32

SPEC_TEXT = f"""\
[project]
name = "m"

[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"

[environments.py]
debian = ["python3"]
python = ["numpy==2.2.6"]

[environments.base]

[inputs.raw]
path = "data/raw.csv"

[inputs.web]
url = "http://mirror.invalid/files/table.csv"
sha256 = "{SHA}"

[steps.s]
env = "py"
run = "true"
outputs = ["o"]
"""

MakeLock = Callable[[spec.Spec], Lock]


def parse(text: str = SPEC_TEXT) -> spec.Spec:
    return spec.parse(text, PATH)


def edit(old: str, new: str, text: str = SPEC_TEXT) -> str:
    assert text.count(old) == 1
    return text.replace(old, new)


def full_lock(make_lock: MakeLock) -> Lock:
    lock = make_lock(parse())
    wheel = LockedWheel(
        name="numpy",
        version="2.2.6",
        filename="numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.whl",
        url="http://mirror.invalid/packages/numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.whl",
        sha256="4" * 64,
    )
    return dataclasses.replace(lock, wheels={wheel.key: wheel})


# --------------------------------------------------------------------------- (de)serialisation


def test_round_trip(make_lock: MakeLock) -> None:
    lock = full_lock(make_lock)
    text = model.dumps(lock)
    again = model.loads(text, LOCK_PATH)
    assert again == lock
    assert model.dumps(again) == text
    assert isinstance(again.debian.components, tuple)
    assert all(isinstance(e.debs, tuple) for e in again.environments.values())


def test_dumps_is_deterministic_and_sorted(make_lock: MakeLock) -> None:
    lock = full_lock(make_lock)
    shuffled = dataclasses.replace(
        lock,
        environments=dict(reversed(list(lock.environments.items()))),
        inputs=dict(reversed(list(lock.inputs.items()))),
    )
    text = model.dumps(lock)
    assert model.dumps(shuffled) == text
    assert text.endswith("}\n")

    def check_sorted(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys)
        return dict(pairs)

    json.loads(text, object_pairs_hook=check_sorted)


def test_dumps_leaves_out_unset_input_fields(make_lock: MakeLock) -> None:
    lock = make_lock(parse())
    doc = json.loads(model.dumps(lock))
    nar = lock.inputs["raw"].nar_hash
    assert doc["inputs"]["raw"] == {"kind": "local", "path": "data/raw.csv", "nar_hash": nar}
    assert doc["inputs"]["web"] == {
        "kind": "url",
        "url": "http://mirror.invalid/files/table.csv",
        "sha256": SHA,
    }
    assert doc["version"] == model.LOCK_VERSION


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", "null", '{"version": 1}', '{"version": 1, "debian": {}}'],
)
def test_loads_garbage(text: str) -> None:
    with pytest.raises(LockError) as info:
        model.loads(text, LOCK_PATH)
    assert info.value.message.startswith(f"{LOCK_PATH}: not a valid reproflake lock (")
    assert info.value.hint and "reproflake lock" in info.value.hint


def test_loads_unknown_field(make_lock: MakeLock) -> None:
    doc = json.loads(model.dumps(make_lock(parse())))
    doc["seed"]["surprise"] = 1
    with pytest.raises(LockError) as info:
        model.loads(json.dumps(doc), LOCK_PATH)
    assert "not a valid reproflake lock" in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("version", [None, 2, "1"])
def test_loads_other_version(make_lock: MakeLock, version: object) -> None:
    doc = json.loads(model.dumps(make_lock(parse())))
    doc["version"] = version
    with pytest.raises(LockError) as info:
        model.loads(json.dumps(doc), LOCK_PATH)
    assert info.value.exit_code == 2
    assert info.value.message == (
        f'{LOCK_PATH}: "version": {json.dumps(version)} is not a lock format this reproflake '
        "reads (it reads version 1)"
    )
    assert info.value.hint and "reproflake lock" in info.value.hint


def test_read_write_require(tmp_path: Path, make_lock: MakeLock) -> None:
    assert model.read(tmp_path) is None
    with pytest.raises(StaleLockError) as info:
        model.require(tmp_path)
    assert info.value.hint and "reproflake lock" in info.value.hint
    lock = make_lock(parse())
    assert model.write(tmp_path, lock) is True
    assert model.write(tmp_path, lock) is False
    assert (tmp_path / model.LOCK_FILE).read_text() == model.dumps(lock)
    assert model.require(tmp_path) == lock


# --------------------------------------------------------------------------- staleness


def test_fresh_lock_is_not_stale(make_lock: MakeLock) -> None:
    assert model.stale_entries(parse(), make_lock(parse())) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'debian = ["python3"]',
            'debian = ["python3", "curl"]',
            "environments.py.debian: packages changed",
        ),
        (
            'python = ["numpy==2.2.6"]',
            'python = ["numpy==2.2.5"]',
            "environments.py.python: requirements changed",
        ),
        (
            "[environments.base]\n",
            "[environments.base]\n\n[environments.extra]\n",
            "environments.extra: not locked yet",
        ),
        ("[environments.base]\n", "", "environments.base: in the lock but no longer in the spec"),
        (f'sha256 = "{SHA}"', f'sha256 = "{"0" * 64}"', "inputs.web: url or sha256 changed"),
        ("files/table.csv", "files/table-v2.csv", "inputs.web: url or sha256 changed"),
        ('path = "data/raw.csv"', 'path = "data/raw-v2.csv"', "inputs.raw: path changed"),
        (
            "[inputs.raw]\n",
            "[inputs.more]\npath = 'x'\n\n[inputs.raw]\n",
            "inputs.more: not locked yet",
        ),
        (
            'mirror = "http://mirror.invalid/debian"',
            'mirror = "http://mirror.invalid/other"',
            "debian: mirror, suite, components or architecture changed",
        ),
        (
            'suite = "bookworm"',
            'suite = "trixie"',
            "debian: mirror, suite, components or architecture changed",
        ),
        (
            'suite = "bookworm"',
            'suite = "bookworm"\ncomponents = ["main", "contrib"]',
            "debian: mirror, suite, components or architecture changed",
        ),
        (
            "[debian]",
            '[python]\nindex_url = "http://mirror.invalid/simple"\n\n[debian]',
            "python: package index settings changed",
        ),
        ('name = "m"', 'name = "m"\nsource_date_epoch = 1', "project.source_date_epoch changed"),
    ],
)
def test_stale_entries(make_lock: MakeLock, old: str, new: str, problem: str) -> None:
    lock = make_lock(parse())
    assert model.stale_entries(parse(edit(old, new)), lock) == [problem]


def test_removed_input_is_stale(make_lock: MakeLock) -> None:
    lock = make_lock(parse())
    text = edit('[inputs.raw]\npath = "data/raw.csv"\n', "")
    assert model.stale_entries(parse(text), lock) == [
        "inputs.raw: in the lock but no longer in the spec"
    ]


def test_local_input_turned_url_is_stale(make_lock: MakeLock) -> None:
    lock = make_lock(parse())
    text = edit('path = "data/raw.csv"', f'url = "http://mirror.invalid/raw.csv"\nsha256 = "{SHA}"')
    assert model.stale_entries(parse(text), lock) == ["inputs.raw: url or sha256 changed"]


def test_source_date_epoch_in_the_spec_matching_the_lock_is_fresh(make_lock: MakeLock) -> None:
    text = edit('name = "m"', 'name = "m"\nsource_date_epoch = 1700000000')
    lock = make_lock(parse())  # the lock's own epoch is 1700000000
    assert model.stale_entries(parse(text), lock) == []


def test_several_problems_are_all_reported(make_lock: MakeLock) -> None:
    lock = make_lock(parse())
    text = edit('suite = "bookworm"', 'suite = "trixie"')
    text = edit('python = ["numpy==2.2.6"]', "", text)
    assert model.stale_entries(parse(text), lock) == [
        "debian: mirror, suite, components or architecture changed",
        "environments.py.debian: packages changed",  # libgcc-s1/libstdc++6 no longer implied
        "environments.py.python: requirements changed",
    ]


# --------------------------------------------------------------------------- store names


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("libfoo1_2%3a1.0~rc1-1_amd64.deb", "libfoo1_2-1.0-rc1-1_amd64.deb"),
        ("libfoo1_2%3A1.0-1_amd64.deb", "libfoo1_2-1.0-1_amd64.deb"),
        ("libfoo1_2:1.0~rc1-1_amd64.deb", "libfoo1_2-1.0-rc1-1_amd64.deb"),
        ("gcc-12-base_12.2.0-14+deb12u1_amd64.deb", "gcc-12-base_12.2.0-14+deb12u1_amd64.deb"),
        (".hidden", "hidden"),
        ("...", "file"),
        ("", "file"),
        ("a b/c", "a-b-c"),
    ],
)
def test_store_name(filename: str, expected: str) -> None:
    assert store_name(filename) == expected


def test_deb_key_is_the_store_name_of_the_pool_file() -> None:
    deb = LockedDeb(
        package="libfoo1",
        version="2:1.0~rc1-1",
        architecture="amd64",
        filename="pool/main/libf/libfoo/libfoo1_2%3a1.0~rc1-1_amd64.deb",
        url="http://mirror.invalid/debian/pool/main/libf/libfoo/libfoo1_2%3a1.0~rc1-1_amd64.deb",
        size=1,
        sha256="5" * 64,
    )
    assert deb.key == "libfoo1_2-1.0-rc1-1_amd64.deb"


def test_a_lock_nested_too_deeply_is_an_invalid_lock_not_a_crash() -> None:
    # A lock comes with a cloned repository: JSON thousands of arrays deep must not crash.
    with pytest.raises(model.InvalidLockError, match="not a valid reproflake lock"):
        model.loads("[" * 100_000 + "]" * 100_000, Path("/p/reproflake.lock"))
