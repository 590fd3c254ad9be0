"""reproflake.lock.python: pip configuration, wheel tag choice, and resolution with uv.

The resolution tests at the end use the host's pip configuration and may need the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomllib

from reproflake._proc import CommandError
from reproflake.errors import LockError, UsageError
from reproflake.lock import python as pylock
from reproflake.lock.python import (
    IndexConfig,
    dump_toml,
    index_from_pip_config,
    resolve,
    select_wheel,
    supported_tags,
)

# ------------------------------------------------------------------------------ pip config


@pytest.fixture
def pip_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment whose pip configuration files all lie under tmp_path (none exist yet)."""
    monkeypatch.setattr(pylock, "_ETC_PIP_CONF", tmp_path / "etc" / "pip.conf")
    monkeypatch.setattr(pylock, "_SITE_PIP_CONF", tmp_path / "venv" / "pip.conf")
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "xdg")}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_configuration_means_uv_default(pip_env: dict[str, str]) -> None:
    assert index_from_pip_config(pip_env) == IndexConfig(None, (), ())


def test_user_file_with_multi_values_and_constraint(
    pip_env: dict[str, str], tmp_path: Path
) -> None:
    write(
        tmp_path / "home" / ".config" / "pip" / "pip.conf",
        "[global]\n"
        "index-url = https://index.example/simple\n"
        "extra-index-url = file:///srv/a/simple  https://b.example/simple\n"
        "    https://c.example/simple\n"
        "find_links = /opt/wheels\n"
        "constraint = /etc/constraints.txt\n",
    )
    assert index_from_pip_config(pip_env) == IndexConfig(
        "https://index.example/simple",
        ("file:///srv/a/simple", "https://b.example/simple", "https://c.example/simple"),
        ("/opt/wheels",),
        ("/etc/constraints.txt",),
    )


def test_later_files_win_and_install_section_beats_global(
    pip_env: dict[str, str], tmp_path: Path
) -> None:
    write(tmp_path / "xdg" / "pip" / "pip.conf", "[install]\nfind-links = /from-xdg\n")
    write(tmp_path / "etc" / "pip.conf", "[global]\nindex-url = https://etc.example/simple\n")
    write(tmp_path / "home" / ".pip" / "pip.conf", "[global]\nfind-links = /legacy\n")
    write(
        tmp_path / "home" / ".config" / "pip" / "pip.conf",
        "[global]\nindex-url = https://user.example/simple\nfind-links = /user\n",
    )
    config = index_from_pip_config(pip_env)
    assert config.index_url == "https://user.example/simple"
    # [install] applies after [global] whatever file it came from, as in pip.
    assert config.find_links == ("/from-xdg",)


def test_site_file_beats_user_file(pip_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "home" / ".pip" / "pip.conf", "[global]\nfind-links = /user\n")
    write(tmp_path / "venv" / "pip.conf", "[global]\nfind-links = /venv\n")
    assert index_from_pip_config(pip_env).find_links == ("/venv",)


def test_xdg_config_home_replaces_dot_config(pip_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf", "[global]\nfind-links = /no\n")
    write(tmp_path / "cfg" / "pip" / "pip.conf", "[global]\nfind-links = /yes\n")
    env = {**pip_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert index_from_pip_config(env).find_links == ("/yes",)


def test_pip_config_file_wins_and_hides_user_files(pip_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "home" / ".pip" / "pip.conf", "[global]\nextra-index-url = /user\n")
    write(tmp_path / "etc" / "pip.conf", "[global]\nfind-links = /etc-links\n")
    env_file = write(tmp_path / "env.conf", "[install]\nindex-url = https://env.example/s\n")
    config = index_from_pip_config({**pip_env, "PIP_CONFIG_FILE": str(env_file)})
    assert config == IndexConfig("https://env.example/s", (), ("/etc-links",))


def test_pip_config_file_devnull_loads_nothing(pip_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "etc" / "pip.conf", "[global]\nfind-links = /etc-links\n")
    env = {**pip_env, "PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "/env"}
    assert index_from_pip_config(env) == IndexConfig(None, (), ("/env",))


def test_environment_variables_beat_files(pip_env: dict[str, str], tmp_path: Path) -> None:
    write(
        tmp_path / "home" / ".pip" / "pip.conf",
        "[install]\nindex-url = https://file.example/simple\nfind-links = /file\n",
    )
    env = {
        **pip_env,
        "PIP_INDEX_URL": "https://env.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://x.example/simple https://y.example/simple",
        "PIP_CONSTRAINT": "/env-a.txt /env-b.txt",
    }
    assert index_from_pip_config(env) == IndexConfig(
        "https://env.example/simple",
        ("https://x.example/simple", "https://y.example/simple"),
        ("/file",),
        ("/env-a.txt", "/env-b.txt"),
    )


def test_broken_pip_config_is_a_usage_error(pip_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "home" / ".pip" / "pip.conf", "index-url = no section header\n")
    with pytest.raises(UsageError, match="pip configuration"):
        index_from_pip_config(pip_env)


# ------------------------------------------------------------------------------ wheel tags

# (candidate filenames, expected choice) for CPython 3.11, glibc 2.36, x86_64.
SELECTION_CASES = [
    (["six-1.17.0-py2.py3-none-any.whl"], "six-1.17.0-py2.py3-none-any.whl"),
    # The interpreter-specific ABI beats abi3, which beats pure Python.
    (
        [
            "pkg-1.0-py3-none-any.whl",
            "pkg-1.0-cp37-abi3-manylinux_2_28_x86_64.whl",
            "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        ],
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ),
    # Among abi3 wheels the newer minimum Python is more specific; then the newer glibc.
    (
        [
            "c-44-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "c-44-cp37-abi3-manylinux_2_28_x86_64.whl",
            "c-44-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "c-44-cp39-abi3-manylinux_2_28_x86_64.whl",
        ],
        "c-44-cp39-abi3-manylinux_2_28_x86_64.whl",
    ),
    # Too new a glibc, another CPU, another Python, musl, other OSes: nothing fits.
    (
        [
            "p-1-cp311-cp311-manylinux_2_39_x86_64.whl",
            "p-1-cp311-cp311-manylinux_2_17_aarch64.whl",
            "p-1-cp312-cp312-manylinux_2_17_x86_64.whl",
            "p-1-cp311-cp311-musllinux_1_2_x86_64.whl",
            "p-1-cp311-cp311-win_amd64.whl",
            "p-1-cp311-cp311-macosx_11_0_arm64.whl",
            "p-1-py2-none-any.whl",
            "p-1-cp312-abi3-manylinux_2_17_x86_64.whl",
        ],
        None,
    ),
    # Legacy aliases: manylinux1 is glibc 2.5, manylinux2014 is 2.17.
    (
        ["q-1-cp311-cp311-manylinux1_x86_64.whl", "q-1-cp311-cp311-manylinux2014_x86_64.whl"],
        "q-1-cp311-cp311-manylinux2014_x86_64.whl",
    ),
    # The exact glibc is allowed, and manylinux beats the unportable linux_x86_64.
    (
        ["r-1-cp311-cp311-linux_x86_64.whl", "r-1-cp311-cp311-manylinux_2_36_x86_64.whl"],
        "r-1-cp311-cp311-manylinux_2_36_x86_64.whl",
    ),
    (["r-1-cp311-cp311-linux_x86_64.whl"], "r-1-cp311-cp311-linux_x86_64.whl"),
    # A platform wheel without an ABI beats a pure one; py311 beats py3 beats cp311-none-any.
    (
        ["s-1-py3-none-any.whl", "s-1-py3-none-manylinux1_x86_64.whl"],
        "s-1-py3-none-manylinux1_x86_64.whl",
    ),
    (["t-1-py3-none-any.whl", "t-1-cp311-none-any.whl"], "t-1-cp311-none-any.whl"),
    (["u-1-py3-none-any.whl", "u-1-py311-none-any.whl"], "u-1-py311-none-any.whl"),
    # Equal tags: the filename decides (build tags here), whatever the input order.
    (["v-1-2-py3-none-any.whl", "v-1-1-py3-none-any.whl"], "v-1-1-py3-none-any.whl"),
]


@pytest.mark.parametrize(("filenames", "expected"), SELECTION_CASES)
def test_select_wheel(filenames: list[str], expected: str | None) -> None:
    assert select_wheel(filenames, "3.11", "2.36", "x86_64") == expected
    assert select_wheel(list(reversed(filenames)), "3.11", "2.36", "x86_64") == expected


def test_select_wheel_other_target() -> None:
    names = ["w-1-cp312-cp312-manylinux_2_17_aarch64.whl", "w-1-cp311-cp311-manylinux1_x86_64.whl"]
    assert select_wheel(names, "3.12.3", "2.39", "aarch64") == names[0]
    # manylinux1 does not exist for aarch64, and aarch64 starts at glibc 2.17.
    assert select_wheel(["w-1-py3-none-manylinux1_aarch64.whl"], "3.12", "2.39", "aarch64") is None


def test_supported_tags_order() -> None:
    tags = supported_tags("3.11", "2.36", "x86_64")
    assert tags[0] == ("cp311", "cp311", "manylinux_2_36_x86_64")
    assert tags[-1] == ("py30", "none", "any")
    assert tags.index(("cp311", "cp311", "manylinux_2_17_x86_64")) + 1 == tags.index(
        ("cp311", "cp311", "manylinux2014_x86_64")
    )
    assert len(tags) == len(set(tags))


def test_bad_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        supported_tags("2.7", "2.36", "x86_64")
    with pytest.raises(UsageError):
        supported_tags("3.11", "glibc", "x86_64")


def test_not_a_wheel_filename() -> None:
    with pytest.raises(LockError, match="not a wheel"):
        select_wheel(["numpy-2.2.6.tar.gz"], "3.11", "2.36", "x86_64")


# ------------------------------------------------------------------------------ TOML output


def test_dump_toml_round_trips() -> None:
    doc = {
        "lock-version": "1.0",
        "created-by": "uv",
        "packages": [
            {
                "name": "a",
                "version": "1",
                "marker": "python_full_version >= '3.8' and sys_platform == \"linux\"",
                "wheels": [
                    {
                        "url": "file:///tmp/with%20space/a-1-py3-none-any.whl",
                        "upload-time": datetime(2024, 11, 27, 18, 6, 1, tzinfo=timezone.utc),
                        "size": 3,
                        "hashes": {"sha256": "0" * 64},
                    }
                ],
                "tool": {"x.y": ["é", "\\", "\x7f\n", True, 1.5], "empty": {}},
            },
            {"name": "b", "version": "2"},
        ],
    }
    text = dump_toml(doc)
    assert tomllib.loads(text) == doc
    assert "upload-time = 2024-11-27T18:06:01Z" in text


# ------------------------------------------------------------------------------ uv failures


def uv_error(stderr: str) -> CommandError:
    return CommandError(["uv", "pip", "compile"], 1, "", stderr)


def test_no_wheel_failure_names_the_package() -> None:
    stderr = (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because numpy==1.21.0 has no usable wheels and you require numpy==1.21.0, we"
        " can conclude that your requirements are unsatisfiable.\n\n"
        "hint: Wheels are required for `numpy` because building from source is disabled\n"
    )
    err = pylock._uv_failure(uv_error(stderr), "3.11", "x86_64-manylinux_2_36")
    assert "'numpy'" in err.message and "wheels only" in err.message
    assert err.hint is not None and "pin a version of numpy" in err.hint


def test_platform_tag_failure_names_the_package() -> None:
    stderr = (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because pywin32==306 has no wheels with a matching platform tag (e.g.,"
        " `manylinux_2_36_x86_64`) and you require pywin32==306, we can conclude ...\n"
    )
    err = pylock._uv_failure(uv_error(stderr), "3.11", "x86_64-manylinux_2_36")
    assert "'pywin32'" in err.message and "wheels only" in err.message


def test_other_failures_carry_uvs_message() -> None:
    err = pylock._uv_failure(uv_error("error: Failed to fetch\n  boom\n"), "3.11", "p")
    assert "could not resolve" in err.message and "boom" in err.message
    assert err.hint


def test_requirement_lines_that_are_uv_options_are_refused(tmp_path: Path) -> None:
    for bad in ("--index-url=file:///elsewhere", "-r other.txt", "six\n--pre", "  "):
        with pytest.raises(UsageError, match="invalid Python requirement"):
            resolve([bad], "3.11", "2.36", "x86_64", IndexConfig(), tmp_path)


# ------------------------------------------------------------------------------ local resolution


def make_wheel(directory: Path, name: str, version: str, tag: str) -> Path:
    """A minimal, valid wheel (uv reads its METADATA) with fixed timestamps."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-{tag}.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        f"Tag: {tag}\n",
        f"{info}/RECORD": "",
    }
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, (2020, 1, 1, 0, 0, 0)), text)
    return path


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IndexConfig:
    """Relative find-links next to an empty index: resolution without the network."""
    (tmp_path / "empty-index").mkdir()
    monkeypatch.chdir(tmp_path)
    return IndexConfig(index_url="empty-index", find_links=("wheels",))


def test_local_resolution_picks_one_wheel_with_absolute_file_url(
    local_index: IndexConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Would break uv's run if it leaked through: resolution depends on the arguments alone.
    monkeypatch.setenv("UV_CONSTRAINT", str(tmp_path / "missing-constraints.txt"))
    make_wheel(tmp_path / "wheels", "rf_fake", "1.0", "py3-none-any")
    best = make_wheel(tmp_path / "wheels", "rf_fake", "1.0", "cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(tmp_path / "wheels", "rf_fake", "1.0", "cp311-cp311-manylinux_2_39_x86_64")
    lock = resolve(["rf-fake==1.0"], "3.11", "2.36", "x86_64", local_index, tmp_path / "cache")
    (wheel,) = lock.wheels
    assert (wheel.name, wheel.version, wheel.filename) == ("rf-fake", "1.0", best.name)
    assert wheel.url == best.as_uri()
    assert wheel.sha256 == hashlib.sha256(best.read_bytes()).hexdigest()
    doc = tomllib.loads(lock.pylock)
    assert [p["name"] for p in doc["packages"]] == ["rf-fake"]
    assert doc["packages"][0]["wheels"] == [
        {"url": best.as_uri(), "hashes": {"sha256": wheel.sha256}}
    ]
    assert lock.platform == "x86_64-manylinux_2_36"
    assert not lock.pylock.startswith("#")


def test_constraint_files_narrow_the_resolution(
    local_index: IndexConfig, tmp_path: Path
) -> None:
    make_wheel(tmp_path / "wheels", "rf_fake", "1.0", "py3-none-any")
    make_wheel(tmp_path / "wheels", "rf_fake", "2.0", "py3-none-any")
    unconstrained = resolve(["rf-fake"], "3.11", "2.36", "x86_64", local_index, tmp_path / "c")
    assert [w.version for w in unconstrained.wheels] == ["2.0"]
    # A relative path, as in pip.conf: uv runs elsewhere, so it must be made absolute.
    write(tmp_path / "constraints.txt", "rf-fake<2\n")
    index = dataclasses.replace(local_index, constraints=("constraints.txt",))
    constrained = resolve(["rf-fake"], "3.11", "2.36", "x86_64", index, tmp_path / "c")
    assert [w.version for w in constrained.wheels] == ["1.0"]


def test_conflicting_constraint_fails_resolution(local_index: IndexConfig, tmp_path: Path) -> None:
    make_wheel(tmp_path / "wheels", "rf_fake", "2.0", "py3-none-any")
    write(tmp_path / "constraints.txt", "rf-fake==1.0\n")
    index = dataclasses.replace(local_index, constraints=(str(tmp_path / "constraints.txt"),))
    with pytest.raises(LockError):
        resolve(["rf-fake==2.0"], "3.11", "2.36", "x86_64", index, tmp_path / "c")


def test_sdist_only_package_is_refused(local_index: IndexConfig, tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "rf_fake_src-1.0.tar.gz").write_bytes(b"not really")
    with pytest.raises(LockError) as info:
        resolve(["rf-fake-src"], "3.11", "2.36", "x86_64", local_index, tmp_path / "cache")
    assert "rf-fake-src" in info.value.message
    assert "wheels only" in info.value.message
    assert info.value.hint is not None and "pin a version" in info.value.hint


def test_a_huge_error_text_is_read_in_linear_time() -> None:
    """uv echoes the requirements; an absurd one must not stall the error path."""
    import signal

    stderr = "error: Because " + "a" * 1_000_000 + " has no usable wheel\n" + "b" * 500_000
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(AssertionError("too slow")))
    signal.alarm(10)
    try:
        err = pylock._uv_failure(uv_error(stderr), "3.11", "p")
    finally:
        signal.alarm(0)
    assert "could not resolve" in err.message
    assert len(err.message) < 30_000
