"""The pipeline as a DAG: inputs and environments → steps → steps.

From it: a deterministic build order, cycles named in full, and the set of
steps a change reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from reproflake.errors import CycleError
from reproflake.spec import Spec


def node(kind: str, name: str) -> str:
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Graph:
    dag: nx.DiGraph

    def order(self) -> list[str]:
        """Step names, dependencies first, ties broken by name."""
        return [
            n.split(":", 1)[1]
            for n in nx.lexicographical_topological_sort(self.dag)
            if n.startswith("step:")
        ]

    def downstream(self, steps: Iterable[str]) -> set[str]:
        """The steps that (transitively) need any of ``steps``, ``steps`` included."""
        found = set()
        for name in steps:
            found.add(name)
            found.update(
                n.split(":", 1)[1]
                for n in nx.descendants(self.dag, node("step", name))
                if n.startswith("step:")
            )
        return found

    def upstream(self, steps: Iterable[str]) -> set[str]:
        """The steps ``steps`` (transitively) need, ``steps`` included."""
        found = set()
        for name in steps:
            found.add(name)
            found.update(
                n.split(":", 1)[1]
                for n in nx.ancestors(self.dag, node("step", name))
                if n.startswith("step:")
            )
        return found


def build(spec: Spec) -> Graph:
    dag = nx.DiGraph()
    for name in spec.inputs:
        dag.add_node(node("input", name), kind="input")
    for name in spec.environments:
        dag.add_node(node("env", name), kind="env")
    for name, step in spec.steps.items():
        dag.add_node(node("step", name), kind="step")
        dag.add_edge(node("env", step.env), node("step", name))
        for item in step.inputs:
            dag.add_edge(node("input", item), node("step", name))
        for need in step.needs:
            dag.add_edge(node("step", need), node("step", name))
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        return Graph(dag)
    names = [edge[0].split(":", 1)[1] for edge in cycle]
    # Start the cycle at its smallest name so the message is stable.
    start = names.index(min(names))
    names = names[start:] + names[:start]
    first = names[0]
    raise CycleError(
        f"{spec.where('steps', first, 'needs')}: steps depend on each other in a cycle: "
        + " → ".join([*names, first]),
        hint="remove one of these `needs` so the steps can run in order",
    )
