"""The planner's decisions, on a hand-made project and records (no Nix)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake import graph, planner, project, spec, state, verdicts
from reproflake.state import Built

SPEC = """
[project]
name = "p"
[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"
[environments.base]
debian = []
[steps.a]
env = "base"
run = "true"
sources = ["a.sh"]
outputs = ["x"]
[steps.b]
env = "base"
run = "true"
needs = ["a"]
outputs = ["x"]
variables = { K = "1" }
[steps.c]
env = "base"
run = "true"
needs = ["b"]
outputs = ["x"]
"""


@pytest.fixture
def setup(
    tmp_path: Path, make_lock: Callable[..., object]
) -> Callable[..., tuple[spec.Spec, object, object, object]]:
    def make(text: str = SPEC) -> tuple[spec.Spec, object, object, object]:
        (tmp_path / "a.sh").write_text("echo a\n")
        (tmp_path / "reproflake.toml").write_text(text)
        s = spec.load(tmp_path / "reproflake.toml")
        return s, make_lock(s), project.facts(s), graph.build(s)

    return make


def built_everything(s: spec.Spec, lock: object, facts: object) -> dict[str, Built]:
    outputs = {"a": "/nix/store/a", "b": "/nix/store/b", "c": "/nix/store/c"}
    return {
        step: Built(outputs[step], planner.components(s, lock, facts, step, outputs))  # type: ignore[arg-type]
        for step in outputs
    }


def plan(
    s: spec.Spec,
    lock: object,
    facts: object,
    g: object,
    records: dict[str, Built],
    missing: frozenset[str] = frozenset(),
) -> dict[str, verdicts.StepPlan]:
    return planner.plan(s, lock, facts, g, records, lambda paths: set(paths) & set(missing))  # type: ignore[arg-type]


def statuses(plans: dict[str, verdicts.StepPlan]) -> dict[str, str]:
    return {k: v.status for k, v in plans.items()}


def test_nothing_changed_means_nothing_builds(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    s, lock, facts, g = setup()
    assert statuses(plan(s, lock, facts, g, built_everything(s, lock, facts))) == {
        "a": "built", "b": "built", "c": "built"
    }  # fmt: skip


def test_a_source_edit_rebuilds_its_step_and_may_rebuild_the_rest(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    s, lock, facts, g = setup()
    records = built_everything(s, lock, facts)
    (tmp_path / "a.sh").write_text("echo changed\n")
    plans = plan(s, lock, facts, g, records)
    assert statuses(plans) == {"a": "will-build", "b": "may-build", "c": "may-build"}
    assert plans["a"].reasons[0].startswith("a.sh changed (sha256 ")
    assert plans["c"].reasons == plans["b"].reasons  # the root cause, not a nested chain


def test_a_variable_edit_rebuilds_from_that_step(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    s, lock, facts, _g = setup()
    records = built_everything(s, lock, facts)
    s2, _, facts2, g2 = setup(SPEC.replace('K = "1"', 'K = "2"'))
    plans = plan(s2, lock, facts2, g2, records)
    assert statuses(plans) == {"a": "built", "b": "will-build", "c": "may-build"}
    assert plans["b"].reasons == ("variable K changed ('1' → '2')",)


def test_an_output_gone_from_the_store_builds_again(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    s, lock, facts, g = setup()
    plans = plan(s, lock, facts, g, built_everything(s, lock, facts), missing={"/nix/store/b"})
    assert plans["b"].status == "will-build"
    assert plans["b"].reasons == ("its output is no longer in the Nix store",)
    assert plans["c"].status == "may-build"


def test_a_needed_step_rebuilt_elsewhere_changes_its_dependents(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    s, lock, facts, g = setup()
    records = built_everything(s, lock, facts)
    records["a"] = Built("/nix/store/a-new", records["a"].components)
    plans = plan(s, lock, facts, g, records)
    assert plans["b"].status == "will-build"
    assert "needs a, whose output changed since this step was built" in plans["b"].reasons


def test_no_record_and_a_pending_need(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    s, lock, facts, g = setup()
    plans = plan(s, lock, facts, g, {})
    assert statuses(plans) == {"a": "will-build", "b": "will-build", "c": "will-build"}
    asked = planner.plan(s, lock, facts, g, {}, lambda p: set(), nix_asked=True)  # type: ignore[arg-type]
    assert statuses(asked) == {"a": "will-build", "b": "may-build", "c": "may-build"}


def test_records_from_before_the_executable_bit_counted_are_still_built(
    tmp_path: Path, setup: Callable[..., tuple[spec.Spec, object, object, object]]
) -> None:
    """state.json as a reproflake that took a source by its bytes alone wrote it (no
    format, bare sha256s): an executable source with the bytes it was built from has not
    "become executable", and Nix would build nothing."""
    s, lock, facts, g = setup()
    records = built_everything(s, lock, facts)  # a.sh not executable: bare sha256s
    (tmp_path / "a.sh").chmod(0o755)
    doc = {
        "steps": {k: {"output": b.output, "components": dict(b.components)} for k, b in records.items()},
        "environments": {},
    }  # fmt: skip
    (tmp_path / state.STATE_FILE).parent.mkdir(parents=True)
    (tmp_path / state.STATE_FILE).write_text(json.dumps(doc))
    legacy, _envs = state.load_all(tmp_path)
    assert statuses(plan(s, lock, facts, g, legacy)) == {
        "a": "built", "b": "built", "c": "built"
    }  # fmt: skip
    # The same records written now: the bit was recorded, and it changed.
    state.save(tmp_path, records, {})
    current, _envs = state.load_all(tmp_path)
    plans = plan(s, lock, facts, g, current)
    assert plans["a"].reasons == ("a.sh became executable",)
    # Saved again (a build of other steps keeps these records): the bit as it was taken.
    state.save(tmp_path, legacy, {})
    assert statuses(plan(s, lock, facts, g, state.load_all(tmp_path)[0]))["a"] == "built"
