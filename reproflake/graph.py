"""The pipeline as a DAG: inputs and environments → steps → steps.

From it: a deterministic build order, cycles named in full, and the set of
steps a change reaches. Plain dictionaries keep this off the start-up path of
every command; networkx is loaded only to name a cycle.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reproflake.errors import CycleError
from reproflake.spec import Spec


def node(kind: str, name: str) -> str:
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Graph:
    succ: Mapping[str, tuple[str, ...]]  # node → the nodes that depend on it
    pred: Mapping[str, tuple[str, ...]]  # node → the nodes it depends on

    @property
    def nodes(self) -> list[str]:
        return sorted(self.succ)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, bs in self.succ.items() for b in bs)

    def order(self) -> list[str]:
        """Step names, dependencies first, ties broken by name."""
        return list(self._order)

    @functools.cached_property
    def _order(self) -> tuple[str, ...]:
        ordered = _topological(self.succ, self.pred)
        assert ordered is not None, "build() rejects cycles"
        return tuple(n.split(":", 1)[1] for n in ordered if n.startswith("step:"))

    def downstream(self, steps: Iterable[str]) -> set[str]:
        """The steps that (transitively) need any of ``steps``, ``steps`` included."""
        return _reach(steps, self.succ)

    def upstream(self, steps: Iterable[str]) -> set[str]:
        """The steps ``steps`` (transitively) need, ``steps`` included."""
        return _reach(steps, self.pred)


def _reach(steps: Iterable[str], neighbours: Mapping[str, tuple[str, ...]]) -> set[str]:
    # One traversal from all starting points: linear in the size of the graph.
    seen: set[str] = set()
    stack = [node("step", s) for s in steps]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(n for n in neighbours.get(current, ()) if n.startswith("step:"))
    return {n.split(":", 1)[1] for n in seen}


def _topological(
    succ: Mapping[str, tuple[str, ...]], pred: Mapping[str, tuple[str, ...]]
) -> list[str] | None:
    """Kahn's algorithm with a heap: deterministic, O(n log n); None if there is a cycle."""
    indegree = {n: len(pred[n]) for n in succ}
    ready = [n for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        current = heapq.heappop(ready)
        ordered.append(current)
        for after in succ[current]:
            indegree[after] -= 1
            if indegree[after] == 0:
                heapq.heappush(ready, after)
    return ordered if len(ordered) == len(indegree) else None


def build(spec: Spec) -> Graph:
    # Each node's neighbours deduplicated and sorted on their own (small lists), not every
    # edge of the graph sorted at once: the same tuples, a third of the time at 10,000 steps.
    pred: dict[str, tuple[str, ...]] = {node("input", n): () for n in spec.inputs}
    pred.update({node("env", n): () for n in spec.environments})
    for name, step in spec.steps.items():
        before = {f"env:{step.env}", *(f"input:{i}" for i in step.inputs)}
        before.update(f"step:{n}" for n in step.needs)
        pred[f"step:{name}"] = tuple(sorted(before))
    succ_lists: dict[str, list[str]] = {n: [] for n in pred}
    for b in sorted(pred):
        for a in pred[b]:
            succ_lists.setdefault(a, []).append(b)
    for a in succ_lists:
        pred.setdefault(a, ())  # a needed node the spec does not declare (refused later)
    graph = Graph({k: tuple(v) for k, v in succ_lists.items()}, pred)
    ordered = _topological(graph.succ, graph.pred)
    if ordered is not None:
        # The cycle check's order is the build order: keep it rather than sort again.
        graph.__dict__["_order"] = tuple(n[5:] for n in ordered if n.startswith("step:"))
        return graph
    edges = {(a, b) for b, before in pred.items() for a in before}
    raise _cycle_error(spec, edges)


def _cycle_error(spec: Spec, edges: set[tuple[str, str]]) -> CycleError:
    import networkx as nx  # only here: naming a cycle is the rare path

    cycle = nx.find_cycle(nx.DiGraph(sorted(edges)))
    names = [edge[0].split(":", 1)[1] for edge in cycle]
    # Start the cycle at its smallest name so the message is stable.
    start = names.index(min(names))
    names = names[start:] + names[:start]
    first = names[0]
    return CycleError(
        f"{spec.where('steps', first, 'needs')}: steps depend on each other in a cycle: "
        + " → ".join([*names, first]),
        hint="remove one of these `needs` so the steps can run in order",
    )
