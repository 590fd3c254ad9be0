from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reproflake import spec
from reproflake.errors import SpecError
from reproflake.spec import DebianConfig, Environment, Input, PythonIndex, Spec, Step

PATH = Path("/project/reproflake.toml")
SHA = "ab" * 32

VALID = f"""\
[project]
name = "demo"
description = "a test pipeline"
source_date_epoch = 1700000000

[debian]
mirror = "http://mirror.invalid/debian/"
suite = "bookworm"
components = ["main", "contrib"]

[python]
index_url = "http://mirror.invalid/simple"
extra_index_urls = ["http://mirror.invalid/extra"]

[environments.py]
debian = ["python3", "python3-venv=3.11.2-1+b1"]
python = ["numpy==2.2.6"]
openblas_coretype = "Zen"

[environments.base]
debian = []

[inputs.raw]
path = "data/raw.csv"

[inputs.web]
url = "http://mirror.invalid/files/table.csv"
sha256 = "{SHA}"

[inputs.mounted]
url = "http://mirror.invalid/files/x.bin"
sha256 = "{SHA}"
path = "data/x.bin"

[steps.prepare]
env = "py"
run = "python3 src/prepare.py"
sources = ["src/prepare.py", "src/lib/**/*.py"]
inputs = ["raw", "web"]
outputs = ["clean.csv"]
variables = {{ SEED = "42", RATE = 0.5, N = 3 }}

[steps.report]
env = "base"
run = "cat results/prepare/clean.csv > $OUT/report.txt"
needs = ["prepare"]
outputs = ["report.txt", "figures"]
"""


def edit(old: str, new: str, text: str = VALID) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """The 1-based line holding ``needle`` (which must occur exactly once)."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


def error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec.parse(text, PATH)
    return info.value


# --------------------------------------------------------------------------- a valid spec


def test_valid_spec_parses_into_dataclasses() -> None:
    parsed = spec.parse(VALID, PATH)
    expected = Spec(
        path=PATH,
        name="demo",
        debian=DebianConfig(
            mirror="http://mirror.invalid/debian",  # trailing slash dropped
            suite="bookworm",
            components=("main", "contrib"),
            architecture="amd64",
        ),
        python_index=PythonIndex(
            index_url="http://mirror.invalid/simple",
            extra_index_urls=("http://mirror.invalid/extra",),
        ),
        environments={
            "base": Environment("base", (), (), "Haswell"),
            "py": Environment(
                "py", ("python3", "python3-venv=3.11.2-1+b1"), ("numpy==2.2.6",), "Zen"
            ),
        },
        inputs={
            "mounted": Input(
                "mounted", path="data/x.bin", url="http://mirror.invalid/files/x.bin", sha256=SHA
            ),
            "raw": Input("raw", path="data/raw.csv"),
            "web": Input("web", url="http://mirror.invalid/files/table.csv", sha256=SHA),
        },
        steps={
            "prepare": Step(
                name="prepare",
                env="py",
                run="python3 src/prepare.py",
                sources=("src/prepare.py", "src/lib/**/*.py"),
                inputs=("raw", "web"),
                needs=(),
                outputs=("clean.csv",),
                variables={"N": "3", "RATE": "0.5", "SEED": "42"},  # numbers become strings
            ),
            "report": Step(
                name="report",
                env="base",
                run="cat results/prepare/clean.csv > $OUT/report.txt",
                needs=("prepare",),
                outputs=("report.txt", "figures"),
            ),
        },
        source_date_epoch=1700000000,
    )
    assert parsed == expected
    assert list(parsed.environments) == ["base", "py"]
    assert list(parsed.steps) == ["prepare", "report"]
    assert parsed.root == PATH.parent


def test_defaults_of_a_minimal_spec() -> None:
    text = """\
[project]
name = "m"
[debian]
mirror = "file:///srv/debian"
suite = "trixie"
[environments.e]
[steps.s]
env = "e"
run = "true"
outputs = ["o"]
"""
    parsed = spec.parse(text, PATH)
    assert parsed.debian == DebianConfig("file:///srv/debian", "trixie", ("main",), "amd64")
    assert parsed.python_index == PythonIndex(None, ())
    assert parsed.environments["e"] == Environment("e", (), (), "Haswell")
    assert parsed.inputs == {}
    assert parsed.source_date_epoch is None
    assert parsed.steps["s"] == Step("s", "e", "true", outputs=("o",))


def test_mount_paths_of_inputs() -> None:
    parsed = spec.parse(VALID, PATH)
    assert parsed.inputs["raw"].mount_path == "data/raw.csv"
    assert parsed.inputs["web"].mount_path == "inputs/web/table.csv"
    assert parsed.inputs["mounted"].mount_path == "data/x.bin"
    assert parsed.inputs["web"].is_url and not parsed.inputs["raw"].is_url


def test_where_names_file_and_line_of_a_key() -> None:
    parsed = spec.parse(VALID, PATH)
    assert parsed.where("steps", "report", "needs") == f"{PATH}:{line_of(VALID, 'needs = [')}"
    # A key that is not written falls back to its table's header.
    assert (
        parsed.where("steps", "report", "sources") == f"{PATH}:{line_of(VALID, '[steps.report]')}"
    )
    assert parsed.where("nowhere") == f"{PATH}:1"


# --------------------------------------------------------------------------- implicit packages


def test_all_debian_adds_base_packages() -> None:
    env = Environment("e", ("python3",))
    assert env.all_debian == ("@essential", "coreutils", "dash", "python3")
    assert Environment("e", (), essential=False).all_debian == ("coreutils", "dash")


def test_all_debian_adds_wheel_libraries_only_with_python_requirements() -> None:
    env = Environment("e", ("python3", "dash"), ("numpy==2.2.6",))
    assert env.all_debian == (
        "@essential", "coreutils", "dash", "libgcc-s1", "libstdc++6", "python3"
    )  # fmt: skip
    assert "libstdc++6" not in Environment("e", ("python3",), ()).all_debian


def test_essential_packages_can_be_left_out() -> None:
    assert "@essential" not in Environment("e", ("python3",), (), essential=False).all_debian


# --------------------------------------------------------------------------- mistakes


def test_invalid_toml_names_line_and_column() -> None:
    text = edit('suite = "bookworm"', 'suite = "bookworm" trailing')
    err = error(text)
    line = line_of(text, "trailing")
    assert err.message.startswith(f"{PATH}:{line}:20: not valid TOML: ")
    assert "(at line" not in err.message  # the position is moved to the front, not repeated
    assert err.hint and "docs/spec.md" in err.hint


def test_invalid_toml_on_first_line() -> None:
    err = error(edit("[project]", "[project"))
    assert err.message.startswith(f"{PATH}:1:9: not valid TOML: ")
    assert err.hint


def test_missing_project_table() -> None:
    text = edit(
        '[project]\nname = "demo"\ndescription = "a test pipeline"\nsource_date_epoch = 1700000000\n',
        "",
    )
    err = error(text)
    assert err.message.startswith(f"{PATH}:1: project: expected a table")
    assert err.hint and "[project]" in err.hint


def test_unknown_top_level_key_suggests_the_close_one() -> None:
    text = VALID + "\n[stepz]\n"
    err = error(text)
    assert err.message == f"{PATH}:{line_of(text, '[stepz]')}: stepz: unknown key 'stepz'"
    assert err.hint is not None
    assert (
        "expected one of: cache, debian, environments, images, inputs, nix, project, python, steps"
        in err.hint
    )
    assert "did you mean 'steps'?" in err.hint


def test_unknown_top_level_table_with_dotted_header_names_its_line() -> None:
    text = VALID + "\n[stepz.extra]\nenv = 'py'\n"
    err = error(text)
    assert err.message.startswith(f"{PATH}:{line_of(text, '[stepz.extra]')}: stepz: ")


def test_unknown_step_key() -> None:
    text = edit('needs = ["prepare"]', 'needs = ["prepare"]\nneedz = ["prepare"]')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'needz')}: steps.report.needz: unknown key 'needz'"
    )
    assert err.hint is not None
    assert (
        "expected one of: env, hardware, inputs, needs, outputs, run, sources, tolerance, "
        "unreproducible, variables" in err.hint
    )
    assert "did you mean 'needs'?" in err.hint


def test_wrong_type_string_instead_of_list() -> None:
    text = edit('sources = ["src/prepare.py", "src/lib/**/*.py"]', 'sources = "src/prepare.py"')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'sources =')}: steps.prepare.sources: "
        "expected a list of non-empty strings, got a string ('src/prepare.py')"
    )
    assert err.hint


def test_wrong_type_list_instead_of_string() -> None:
    text = edit('run = "python3 src/prepare.py"', 'run = ["python3", "src/prepare.py"]')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'run = [')}: steps.prepare.run: expected a string, got a list"
    )
    assert err.hint


def test_unknown_env_lists_known_ones() -> None:
    text = edit('env = "base"', 'env = "bsae"')
    err = error(text)
    assert (
        err.message
        == f"{PATH}:{line_of(text, 'bsae')}: steps.report.env: unknown environment 'bsae'"
    )
    assert err.hint == "expected one of: base, py (did you mean 'base'?)"


def test_unknown_input_lists_known_ones() -> None:
    text = edit('inputs = ["raw", "web"]', 'inputs = ["raw", "wbe"]')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'wbe')}: steps.prepare.inputs: unknown input 'wbe'"
    )
    assert err.hint == "known inputs: mounted, raw, web (did you mean 'web'?)"


def test_unknown_input_when_none_are_defined() -> None:
    text = edit('inputs = ["raw", "web"]', 'inputs = ["zzz"]')
    for name in ("raw", "web", "mounted"):
        start = text.index(f"[inputs.{name}]")
        end = text.index("\n\n", start) + 2
        text = text[:start] + text[end:]
    err = error(text)
    assert err.hint == "known inputs: (none defined)"


def test_unknown_step_in_needs() -> None:
    text = edit('needs = ["prepare"]', 'needs = ["prepar"]')
    err = error(text)
    line = line_of(text, '"prepar"')
    assert err.message == f"{PATH}:{line}: steps.report.needs: unknown step 'prepar'"
    assert err.hint == "known steps: prepare, report (did you mean 'prepare'?)"


def test_a_long_list_of_known_steps_is_cut_and_the_close_name_still_suggested() -> None:
    many = "".join(
        f'[steps.step{i:03d}]\nenv = "base"\nrun = "true"\noutputs = ["x"]\n\n' for i in range(30)
    )
    text = edit('needs = ["prepare"]', 'needs = ["step_007"]') + "\n" + many
    err = error(text)
    listed = ", ".join(["prepare", "report"] + [f"step{i:03d}" for i in range(18)])
    assert err.hint == f"known steps: {listed}, … (12 more) (did you mean 'step007'?)"


def test_step_needing_itself() -> None:
    text = edit('needs = ["prepare"]', 'needs = ["report"]')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'needs =')}: steps.report.needs: step 'report' needs itself"
    )
    assert err.hint


def test_step_without_outputs() -> None:
    text = edit('outputs = ["report.txt", "figures"]', "outputs = []")
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'outputs = []')}: steps.report.outputs: "
        "a step must declare at least one output"
    )
    assert err.hint and "results/report/" in err.hint


def test_step_with_outputs_missing_entirely() -> None:
    text = edit('outputs = ["report.txt", "figures"]\n', "")
    err = error(text)
    # No `outputs =` line: the step's header is the best place to point at.
    assert err.message.startswith(
        f"{PATH}:{line_of(text, '[steps.report]')}: steps.report.outputs: "
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            'sources = ["src/prepare.py", "src/lib/**/*.py"]',
            'sources = ["/etc/passwd"]',
            "steps.prepare.sources",
        ),
        (
            'sources = ["src/prepare.py", "src/lib/**/*.py"]',
            'sources = ["src/../../x.py"]',
            "steps.prepare.sources",
        ),
        (
            'sources = ["src/prepare.py", "src/lib/**/*.py"]',
            'sources = ["./src/prepare.py"]',
            "steps.prepare.sources",
        ),
        ('outputs = ["clean.csv"]', 'outputs = ["../escape.csv"]', "steps.prepare.outputs"),
        ('outputs = ["clean.csv"]', 'outputs = ["/tmp/clean.csv"]', "steps.prepare.outputs"),
        ('outputs = ["clean.csv"]', 'outputs = ["a\\tb"]', "steps.prepare.outputs"),
        ('path = "data/raw.csv"', 'path = "../raw.csv"', "inputs.raw.path"),
        ('path = "data/raw.csv"', 'path = "results/prepare/clean.csv"', "inputs.raw.path"),
        ('path = "data/raw.csv"', 'path = ".git/config"', "inputs.raw.path"),
        ('path = "data/raw.csv"', 'path = ".reproflake/build.json"', "inputs.raw.path"),
        ('path = "data/raw.csv"', 'path = "data\\\\raw.csv"', "inputs.raw.path"),
    ],
)
def test_paths_must_stay_inside_the_project(old: str, new: str, key: str) -> None:
    text = edit(old, new)
    err = error(text)
    assert err.message.startswith(f"{PATH}:{line_of(text, new)}: {key}: ")
    inside = "the step's output directory" if key.endswith(".outputs") else "the project directory"
    assert f"is not a plain relative path inside {inside}" in err.message
    assert err.hint and "without '..'" in err.hint


def test_reserved_variable() -> None:
    text = edit('SEED = "42"', 'HOME = "/root"')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'variables =')}: steps.prepare.variables.HOME: "
        "HOME is fixed by reproflake for reproducibility"
    )
    assert err.hint and err.hint.startswith("reserved: FORCE_SOURCE_DATE, HOME, LANG, ")


@pytest.mark.parametrize("name", ["PATH", "OUT", "SOURCE_DATE_EPOCH", "PYTHONHASHSEED", "TZ"])
def test_every_fixed_variable_is_reserved(name: str) -> None:
    text = edit('SEED = "42"', f'{name} = "x"')
    assert f"variables.{name}: {name} is fixed by reproflake" in error(text).message


def test_bad_variable_name() -> None:
    text = edit('SEED = "42"', '"MY-VAR" = "1"')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'variables =')}: steps.prepare.variables.MY-VAR: "
        "'MY-VAR' is not a variable name"
    )
    assert err.hint == "use [A-Za-z_][A-Za-z0-9_]*"


def test_variable_of_the_wrong_type() -> None:
    text = edit('SEED = "42"', "SEED = true")
    err = error(text)
    assert err.message.endswith(
        "steps.prepare.variables.SEED: expected a string or number, got a boolean (true)"
    )
    assert err.hint


def test_url_input_without_sha256() -> None:
    text = edit(
        f'url = "http://mirror.invalid/files/table.csv"\nsha256 = "{SHA}"',
        'url = "http://mirror.invalid/files/table.csv"',
    )
    err = error(text)
    # No sha256 line: the input's header is the best place to point at.
    assert err.message.startswith(
        f"{PATH}:{line_of(text, '[inputs.web]')}: inputs.web.sha256: expected a string"
    )
    assert err.hint and "sha256" in err.hint


@pytest.mark.parametrize("bad", ["AB" * 32, "ab" * 31, "zz" * 32, "sha256-" + "A" * 44])
def test_bad_sha256(bad: str) -> None:
    text = edit(
        f'url = "http://mirror.invalid/files/table.csv"\nsha256 = "{SHA}"',
        f'url = "http://mirror.invalid/files/table.csv"\nsha256 = "{bad}"',
    )
    err = error(text)
    line = line_of(text, f'sha256 = "{bad}"')
    assert err.message == f"{PATH}:{line}: inputs.web.sha256: expected 64 lowercase hex digits"
    assert err.hint and "sha256sum" in err.hint


def test_sha256_on_a_local_input() -> None:
    text = edit('path = "data/raw.csv"', f'path = "data/raw.csv"\nsha256 = "{SHA}"')
    err = error(text)
    assert err.message.startswith(
        f"{PATH}:{line_of(text, 'data/raw.csv') + 1}: inputs.raw.sha256: "
    )
    assert err.hint and "remove sha256" in err.hint


def test_input_with_neither_path_nor_url() -> None:
    text = edit('path = "data/raw.csv"', "")
    err = error(text)
    assert (
        err.message
        == f"{PATH}:{line_of(text, '[inputs.raw]')}: inputs.raw: neither path nor url is set"
    )
    assert err.hint


def test_url_input_with_a_bad_url() -> None:
    text = edit("http://mirror.invalid/files/table.csv", "ftp://mirror.invalid/files/table.csv")
    err = error(text)
    assert err.message.startswith(f"{PATH}:{line_of(text, 'ftp://')}: inputs.web.url: ")
    assert "is not an http(s):// or file:// URL" in err.message


def test_python_requirements_without_python3_in_debian() -> None:
    text = edit('debian = ["python3", "python3-venv=3.11.2-1+b1"]', 'debian = ["curl"]')
    err = error(text)
    assert err.message == (
        f"{PATH}:{line_of(text, 'numpy')}: environments.py.python: "
        "Python requirements need a Python interpreter from Debian"
    )
    assert err.hint and '"python3"' in err.hint


def test_python3_minimal_or_pinned_python3_is_enough() -> None:
    for debian in ('["python3-minimal"]', '["python3=3.11.2-1+b1"]'):
        spec.parse(edit('["python3", "python3-venv=3.11.2-1+b1"]', debian), PATH)


@pytest.mark.parametrize("package", ["Python3", "python3 ", "-x", "a", "numpy>=1"])
def test_bad_debian_package_name(package: str) -> None:
    text = edit(
        'debian = ["python3", "python3-venv=3.11.2-1+b1"]', f'debian = ["python3", "{package}"]'
    )
    err = error(text)
    line = line_of(text, f'"{package}"')
    assert err.message.startswith(f"{PATH}:{line}: environments.py.debian: ")
    assert "is not a Debian package name" in err.message


def test_duplicate_list_entry() -> None:
    text = edit('outputs = ["clean.csv"]', 'outputs = ["clean.csv", "clean.csv"]')
    err = error(text)
    assert err.message.endswith("steps.prepare.outputs: 'clean.csv' is listed twice")


@pytest.mark.parametrize("mirror", ["ftp://mirror.invalid/debian", "mirror.invalid/debian", ""])
def test_bad_mirror_url(mirror: str) -> None:
    text = edit('mirror = "http://mirror.invalid/debian/"', f'mirror = "{mirror}"')
    err = error(text)
    assert err.message.startswith(f"{PATH}:{line_of(text, 'mirror =')}: debian.mirror: ")
    assert err.hint and "mirror =" in err.hint


def test_missing_debian_table() -> None:
    text = edit(
        '[debian]\nmirror = "http://mirror.invalid/debian/"\nsuite = "bookworm"\ncomponents = ["main", "contrib"]\n',
        "",
    )
    err = error(text)
    assert err.message.startswith(f"{PATH}:1: debian: expected a table")
    assert err.hint and "[debian]" in err.hint


def test_unsupported_architecture() -> None:
    text = edit('suite = "bookworm"', 'suite = "bookworm"\narchitecture = "arm64"')
    err = error(text)
    assert (
        err.message
        == f"{PATH}:{line_of(text, 'arm64')}: debian.architecture: expected one of: amd64, got 'arm64'"
    )


@pytest.mark.parametrize("value", ["-1", "true", '"1700000000"', "1.5"])
def test_bad_source_date_epoch(value: str) -> None:
    text = edit("source_date_epoch = 1700000000", f"source_date_epoch = {value}")
    err = error(text)
    assert err.message.startswith(
        f"{PATH}:4: project.source_date_epoch: expected a non-negative integer"
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "what"),
    [
        ('name = "demo"', 'name = "1demo"', "project.name", "project name '1demo'"),
        ('name = "demo"', 'name = "my demo"', "project.name", "project name 'my demo'"),
        (
            "[environments.base]",
            '[environments."my env"]',
            "environments.my env",
            "environment name 'my env'",
        ),
        ("[inputs.raw]", '[inputs."raw.csv"]', "inputs.raw.csv", "input name 'raw.csv'"),
        ("[steps.report]", f"[steps.{'r' * 65}]", f"steps.{'r' * 65}", f"step name '{'r' * 65}'"),
        ("[steps.report]", "[steps._report]", "steps._report", "step name '_report'"),
    ],
)
def test_name_rules(old: str, new: str, key: str, what: str) -> None:
    text = edit(old, new)
    if old == "[inputs.raw]":
        text = edit('"raw", "web"', '"raw.csv", "web"', text)
    err = error(text)
    assert err.message == f"{PATH}:{line_of(text, new)}: {key}: {what} is not allowed"
    assert err.hint and "at most 64" in err.hint


def test_longest_allowed_name() -> None:
    text = edit("[steps.report]", f"[steps.{'r' * 64}]")
    assert "r" * 64 in spec.parse(text, PATH).steps


def test_load_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "reproflake.toml"
    path.write_bytes(b'[project]\nname = "\xff"\n')
    with pytest.raises(SpecError) as info:
        spec.load(path)
    assert info.value.message == f"{path}: not UTF-8 text"
    assert info.value.hint


def test_find_spec_searches_parents_and_explains_when_missing(tmp_path: Path) -> None:
    (tmp_path / "reproflake.toml").write_text("")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert spec.find_spec(tmp_path / "a" / "b") == (tmp_path / "reproflake.toml").resolve()
    (tmp_path / "reproflake.toml").unlink()
    with pytest.raises(SpecError) as info:
        spec.find_spec(tmp_path / "a")
    assert info.value.hint and "reproflake init" in info.value.hint


# --------------------------------------------------------------------------- hostile text

HOSTILE_RUN = (
    'echo "; builtins.abort "x"; " ${builtins.currentSystem} \'\' \\ $OUT\nexit 0\r\n\ttab'
)
HOSTILE_VALUE = '"; builtins.abort "x"; "${ let x = 1; in x }\n\'\'${}\\"'


def hostile_spec() -> str:
    """A spec whose step text tries to escape any Nix string it might be spliced into."""
    run = json.dumps(HOSTILE_RUN, ensure_ascii=False)  # a JSON string is a TOML basic string
    value = json.dumps(HOSTILE_VALUE, ensure_ascii=False)
    return f"""\
[project]
name = "hostile"

[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"

[environments.base]

[steps.evil]
env = "base"
run = {run}
outputs = ["out \\"quoted\\" ${{x}}.txt"]
variables = {{ EVIL = {value}, LITERAL = '"; builtins.abort "y"; "' }}
"""


def test_hostile_step_text_parses_verbatim() -> None:
    parsed = spec.parse(hostile_spec(), PATH)
    step = parsed.steps["evil"]
    assert step.run == HOSTILE_RUN
    assert step.variables == {"EVIL": HOSTILE_VALUE, "LITERAL": '"; builtins.abort "y"; "'}
    assert step.outputs == ('out "quoted" ${x}.txt',)


def test_nul_in_a_variable_is_rejected() -> None:
    text = edit('SEED = "42"', 'SEED = "4\\u00002"')
    err = error(text)
    assert err.message.endswith("steps.prepare.variables.SEED: contains a NUL character")


def test_error_messages_carry_the_where_what_and_fix() -> None:
    """Every SpecError from a mistake follows `file:line: key: problem` and has a hint."""
    for text in (
        edit('env = "base"', 'env = "nope"'),
        edit('suite = "bookworm"', "suite = 3"),
        edit('openblas_coretype = "Zen"', 'openblas_coretype = "Zen 2"'),
        edit('index_url = "http://mirror.invalid/simple"', "index_url = []"),
    ):
        err = error(text)
        assert re.match(rf"^{re.escape(str(PATH))}:\d+: [A-Za-z0-9_.\- ]+: \S", err.message), (
            err.message
        )
        assert err.hint


def test_line_numbers_ignore_lookalike_lines_inside_multiline_strings() -> None:
    text = edit('run = "python3 src/prepare.py"', 'run = """\n[steps.other]\necho\n"""')
    text = edit('outputs = ["clean.csv"]', 'outputs = "clean.csv"', text)
    err = error(text)
    line = line_of(text, 'outputs = "clean.csv"')
    assert err.message.startswith(f"{PATH}:{line}: steps.prepare.outputs: ")


def test_the_example_in_docs_parses() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/spec.md has no ```toml example"
    for block in blocks:
        parsed = spec.parse(block, PATH)
        assert parsed.steps and parsed.environments


def test_big_specs_are_cached_by_their_exact_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reproflake import spec as spec_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    steps = "".join(
        f'[steps.s{i}]\nenv = "base"\nrun = "echo {i} > $OUT/o"\noutputs = ["o"]\n'
        for i in range(250)
    )
    text = (
        '[project]\nname = "big"\n[debian]\nmirror = "http://mirror.invalid/debian"\n'
        'suite = "bookworm"\n[environments.base]\ndebian = []\n' + steps
    )
    path = tmp_path / "reproflake.toml"
    path.write_text(text)
    first = spec_module.load(path)
    assert list((tmp_path / "cache" / "reproflake" / "specs").iterdir())
    calls = []
    real_parse = spec_module.parse

    def counting_parse(*args: object) -> object:
        calls.append(args)
        return real_parse(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(spec_module, "parse", counting_parse)
    assert spec_module.load(path) == first and calls == []  # answered from the cache
    path.write_text(text.replace("echo 7 ", "echo seven "))
    spec_module.load(path)
    assert len(calls) == 1  # new bytes: parsed again


@pytest.mark.parametrize(
    ("step_text", "problem"),
    [
        ('[steps.default]\nenv = "py"\nrun = "true"\noutputs = ["x"]\n', "'default' is taken"),
        ('[steps.s]\nenv = "py"\nrun = "echo a\\u0000b"\noutputs = ["x"]\n', "NUL"),
        ('[steps.s]\nenv = "py"\nrun = "' + "x" * 100_001 + '"\noutputs = ["x"]\n', "at most"),
    ],
)
def test_step_names_and_commands_that_cannot_work(step_text: str, problem: str) -> None:
    base = (
        '[project]\nname = "p"\n[debian]\nmirror = "http://mirror.invalid/debian"\n'
        'suite = "bookworm"\n[environments.py]\ndebian = []\n'
    )
    with pytest.raises(SpecError) as err:
        spec.parse(base + step_text, Path("/p/reproflake.toml"))
    assert problem in str(err.value)


def test_paths_written_two_ways_are_one_path() -> None:
    text = edit('outputs = ["clean.csv"]', 'outputs = ["d//a", "d/a"]')
    err = error(text)
    assert "'d/a' is listed twice (once written differently)" in err.message


@pytest.mark.parametrize(
    ("table", "line"),
    [("[debian]", 'verify = "yes"\n'), ("[environments.py]", "essential = 1\n")],
)
def test_booleans_must_be_booleans(table: str, line: str) -> None:
    base = (
        '[project]\nname = "p"\n[debian]\nmirror = "http://mirror.invalid/debian"\n'
        'suite = "bookworm"\n[environments.py]\ndebian = []\n'
        '[steps.s]\nenv = "py"\nrun = "true"\noutputs = ["x"]\n'
    )
    text = base.replace(table + "\n", table + "\n" + line, 1)
    with pytest.raises(SpecError) as err:
        spec.parse(text, Path("/p/reproflake.toml"))
    assert "expected true or false, got" in str(err.value)
    assert f"/p/reproflake.toml:{text.splitlines().index(line.strip()) + 1}:" in str(err.value)


# --------------------------------------------------------------------------- verify's allowances

REPORT = 'outputs = ["report.txt", "figures"]\n'


def test_unreproducible_and_tolerance_parse() -> None:
    text = edit(
        REPORT, REPORT + 'unreproducible = ["figures/a.svg"]\ntolerance = { "m.json" = 1e-6 }\n'
    )
    text = edit(
        'outputs = ["report.txt", "figures"]', 'outputs = ["report.txt", "figures", "m.json"]', text
    )
    step = spec.parse(text, PATH).steps["report"]
    assert step.unreproducible == ("figures/a.svg",)
    assert step.tolerance == {"m.json": 1e-6}


def test_unreproducible_must_name_an_output() -> None:
    text = edit(REPORT, REPORT + 'unreproducible = ["other.html"]\n')
    err = error(text)
    assert f"{PATH}:{line_of(text, 'unreproducible')}: steps.report.unreproducible" in err.message
    assert "not one of the step's outputs" in err.message
    assert err.hint is not None and "report.txt, figures" in err.hint


def test_tolerance_is_for_numeric_files_and_non_negative() -> None:
    err = error(edit(REPORT, REPORT + 'tolerance = { "report.txt" = 1e-6 }\n'))
    assert "a tolerance applies to numbers in .csv, .json or .npy outputs" in err.message
    text = edit(
        'outputs = ["report.txt", "figures"]', 'outputs = ["report.txt", "figures", "m.csv"]'
    )
    err = error(
        edit(
            REPORT.replace("figures", 'figures", "m.csv'),
            REPORT.replace("figures", 'figures", "m.csv') + 'tolerance = { "m.csv" = -1 }\n',
            text,
        )
    )
    assert "expected a number >= 0" in err.message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[steps.report]", '[steps."report\\n"]'),
        ('debian = ["python3", ', 'debian = ["python3\\n", '),
        ('"numpy==2.2.6"', '"numpy==2.2.6\\n"'),
        ('SEED = "42"', '"SEED\\n" = "42"'),
        ('suite = "bookworm"', 'suite = "bookworm\\n"'),
    ],
)
def test_a_final_newline_does_not_slip_through_a_pattern(old: str, new: str) -> None:
    # Python's '$' also matches before a final newline: every pattern must match whole.
    with pytest.raises(SpecError):
        spec.parse(edit(old, new), Path("/p/reproflake.toml"))


def test_a_spec_nested_too_deeply_is_a_spec_error_not_a_crash() -> None:
    text = VALID.replace("[steps.report]", "deep = " + "[" * 5000 + "]" * 5000 + "\n[steps.report]")
    with pytest.raises(SpecError, match="nested too deeply"):
        spec.parse(text, PATH)
