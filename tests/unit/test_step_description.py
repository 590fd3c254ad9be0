"""One description of each step: what Nix reads and what `plan` fingerprints agree."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import get_type_hints

import pytest

from reproflake import nixgen
from reproflake._paths import data_dir
from reproflake.fingerprint import STEP_KEYS, own_components
from reproflake.lock.model import Lock
from reproflake.spec import Hardware, Spec, parse

TEXT = """
[project]
name = "p"
source_date_epoch = 1700000000
[debian]
mirror = "http://m.invalid/debian"
suite = "bookworm"
[environments.e]
debian = []
[environments.f]
debian = ["python3"]
[inputs.raw]
path = "data/raw.csv"
[inputs.other]
path = "data/other.csv"
[steps.up]
env = "e"
run = "true"
outputs = ["u"]
[steps.s]
env = "e"
run = "echo hi > $OUT/o"
sources = ["src/a.py"]
inputs = ["raw"]
needs = ["up"]
outputs = ["o"]
variables = { SEED = "1" }
hardware = { cpu_features = ["avx2"] }
"""

FACTS = nixgen.Facts(sources={"s": ("src/a.py",)}, external=frozenset())


@pytest.fixture
def base(make_lock: Callable[[Spec], Lock]) -> tuple[Spec, Lock]:
    spec = parse(TEXT, Path("/p/reproflake.toml"))
    return spec, make_lock(spec)


def test_every_attribute_nix_reads_is_fingerprinted_and_used() -> None:
    keys = set(get_type_hints(nixgen.StepData))
    assert keys == set(STEP_KEYS)
    library = (data_dir("nix") / "default.nix").read_text()
    used = set(re.findall(r"\bs\.([A-Za-z]+)", library))
    assert keys <= used, keys - used


# Each attribute changed on its own: (what to change, how).
EDITS: dict[str, Callable[[Spec], Spec]] = {
    "env": lambda sp: _step(sp, env="f"),
    "run": lambda sp: _step(sp, run="echo other > $OUT/o"),
    "inputs": lambda sp: _step(sp, inputs=("other",)),
    "outputs": lambda sp: _step(sp, outputs=("o", "p")),
    "variables": lambda sp: _step(sp, variables={"SEED": "2"}),
    "hardware": lambda sp: _step(sp, hardware=Hardware(cpu_features=("avx512f",))),
}


def _step(spec: Spec, **changes: object) -> Spec:
    steps = dict(spec.steps)
    steps["s"] = dataclasses.replace(steps["s"], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(spec, steps=steps)


def _hash(_rel: str) -> str:
    return "0" * 64


@pytest.mark.parametrize("key", sorted(EDITS))
def test_an_attribute_changes_the_derivation_and_the_fingerprint_together(
    base: tuple[Spec, Lock], key: str
) -> None:
    spec, lock = base
    edited = EDITS[key](spec)
    before = nixgen.step_data(spec, FACTS, "s")
    after = nixgen.step_data(edited, FACTS, "s")
    assert before[key] != after[key]  # type: ignore[literal-required]
    assert own_components(spec, lock, FACTS, "s", _hash) != own_components(
        edited, lock, FACTS, "s", _hash
    )


def test_source_files_change_both(base: tuple[Spec, Lock]) -> None:
    spec, lock = base
    other = nixgen.Facts(sources={"s": ("src/a.py", "src/b.py")}, external=frozenset())
    assert nixgen.step_data(spec, FACTS, "s") != nixgen.step_data(spec, other, "s")
    assert own_components(spec, lock, FACTS, "s", _hash) != own_components(
        spec, lock, other, "s", _hash
    )


# Last changed by build.json's `images` (empty here): the steps' derivations read their own
# entries only, so their store paths stayed as they were.
BUILD_JSON_SHA256 = "71debb59c7ca93e368daa2134727cadbe7ab5536cdbda093cd7bcae8bde79df6"


def test_build_json_bytes_are_pinned(base: tuple[Spec, Lock]) -> None:
    """The exact bytes Nix reads for a fixture spec: any change here changes every store
    path of every user's project, so it must be deliberate (update the digest)."""
    spec, lock = base
    data = nixgen.build_data(spec, lock, FACTS)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    rendered = nixgen.render(spec, lock, FACTS, b"seed")[".reproflake/build.json"][0]
    assert rendered == text.encode()
    assert hashlib.sha256(rendered).hexdigest() == BUILD_JSON_SHA256, text


def test_a_pinned_gpu_profile_reaches_nix_and_the_plan_through_hardware(
    base: tuple[Spec, Lock],
) -> None:
    """pin_profile adds no attribute of its own: it is part of the hardware entry (and
    one system feature), so the derivation and `plan`'s fingerprint change together."""
    spec, lock = base
    profile = "NVIDIA H100 80GB HBM3, driver 550.54.15"
    gpu = _step(spec, hardware=Hardware(gpu="nvidia"))
    pinned = _step(spec, hardware=Hardware(gpu="nvidia", pin_profile=profile))
    other = _step(spec, hardware=Hardware(gpu="nvidia", pin_profile=profile + "x"))
    d = nixgen.step_data(pinned, FACTS, "s")
    assert d["hardware"] == json.dumps({"gpu": "nvidia", "pin_profile": profile})
    digest = hashlib.sha256(profile.encode()).hexdigest()[:16]
    assert d["systemFeatures"] == ["gpu-nvidia", f"gpu-profile-{digest}"]
    prints = [own_components(sp, lock, FACTS, "s", _hash) for sp in (gpu, pinned, other)]
    assert prints[0]["hardware"] != prints[1]["hardware"] != prints[2]["hardware"]


def test_a_sources_executable_bit_is_in_its_component_and_nothing_else_of_its_mode(
    tmp_path: Path,
) -> None:
    """Nix copies a source into the store as a NAR: its bytes and whether its owner may
    execute it. `chmod +x` makes another derivation, so another component; `chmod g+w`
    neither (tests/e2e/test_plan.py has Nix build it)."""
    from reproflake.fingerprint import working_tree_source
    from reproflake.verdicts import describe

    path = tmp_path / "a.sh"
    path.write_text("echo a\n")
    path.chmod(0o644)
    plain = working_tree_source(tmp_path, "a.sh")
    assert plain == hashlib.sha256(b"echo a\n").hexdigest()
    path.chmod(0o664)
    assert working_tree_source(tmp_path, "a.sh") == plain
    path.chmod(0o744)
    executable = working_tree_source(tmp_path, "a.sh")
    assert executable != plain
    assert describe("source:a.sh", plain, executable) == "a.sh became executable"
    assert describe("source:a.sh", executable, plain) == "a.sh is no longer executable"
    path.write_text("echo b\n")
    changed = working_tree_source(tmp_path, "a.sh")
    assert describe("source:a.sh", plain, changed) == (
        f"a.sh changed (sha256 {plain[:4]}… → {changed[:4]}…) and became executable"
    )
