"""The JSON Schema of reproflake.toml: generated from the validator's own tables, shipped
as generated, accepting every template and documented example, and rejecting what the
validator rejects, key by key."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomllib
from click.testing import CliRunner

from reproflake import cli, schema, spec, speckeys, templates
from reproflake.errors import SpecError
from reproflake.speckeys import Value

REPO = Path(__file__).resolve().parents[2]
PATH = Path("/p/reproflake.toml")
VALIDATOR = jsonschema.Draft7Validator(json.loads(schema.SHIPPED.read_text()))


def schema_errors(doc: dict[str, Any]) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(doc)]


def filled_templates() -> dict[str, str]:
    return {
        path.parent.name: templates.fill(
            path.read_text(), name="demo", mirror="http://mirror.invalid/debian", suite="bookworm"
        )
        for path in sorted((REPO / "templates").glob("*/reproflake.toml"))
    }


def doc_examples() -> list[str]:
    """docs/spec.md's TOML examples; a fragment is read into the full example."""
    text = (REPO / "docs/spec.md").read_text()
    blocks = re.findall(r"^```toml\n(.*?)^```", text, re.S | re.M)
    full = next(b for b in blocks if "[project]" in b)
    return [b if "[project]" in b else full + "\n" + b for b in blocks]


def test_the_shipped_schema_is_what_the_tables_generate() -> None:
    assert schema.SHIPPED.read_text() == schema.text(), (
        "regenerate: reproflake schema -o reproflake/schema/reproflake.schema.json"
    )


def test_the_schema_command_prints_it_and_writes_it(tmp_path: Path) -> None:
    printed = CliRunner().invoke(cli.main, ["schema"])
    assert printed.exit_code == 0
    assert printed.stdout == schema.SHIPPED.read_text()
    written = CliRunner().invoke(cli.main, ["schema", "-o", str(tmp_path / "s.json")])
    assert written.exit_code == 0
    assert (tmp_path / "s.json").read_text() == schema.SHIPPED.read_text()


def test_it_is_a_valid_draft_7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(VALIDATOR.schema)


def test_templates_point_editors_at_it() -> None:
    for name, text in filled_templates().items():
        assert text.splitlines()[0] == "#:schema ./.reproflake/reproflake.schema.json", name


@pytest.mark.parametrize("name", sorted(filled_templates()))
def test_every_template_is_valid_for_both(name: str) -> None:
    text = filled_templates()[name]
    spec.parse(text, PATH)
    assert schema_errors(tomllib.loads(text)) == []


def test_every_example_in_the_docs_is_valid_for_both() -> None:
    examples = doc_examples()
    assert examples, "docs/spec.md has no ```toml example"
    for text in examples:
        spec.parse(text, PATH)
        assert schema_errors(tomllib.loads(text)) == [], text


# --------------------------------------------------------------------------- agreement

BASE = """\
[project]
name = "demo"
source_date_epoch = 1700000000
description = "d"
[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"
components = ["main"]
architecture = "amd64"
keyring = "keys/debian.gpg"
verify = true
[python]
index_url = "http://mirror.invalid/simple"
extra_index_urls = ["http://mirror.invalid/more"]
[environments.py]
debian = ["python3"]
python = ["numpy==2.2.6"]
openblas_coretype = "Haswell"
essential = true
[inputs.raw]
path = "data/raw.csv"
url = "https://data.invalid/raw.csv"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[steps.prepare]
env = "py"
run = "python3 src/prepare.py"
sources = ["src/prepare.py"]
inputs = ["raw"]
needs = []
outputs = ["clean.csv", "m.json"]
variables = { SEED = "42" }
hardware = { gpu = "nvidia", compute_capability = "8.0", cuda = "12.2", cpu_features = ["avx2"], memory_gb = 16, pin_profile = "NVIDIA H100 80GB HBM3, driver 550.54.15" }
unreproducible = ["clean.csv"]
tolerance = { "m.json" = 1e-6 }
[steps.fit]
env = "py"
run = "true"
needs = ["prepare"]
outputs = ["model.json"]
[nix]
library = "vendored"
[images.serve]
step = "fit"
entrypoint = ["python3"]
cmd = ["serve.py"]
env = { PORT = "8000" }
workdir = "/work"
labels = { "org.example.x" = "y" }
outputs = "/out"
workspace = true
[cache]
urls = ["https://cache.invalid"]
public_keys = ["cache-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
"""


def leaves(shape: Value, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Value]]:
    """Every key of every table the base spec holds, with its shape."""
    found = []
    for name, value in shape.keys.items():
        found.append((path + (name,), value))
        if value.kind == "table":
            found += leaves(value, path + (name,))
        elif value.kind == "map" and value.values is not None and value.values.kind == "table":
            entry = {"environments": "py", "inputs": "raw", "steps": "prepare", "images": "serve"}
            found += leaves(value.values, path + (name, entry[name]))
    return found


def wrong_value(value: Value) -> object:
    """A value of the wrong type for ``value``."""
    return {"string": 7, "scalar": [1], "flag_or_string": 7, "boolean": "yes", "integer": "1", "number": "1"}.get(
        value.kind, "text"
    )


def both_reject(doc: dict[str, Any]) -> tuple[bool, bool]:
    text = _tables(doc)
    try:
        spec.parse(text, PATH)
        validator = False
    except SpecError:
        validator = True
    return validator, bool(schema_errors(doc))


def _tables(doc: dict[str, Any]) -> str:
    out = []
    for key, v in doc.items():
        out.append(f"{json.dumps(key)} = {_inline(v)}")
    return "\n".join(out) + "\n"


def _inline(v: object) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def base() -> dict[str, Any]:
    return tomllib.loads(BASE)


def put(doc: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    here = doc
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = value
    return doc


def test_the_base_spec_uses_every_key_and_both_accept_it() -> None:
    doc = base()
    for path, _ in leaves(speckeys.SPEC):
        here: Any = doc
        for key in path:
            assert key in here, f"BASE lacks {'.'.join(path)}: add it so it is checked"
            here = here[key]
    assert both_reject(doc) == (False, False)


@pytest.mark.parametrize("path", [p for p, _ in leaves(speckeys.SPEC)], ids=lambda p: ".".join(p))
def test_a_wrong_type_anywhere_is_rejected_by_both(path: tuple[str, ...]) -> None:
    shape = dict(leaves(speckeys.SPEC))[path]
    assert both_reject(put(base(), path, wrong_value(shape))) == (True, True)


TABLES = [(), *(p for p, v in leaves(speckeys.SPEC) if v.kind == "table")] + [
    ("environments", "py"), ("inputs", "raw"), ("steps", "prepare"), ("images", "serve"),
]  # fmt: skip


@pytest.mark.parametrize("path", TABLES, ids=lambda p: ".".join(p) or "top")
def test_an_unknown_key_in_any_table_is_rejected_by_both(path: tuple[str, ...]) -> None:
    doc = base()
    here: Any = doc
    for key in path:
        here = here[key]
    here["bogus"] = "x"
    assert both_reject(doc) == (True, True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("project", "name"), "1abc"),  # pattern
        (("project", "source_date_epoch"), -1),  # minimum
        (("debian", "architecture"), "arm64"),  # enum
        (("debian", "suite"), "has space"),
        (("debian", "mirror"), "ftp://mirror.invalid/debian"),
        (("environments", "py", "debian"), ["Python3"]),
        (("environments", "py", "python"), ["numpy @ https://x.invalid/n.whl"]),
        (("environments", "py", "debian"), ["python3", "python3"]),  # unique
        (("inputs", "raw", "sha256"), "0" * 63),
        (("steps", "prepare", "outputs"), []),  # at least one
        (("steps", "prepare", "run"), "  "),  # blank
        (("steps", "prepare", "variables"), {"1X": "a"}),  # variable name
        (("steps", "prepare", "hardware", "gpu"), "intel"),
        (("steps", "prepare", "hardware", "cuda"), "12"),
        (("steps", "prepare", "hardware", "memory_gb"), 0),
        (("steps", "prepare", "tolerance"), {"clean.txt": 1.0}),
        (("images", "serve", "workdir"), "work"),
        (("images", "serve", "labels"), {"-x": "y"}),
        (("cache", "public_keys"), ["nokey"]),
        (("steps", "default"), {"env": "py", "run": "true", "outputs": ["x"]}),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else None,
)
def test_invalid_values_are_rejected_by_both(path: tuple[str, ...], value: object) -> None:
    assert both_reject(put(base(), path, value)) == (True, True)


def test_missing_required_keys_are_rejected_by_both() -> None:
    for path in [("project",), ("debian",), ("steps",), ("steps", "fit", "run")]:
        doc = base()
        here: Any = doc
        for key in path[:-1]:
            here = here[key]
        del here[path[-1]]
        if path == ("steps",):
            del doc["images"]  # or the validator stops at the image's step first
        assert both_reject(doc) == (True, True), path
