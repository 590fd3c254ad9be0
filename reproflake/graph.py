"""The pipeline as a DAG: inputs and environments → steps → steps.

From it: a deterministic build order, cycles named in full, and the set of
steps a change reaches.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable
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
        return list(self._order)

    @functools.cached_property
    def _order(self) -> tuple[str, ...]:
        ordered = _topological(self.dag)
        assert ordered is not None, "build() rejects cycles"
        return tuple(n.split(":", 1)[1] for n in ordered if n.startswith("step:"))

    def downstream(self, steps: Iterable[str]) -> set[str]:
        """The steps that (transitively) need any of ``steps``, ``steps`` included."""
        return self._reach(steps, self.dag.successors)

    def upstream(self, steps: Iterable[str]) -> set[str]:
        """The steps ``steps`` (transitively) need, ``steps`` included."""
        return self._reach(steps, self.dag.predecessors)

    @staticmethod
    def _reach(steps: Iterable[str], neighbours: Callable[[str], Iterable[str]]) -> set[str]:
        # One traversal from all starting points: linear in the size of the graph.
        seen: set[str] = set()
        stack = [node("step", s) for s in steps]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(n for n in neighbours(current) if n.startswith("step:"))
        return {n.split(":", 1)[1] for n in seen}


def _topological(dag: nx.DiGraph) -> list[str] | None:
    """Kahn's algorithm with a heap: deterministic, O(n log n); None if there is a cycle."""
    indegree = {n: d for n, d in dag.in_degree()}
    ready = [n for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        current = heapq.heappop(ready)
        ordered.append(current)
        for succ in dag.successors(current):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                heapq.heappush(ready, succ)
    return ordered if len(ordered) == len(indegree) else None


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
    if _topological(dag) is not None:
        return Graph(dag)
    cycle = nx.find_cycle(dag)
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
