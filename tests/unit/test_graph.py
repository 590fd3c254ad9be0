from __future__ import annotations

from pathlib import Path

import pytest

from reproflake import graph, spec
from reproflake.errors import CycleError, SpecError

PATH = Path("/project/reproflake.toml")
HEADER = """\
[project]
name = "g"

[debian]
mirror = "http://mirror.invalid/debian"
suite = "bookworm"

[environments.base]

[inputs.raw]
path = "data/raw.csv"
"""


def step(name: str, needs: list[str], inputs: list[str] | None = None) -> str:
    return (
        f'\n[steps.{name}]\nenv = "base"\nrun = "true"\nneeds = {needs!r}\n'.replace("'", '"')
        + (f"inputs = {inputs!r}\n".replace("'", '"') if inputs else "")
        + 'outputs = ["o"]\n'
    )


# A diamond with independent tails: zeta ← {beta, alpha} ← merge ← report; lone stands apart.
STEPS = {
    "report": ["merge"],
    "merge": ["alpha", "beta"],
    "beta": ["zeta"],
    "alpha": ["zeta"],
    "zeta": [],
    "lone": [],
}


def parse(steps: dict[str, list[str]], order: list[str] | None = None) -> spec.Spec:
    names = order or list(steps)
    text = HEADER + "".join(step(n, steps[n], ["raw"] if n == "zeta" else None) for n in names)
    return spec.parse(text, PATH)


def test_order_is_dependency_first_with_ties_broken_by_name() -> None:
    g = graph.build(parse(STEPS))
    assert g.order() == ["lone", "zeta", "alpha", "beta", "merge", "report"]


def test_order_does_not_depend_on_the_order_steps_are_written() -> None:
    orders = {
        tuple(graph.build(parse(STEPS, names)).order())
        for names in (list(STEPS), sorted(STEPS), sorted(STEPS, reverse=True))
    }
    assert len(orders) == 1


def test_every_step_comes_after_what_it_needs() -> None:
    order = graph.build(parse(STEPS)).order()
    assert sorted(order) == sorted(STEPS)
    for name, needs in STEPS.items():
        assert all(order.index(n) < order.index(name) for n in needs)


def test_downstream() -> None:
    g = graph.build(parse(STEPS))
    assert g.downstream(["zeta"]) == {"zeta", "alpha", "beta", "merge", "report"}
    assert g.downstream(["beta"]) == {"beta", "merge", "report"}
    assert g.downstream(["report"]) == {"report"}
    assert g.downstream(["lone", "merge"]) == {"lone", "merge", "report"}
    assert g.downstream([]) == set()


def test_upstream() -> None:
    g = graph.build(parse(STEPS))
    assert g.upstream(["report"]) == {"report", "merge", "alpha", "beta", "zeta"}
    assert g.upstream(["alpha"]) == {"alpha", "zeta"}
    assert g.upstream(["zeta", "lone"]) == {"zeta", "lone"}


def test_inputs_and_environments_are_nodes_but_not_steps() -> None:
    g = graph.build(parse(STEPS))
    assert "input:raw" in g.nodes and "env:base" in g.nodes
    assert ("input:raw", "step:zeta") in g.edges
    assert ("env:base", "step:lone") in g.edges
    assert all(":" not in name for name in g.order())


def test_three_step_cycle_names_every_step_and_where() -> None:
    steps = {"fit": ["prepare"], "prepare": ["report"], "report": ["fit"], "unrelated": []}
    text = HEADER + "".join(step(n, steps[n]) for n in steps)
    parsed = spec.parse(text, PATH)
    with pytest.raises(CycleError) as info:
        graph.build(parsed)
    err = info.value
    assert isinstance(err, SpecError)
    assert err.exit_code == 2
    # The cycle starts at its smallest name so the message is stable; the line is that step's needs.
    lines = text.splitlines()
    fit_needs = lines.index("[steps.fit]") + 4  # header, env, run, then needs (1-based)
    assert lines[fit_needs - 1].startswith("needs =")
    assert err.message == (
        f"{PATH}:{fit_needs}: steps depend on each other in a cycle: fit → report → prepare → fit"
    )
    assert "unrelated" not in err.message
    assert err.hint and "needs" in err.hint


def test_cycle_message_is_the_same_whatever_the_written_order() -> None:
    steps = {"c": ["b"], "b": ["a"], "a": ["c"]}
    messages = set()
    for names in (["a", "b", "c"], ["c", "b", "a"], ["b", "a", "c"]):
        text = HEADER + "".join(step(n, steps[n]) for n in names)
        with pytest.raises(CycleError) as info:
            graph.build(spec.parse(text, PATH))
        messages.add(info.value.message.split(": ", 1)[1])
    assert messages == {"steps depend on each other in a cycle: a → b → c → a"}
