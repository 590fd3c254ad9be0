"""The library from a flake input ([nix] library), and projects finished from a template.

No Nix here: tests/e2e/test_flake.py runs the flake, the templates and both library modes
for real.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner

from reproflake import nixgen, spec, templates
from reproflake._paths import PACKAGE, data_dir
from reproflake.cli import main
from reproflake.commands import init
from reproflake.errors import SpecError, UsageError
from reproflake.lock import aptconfig
from reproflake.lock.model import Lock

REPO = Path(__file__).resolve().parents[2]
MIRROR = "http://mirror.invalid/debian"
BASE = (
    '[project]\nname = "p"\n[debian]\nmirror = "http://mirror.invalid/debian"\n'
    'suite = "bookworm"\n[environments.base]\ndebian = []\n'
    '[steps.hello]\nenv = "base"\nrun = "echo {{name}} > $OUT/x"\noutputs = ["x"]\n'
)
PATH = Path("/project/reproflake.toml")


def parse(extra: str = "") -> spec.Spec:
    return spec.parse(BASE + extra, PATH)


# --------------------------------------------------------------------------- [nix] library


@pytest.mark.parametrize(
    "url",
    [
        "git+file:///home/me/src/reproflake",
        "path:/opt/reproflake",
        "git+https://example.invalid/reproflake.git?ref=main",
        "https://example.invalid/reproflake-1.0.tar.gz",
        "github:owner/reproflake",
    ],
)
def test_a_direct_flake_url_is_the_library(url: str) -> None:
    assert parse(f'[nix]\nlibrary = "{url}"\n').nix_library == url


def test_vendored_is_the_default() -> None:
    assert parse().nix_library is None
    assert parse('[nix]\nlibrary = "vendored"\n').nix_library is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("reproflake", "indirect flake reference"),
        ("flake:reproflake", "indirect flake reference"),
        ("path:../reproflake", "not an absolute flake URL"),
        ("git+file://relative", "not an absolute flake URL"),
        ("path:/x${builtins.abort 1}", "not an absolute flake URL"),
        ('path:/a\\"b', "not an absolute flake URL"),
        ("path:/a b", "not an absolute flake URL"),
    ],
)
def test_a_library_url_nix_would_not_fetch_directly_is_refused(url: str, problem: str) -> None:
    text = BASE + "[nix]\nlibrary = " + json.dumps(url) + "\n"
    with pytest.raises(SpecError) as info:
        spec.parse(text, PATH)
    assert info.value.message.startswith(f"{PATH}:{text.count(chr(10))}: nix.library: ")
    assert problem in info.value.message
    assert info.value.hint is not None and "vendored" in info.value.hint


def test_unknown_nix_key() -> None:
    with pytest.raises(SpecError, match=r"nix\.libary: unknown key 'libary'") as info:
        parse('[nix]\nlibary = "vendored"\n')
    assert "did you mean 'library'" in (info.value.hint or "")


def test_nix_string_cannot_be_escaped_from() -> None:
    assert nixgen.nix_string('a"b\\c${d}\ne') == '"a\\"b\\\\c\\${d}\\ne"'


def test_flake_nix_takes_the_library_from_the_vendored_copy_or_the_input() -> None:
    vendored = nixgen.flake_nix(None)
    assert "(import ./.reproflake/lib/lib.nix).mkPipeline" in vendored
    assert "inputs" not in vendored
    url = "git+file:///src/reproflake"
    from_input = nixgen.flake_nix(url)
    assert f'inputs.reproflake.url = "{url}";' in from_input
    assert "outputs = { self, reproflake }:" in from_input
    assert "reproflake.lib.mkPipeline" in from_input
    # The same data, handed over the same way.
    tail = vendored[vendored.index(".mkPipeline") :]
    assert from_input.endswith(tail)


def test_render_with_the_library_from_an_input(make_lock: Callable[[spec.Spec], Lock]) -> None:
    url = "path:/opt/reproflake"
    s = parse(f'[nix]\nlibrary = "{url}"\n')
    files = nixgen.render(s, make_lock(s), nixgen.Facts({}, frozenset()), b"seed")
    # No vendored library, and flake.lock is Nix's: it pins the input. The image writer
    # is vendored either way (the project pins it by content).
    writer = sorted(f".reproflake/image/reproflake/{n}" for n in nixgen.WRITER_FILES)
    assert sorted(files) == [".reproflake/build.json", *writer, nixgen.SCHEMA_FILE,
                             ".reproflake/seed/busybox", "flake.nix"]  # fmt: skip
    plain = parse()
    vendored = nixgen.render(plain, make_lock(plain), nixgen.Facts({}, frozenset()), b"seed")
    assert files[".reproflake/build.json"] == vendored[".reproflake/build.json"]
    assert "flake.lock" in vendored and ".reproflake/lib/lib.nix" in vendored


# --------------------------------------------------------------------------- the entry point


def test_lib_reads_the_data_version_nixgen_writes(make_lock: Callable[[spec.Spec], Lock]) -> None:
    s = parse()
    data = nixgen.build_data(s, make_lock(s), nixgen.Facts({}, frozenset()))
    m = re.search(r"^\s*dataVersion = (\d+);", (data_dir("nix") / "lib.nix").read_text(), re.M)
    assert m is not None
    assert data["version"] == int(m.group(1))


def _keys(cls: type) -> set[str]:
    # The keys only: evaluating the annotations would import the image writer, which
    # nixgen leaves out of every command's start-up.
    return set(getattr(cls, "__required_keys__", ())) | set(getattr(cls, "__optional_keys__", ()))


def test_the_checks_fixture_has_the_shape_nixgen_writes() -> None:
    """tests/nix/checks.nix evaluates the library against this data: it must stay build.json."""
    data = json.loads((REPO / "tests/nix/fixture/build.json").read_text())
    assert set(data) == _keys(nixgen.BuildData)
    assert set(data["seed"]) == _keys(nixgen.SeedData)
    for pinned in [*data["debs"].values(), *data["wheels"].values()]:
        assert set(pinned) == _keys(nixgen.PinnedFile)
    for env in data["environments"].values():
        assert set(env) == _keys(nixgen.EnvironmentData)
    for entry in data["inputs"].values():
        assert set(entry) == _keys(nixgen.InputData)
        for f in entry["files"]:
            assert set(f) <= _keys(nixgen.InputFile)
    for step in data["steps"].values():
        assert set(step) == _keys(nixgen.StepData)


# --------------------------------------------------------------------------- templates


def test_placeholders_are_whole_values_only() -> None:
    text = (REPO / "templates/python/reproflake.toml").read_text()
    assert [what for _, what in templates.placeholders(text)] == ["name", "mirror", "suite"]
    assert templates.placeholders(BASE) == []  # "{{name}}" inside a command is the user's


def test_fill_writes_toml_strings() -> None:
    text = (REPO / "templates/minimal/reproflake.toml").read_text()
    filled = templates.fill(text, name="demo", mirror='http://m.invalid/"x"', suite="{{suite}}")
    raw = spec.parse_toml(filled)
    assert raw["project"]["name"] == "demo"
    assert raw["debian"] == {"mirror": 'http://m.invalid/"x"', "suite": "{{suite}}"}


def test_an_unfinished_template_names_the_placeholder_and_the_fix() -> None:
    text = (REPO / "templates/minimal/reproflake.toml").read_text()
    with pytest.raises(SpecError) as info:
        spec.parse(text, PATH)
    line = text.splitlines().index('name = "{{name}}"') + 1
    assert info.value.message.startswith(f"{PATH}:{line}: {{{{name}}}} is a template placeholder")
    assert "reproflake lock" in (info.value.hint or "")


def _copied_verbatim(tmp_path: Path, template: str) -> Path:
    """What `nix flake init -t` leaves: the template's files, byte for byte."""
    target = tmp_path / "copied"
    shutil.copytree(REPO / "templates" / template, target)
    return target


def test_complete_finishes_a_copied_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        aptconfig, "default_source", lambda: aptconfig.AptSource(MIRROR, "trixie", ("main",))
    )
    root = _copied_verbatim(tmp_path, "python")
    done = templates.complete(root / "reproflake.toml")
    assert done == [
        f"filled the template's placeholders in reproflake.toml (Debian trixie from {MIRROR})",
        "created a git repository",
        "renamed gitignore to .gitignore",
    ]
    s = spec.load(root / "reproflake.toml")
    assert (s.name, s.debian.mirror, s.debian.suite) == ("copied", MIRROR, "trixie")
    assert (root / ".gitignore").is_file() and not (root / "gitignore").exists()
    assert pygit2.discover_repository(str(root)) is not None
    # Finished: a second run changes nothing.
    before = (root / "reproflake.toml").read_bytes()
    assert templates.complete(root / "reproflake.toml") == []
    assert (root / "reproflake.toml").read_bytes() == before


def test_complete_follows_the_rename_in_gits_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nix flake init` inside a repository adds the copied files to git's index."""
    monkeypatch.setattr(
        aptconfig, "default_source", lambda: aptconfig.AptSource(MIRROR, "bookworm", ("main",))
    )
    root = _copied_verbatim(tmp_path, "minimal")
    repo = pygit2.init_repository(str(tmp_path))
    repo.index.add("copied/gitignore")
    repo.index.add("copied/reproflake.toml")
    repo.index.write()
    templates.complete(root / "reproflake.toml")
    index = pygit2.Repository(str(tmp_path)).index
    assert "copied/.gitignore" in index and "copied/gitignore" not in index
    assert not (tmp_path / "copied" / ".git").exists()  # the enclosing repository is used


def test_complete_is_what_init_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        aptconfig, "default_source", lambda: aptconfig.AptSource(MIRROR, "bookworm", ("main",))
    )
    copied = _copied_verbatim(tmp_path, "minimal")
    templates.complete(copied / "reproflake.toml")
    made = tmp_path / "made" / "copied"
    init.run(made, "minimal", None, None)
    assert (copied / "reproflake.toml").read_bytes() == (made / "reproflake.toml").read_bytes()
    assert (copied / ".gitignore").read_bytes() == (made / ".gitignore").read_bytes()


def test_complete_without_apt_sources_says_what_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aptconfig, "default_source", lambda: None)
    root = _copied_verbatim(tmp_path, "minimal")
    before = (root / "reproflake.toml").read_bytes()
    result = CliRunner().invoke(main, ["-C", str(root), "lock"])
    assert result.exit_code == 2, result.output
    assert "mirror and suite are still template placeholders" in result.output
    assert "Traceback" not in result.output
    assert (root / "reproflake.toml").read_bytes() == before


# --------------------------------------------------------------------------- init --library


def test_init_library_input_defaults_to_this_checkout() -> None:
    assert (PACKAGE.parent / "flake.nix").is_file()  # the tests run from a source checkout
    assert init.library_url("input", None) == f"git+file://{PACKAGE.parent}"
    assert init.library_url("vendored", None) is None


def test_init_library_url_is_checked() -> None:
    with pytest.raises(UsageError, match="indirect flake reference"):
        init.library_url("input", "reproflake")
    with pytest.raises(UsageError, match="--library-url needs --library input"):
        init.library_url("vendored", "path:/opt/reproflake")


def test_init_with_the_library_from_an_input(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = CliRunner().invoke(
        main,
        ["init", "-t", "minimal", "--debian-mirror", MIRROR, "--suite", "bookworm",
         "--library", "input", "--library-url", "path:/opt/reproflake", str(target)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert spec.load(target / "reproflake.toml").nix_library == "path:/opt/reproflake"


def test_init_refuses_a_bad_library_url_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = CliRunner().invoke(
        main,
        ["init", "--debian-mirror", MIRROR, "--suite", "bookworm",
         "--library", "input", "--library-url", "flake:reproflake", str(target)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "indirect flake reference" in result.output
    assert not target.exists()
