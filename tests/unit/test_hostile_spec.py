"""Hostile strings in every string field of the spec.

For each field and payload, one of two things must happen:
- the field is checked: `reproflake lock` exits 2 with ``file:line: key``, no traceback,
  and every file of the project is byte-identical to before; or
- the field is data: it is accepted and reaches the flake's data (build.json, read by Nix
  as JSON, never spliced into Nix source or a shell script) byte-for-byte.
  tests/e2e/test_hardening.py builds a step with such values and checks the step sees
  them unchanged.

No Nix and no network: a lock that matches the spec is made by hand, so `lock` has
nothing to resolve; only spec checking and the file:// rule run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner

from reproflake import nixgen, spec
from reproflake.cli import main
from reproflake.lock import model
from reproflake.lock.model import Lock

SHA = "ab" * 32
BIG = "x" * 200_000

PAYLOADS = {
    "nix-interpolation": "${builtins.readFile /etc/shadow}",
    "nix-indented-string": "'' + builtins.readFile /etc/shadow + ''",
    "quotes": "a'b\"c",
    "newline": "a\nb",
    "carriage-return": "a\rb",
    "nul": "a\0b",
    "command-substitution": "$(touch /tmp/reproflake-pwned)",
    "backquotes": "`touch /tmp/reproflake-pwned`",
    "leading-dash": "-rf",
    "option": "--index-url=http://127.0.0.1:9/",
    "huge": BIG,
    "host-file": "file:///etc/shadow",
    "dotdot": "../../etc/passwd",
    "tab": "a\tb",
}

# A field given as a TOML key path; "[]" marks a list whose only element is the payload.
CHECKED = [
    "project.name",
    "debian.mirror",
    "debian.suite",
    "debian.components[]",
    "python.index_url",
    "python.extra_index_urls[]",
    "environments.py.debian[]",
    "environments.py.python[]",
    "environments.py.openblas_coretype",
    "inputs.web.url",
    "inputs.web.sha256",
    "steps.s.env",
    "steps.s.inputs[]",
    "steps.s.needs[]",
    "steps.s.hardware.gpu",
    "steps.s.hardware.cuda",
    "steps.s.hardware.cpu_features[]",
    "images.i.step",
]
# Fields whose value is the user's own text or file names: refused, or passed on as is.
DATA = [
    "project.description",
    "debian.keyring",
    "inputs.raw.path",
    "steps.s.run",
    "steps.s.sources[]",
    "steps.s.outputs[]",
    "steps.s.variables.V",
    "images.i.entrypoint[]",
    "images.i.cmd[]",
    "images.i.workdir",
    "images.i.env.E",
    "images.i.labels.L",
]


def _toml_string(value: str) -> str:
    """A TOML basic string holding exactly ``value`` (JSON's escapes are TOML's, for BMP text)."""
    return json.dumps(value)


def spec_text(field: str | None = None, payload: str = "") -> str:
    doc: dict[str, dict[str, str]] = {
        "project": {"name": '"demo"', "description": '"d"'},
        "debian": {
            "mirror": '"http://mirror.invalid/debian"',
            "suite": '"bookworm"',
            "components": '["main"]',
        },
        "python": {"index_url": '"http://mirror.invalid/simple"', "extra_index_urls": "[]"},
        "environments.py": {
            "debian": '["python3"]',
            "python": '["numpy==2.2.6"]',
            "openblas_coretype": '"Haswell"',
        },
        "inputs.raw": {"path": '"data/raw.csv"'},
        "inputs.web": {"url": '"http://mirror.invalid/t.csv"', "sha256": f'"{SHA}"'},
        "steps.s": {
            "env": '"py"',
            "run": '"true"',
            "sources": '["src/a.py"]',
            "inputs": '["raw", "web"]',
            "needs": "[]",
            "outputs": '["o"]',
        },
        "steps.s.variables": {"V": '"v"'},
        "steps.s.hardware": {"cpu_features": '["avx2"]'},
        "images.i": {"step": '"s"', "entrypoint": '["python3"]', "cmd": "[]", "workdir": '"/w"'},
        "images.i.env": {"E": '"e"'},
        "images.i.labels": {"L": '"l"'},
    }
    if field is not None:
        table, _, key = field.removesuffix("[]").rpartition(".")
        value = _toml_string(payload)
        doc[table][key] = f"[{value}]" if field.endswith("[]") else value
    return "".join(
        f"[{table}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) + "\n"
        for table, keys in doc.items()
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def project(tmp_path: Path, make_lock: Callable[[spec.Spec], Lock]) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "data/raw.csv").write_text("x,y\n1,2\n")
    (root / "src/a.py").write_text("print(1)\n")
    text = spec_text()
    (root / "reproflake.toml").write_text(text)
    lock = make_lock(spec.parse(text, root / "reproflake.toml"))
    (root / "reproflake.lock").write_text(model.dumps(lock))
    return root


def run_lock(root: Path, tmp_path: Path) -> tuple[int, str]:
    runner = CliRunner()
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    result = runner.invoke(main, ["-C", str(root), "lock"], env=env, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stderr


def line_of(text: str, key: str) -> int:
    """The line where the payload's key is written."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{key} = "):
            return number
    raise AssertionError(key)


def assert_refused(root: Path, tmp_path: Path, field: str, text: str) -> None:
    before = snapshot(root)
    code, stderr = run_lock(root, tmp_path)
    key = field.removesuffix("[]")
    assert code == 2, (field, stderr)
    assert "Traceback" not in stderr
    where = f"error: {root / 'reproflake.toml'}:{line_of(text, key.rsplit('.', 1)[1])}: "
    assert stderr.startswith(where), (field, stderr[:300])
    assert key in stderr.split("\n", 1)[0]
    assert len(stderr) < 2000, "a message must not echo a huge value"
    assert snapshot(root) == before


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("field", CHECKED)
def test_a_checked_field_refuses_hostile_text(
    project: Path, tmp_path: Path, field: str, payload: str
) -> None:
    text = spec_text(field, PAYLOADS[payload])
    (project / "reproflake.toml").write_text(text)
    assert_refused(project, tmp_path, field, text)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("field", DATA)
def test_a_data_field_refuses_or_passes_text_on_unchanged(
    project: Path,
    tmp_path: Path,
    field: str,
    payload: str,
    make_lock: Callable[[spec.Spec], Lock],
) -> None:
    value = PAYLOADS[payload]
    text = spec_text(field, value)
    path = project / "reproflake.toml"
    path.write_text(text)
    try:
        parsed = spec.parse(text, path)
    except spec.SpecError:
        assert_refused(project, tmp_path, field, text)
        return
    # Accepted: the value is the user's own and reaches the flake's data exactly. Nix and
    # the kernel cut strings at a NUL, and an argument over 128 KiB cannot be passed.
    assert "\0" not in value and len(value) < 128 * 1024
    step = parsed.steps["s"]
    if field == "steps.s.run":
        got: object = step.run
    elif field == "steps.s.variables.V":
        got = step.variables["V"]
    elif field == "steps.s.outputs[]":
        got = step.outputs[0]
    elif field == "steps.s.sources[]":
        got = step.sources[0]
    elif field == "inputs.raw.path":
        got = parsed.inputs["raw"].path
    elif field == "debian.keyring":
        got = parsed.debian.keyring
    elif field.startswith("images."):
        image = parsed.images["i"]
        got = {
            "images.i.entrypoint[]": lambda: image.entrypoint[0],
            "images.i.cmd[]": lambda: image.cmd[0],
            "images.i.workdir": lambda: image.workdir,
            "images.i.env.E": lambda: image.env["E"],
            "images.i.labels.L": lambda: image.labels["L"],
        }[field]()
    else:
        assert field == "project.description"
        return  # free text nobody reads
    paths = (
        "steps.s.outputs[]",
        "steps.s.sources[]",
        "inputs.raw.path",
        "debian.keyring",
        "images.i.workdir",
    )
    if field in paths:
        value = str(PurePosixPath(value))  # a path is normalised as documented: a//b is a/b
    assert got == value
    lock = model.loads(model.dumps(make_lock(parsed)), project / "reproflake.lock")
    facts = nixgen.Facts(sources={"s": step.sources}, external=frozenset())
    data = nixgen.build_data(parsed, lock, facts)
    encoded = json.dumps(data, sort_keys=True)
    # The keyring is read by the lock only; an image's settings go into its OCI config
    # (JSON written by reproflake), never to Nix.
    if field != "debian.keyring" and not field.startswith("images."):
        assert json.dumps(value) in encoded
    # Nothing the user wrote is in the Nix source: the library is static.
    for name, content in nixgen.library().items():
        if name.endswith(".nix"):
            assert value.encode() not in content or len(value) < 3


def test_path_payloads_stay_inside_the_project() -> None:
    """Paths that reach the step are relative and never climb out of its directory."""
    for payload in PAYLOADS.values():
        text = spec_text("inputs.raw.path", payload)
        try:
            parsed = spec.parse(text, Path("/p/reproflake.toml"))
        except spec.SpecError:
            continue
        path = parsed.inputs["raw"].path
        assert path is not None
        assert not os.path.isabs(path) and ".." not in path.split("/")
