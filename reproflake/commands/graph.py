"""`reproflake graph`: the DAG of inputs, environments and steps, marked built or stale."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from reproflake import _proc, verdicts
from reproflake.commands import _plan_delta, _plan_record
from reproflake.commands._plan import compute
from reproflake.commands._project import Log, load_project, load_spec
from reproflake.errors import StaleLockError, UsageError
from reproflake.fsutil import write_atomic
from reproflake.graph import Graph

MARKS = {
    verdicts.BUILT: "built",
    verdicts.WILL: "stale",
    verdicts.MAY: "stale?",
    verdicts.BLOCKED: "cannot build here",
}


def _statuses(start: Path, log: Log) -> tuple[Graph, dict[str, str]]:
    # The plan's records, when they still hold (or hold but for edited sources): the
    # verdicts without loading the lock or hashing every source (commands/_plan_delta.py).
    looked = _plan_record.look(start)
    plans = _plan_delta.current(looked, log) if looked is not None else None
    if plans is not None:
        _spec, dag = load_spec(start)
        return dag, {s: MARKS[pl.status] for s, pl in plans.items()}
    try:
        p = load_project(start, log, write_lock=False)
    except StaleLockError:
        _spec, dag = load_spec(start)
        return dag, {}
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


def as_json(g: Graph, marks: dict[str, str]) -> str:
    """Nodes (kind, name, and a step's status) and edges (from what is needed to what needs it)."""
    nodes = []
    for node in g.nodes:
        kind, name = node.split(":", 1)
        entry: dict[str, str | None] = {"id": node, "kind": kind, "name": name}
        if kind == "step":
            entry["status"] = marks.get(name)
        nodes.append(entry)
    doc = {"nodes": nodes, "edges": [[a, b] for a, b in g.edges]}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def mermaid(g: Graph, marks: dict[str, str]) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}
    lines = ["flowchart LR"]
    for node, ident in ids.items():
        label = _label(node, marks).replace('"', "#quot;")
        lines.append(f'  {ident}["{label}"]')
    for a, b in g.edges:
        lines.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"


# What -o's extension says when --format does not.
EXTENSIONS = {
    ".svg": "svg",
    ".png": "png",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".json": "json",
}


def choose_format(fmt: str | None, output: Path | None) -> str:
    """--format if given, else -o's extension, else text."""
    if fmt is not None:
        return fmt
    if output is None:
        return "text"
    found = EXTENSIONS.get(output.suffix.lower())
    if found is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise UsageError(
            f"cannot tell the format of {output} from its extension",
            hint=f"use one of {known}, or give --format text|dot|mermaid|json|svg|png",
        )
    return found


def run(start: Path, fmt: str | None, output: Path | None, *, log: Log, out: Log) -> int:
    fmt = choose_format(fmt, output)
    g, marks = _statuses(start, log)
    if fmt in ("svg", "png"):
        if shutil.which("dot") is None:
            raise UsageError(
                f"--format {fmt} needs Graphviz's `dot`, which is not installed",
                hint="install it (Debian: apt-get install graphviz), or use --format dot|mermaid|text",
            )
        if output is None and fmt == "png" and sys.stdout.isatty():
            raise UsageError(
                "a PNG is not written to a terminal", hint="give -o FILE, or redirect the output"
            )
        source = dot(g, marks)
        with _tmp_dot(source) as path:
            target = path + "." + fmt
            _proc.run(["dot", f"-T{fmt}", "-o", target, path])
            rendered_bytes = Path(target).read_bytes()
        if output is None:
            sys.stdout.buffer.write(rendered_bytes)
            sys.stdout.flush()
        else:
            write_atomic(output, rendered_bytes)
            log(f"wrote {output}")
        return 0
    rendered = {"text": text, "dot": dot, "mermaid": mermaid, "json": as_json}[fmt](g, marks)
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
