"""`reproflake graph`: the DAG of inputs, environments and steps, marked built or stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reproflake import _proc, planner
from reproflake.commands._project import Log, load_project, load_spec
from reproflake.errors import StaleLockError, UsageError
from reproflake.fsutil import write_atomic
from reproflake.graph import Graph

MARKS = {
    planner.BUILT: "built",
    planner.WILL: "stale",
    planner.MAY: "stale?",
    planner.BLOCKED: "cannot build here",
}


def _statuses(start: Path, log: Log) -> tuple[Graph, dict[str, str]]:
    try:
        p = load_project(start, log, write_lock=False)
    except StaleLockError:
        _spec, dag = load_spec(start)
        return dag, {}
    from reproflake.commands.plan import compute

    return p.graph, {s: MARKS[pl.status] for s, pl in compute(p).items()}


def _label(node: str, marks: dict[str, str]) -> str:
    kind, name = node.split(":", 1)
    mark = marks.get(name) if kind == "step" else None
    return f"{kind} {name}" + (f" [{mark}]" if mark else "")


def text(g: Graph, marks: dict[str, str]) -> str:
    lines = []
    for node in g.nodes:
        if not node.startswith("step:"):
            continue
        deps = sorted(g.pred[node])
        lines.append(_label(node, marks))
        lines.extend(f"  <- {_label(d, marks)}" for d in deps)
    return "\n".join(lines) + "\n"


def dot(g: Graph, marks: dict[str, str]) -> str:
    shapes = {"input": "note", "env": "component", "step": "box"}
    lines = ["digraph reproflake {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for node in g.nodes:
        kind, name = node.split(":", 1)
        mark = marks.get(name) if kind == "step" else None
        color = {"built": "palegreen", "stale": "lightsalmon", "stale?": "khaki"}.get(
            mark or "", "white"
        )
        # json.dumps yields a valid DOT quoted string for any name.
        label = json.dumps(_label(node, marks))
        lines.append(
            f'  {json.dumps(node)} [label={label}, shape={shapes[kind]}, style=filled, fillcolor="{color}"];'
        )
    for a, b in g.edges:
        lines.append(f"  {json.dumps(a)} -> {json.dumps(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def mermaid(g: Graph, marks: dict[str, str]) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}
    lines = ["flowchart LR"]
    for node, ident in ids.items():
        label = _label(node, marks).replace('"', "#quot;")
        lines.append(f'  {ident}["{label}"]')
    for a, b in g.edges:
        lines.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"


def run(start: Path, fmt: str, output: Path | None, *, log: Log, out: Log) -> int:
    g, marks = _statuses(start, log)
    if fmt in ("svg", "png"):
        if shutil.which("dot") is None:
            raise UsageError(
                f"--format {fmt} needs Graphviz's `dot`, which is not installed",
                hint="install it (Debian: apt-get install graphviz), or use --format dot|mermaid|text",
            )
        if output is None:
            raise UsageError(f"--format {fmt} is rendered to a file", hint="give -o FILE")
        source = dot(g, marks)
        with _tmp_dot(source) as path:
            _proc.run(["dot", f"-T{fmt}", "-o", str(output) + ".tmp", path])
        Path(str(output) + ".tmp").replace(output)
        log(f"wrote {output}")
        return 0
    rendered = {"text": text, "dot": dot, "mermaid": mermaid}[fmt](g, marks)
    if output is None:
        out(rendered.rstrip("\n"))
    else:
        write_atomic(output, rendered)
        log(f"wrote {output}")
    return 0


class _tmp_dot:
    def __init__(self, source: str) -> None:
        import tempfile

        self.dir = tempfile.TemporaryDirectory(prefix="reproflake-graph-")
        self.path = str(Path(self.dir.name) / "graph.dot")
        Path(self.path).write_text(source)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.dir.cleanup()
