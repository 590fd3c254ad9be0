"""`reproflake graph`: deterministic text, DOT and Mermaid; SVG and PNG through Graphviz."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import needs_nix, reproflake

pytestmark = needs_nix


@pytest.mark.parametrize("fmt", ["text", "dot", "mermaid"])
def test_graph_is_deterministic_and_marks_built_steps(python_project: Path, fmt: str) -> None:
    first = reproflake("graph", "--format", fmt, cwd=python_project).stdout
    assert first == reproflake("graph", "--format", fmt, cwd=python_project).stdout
    assert "step report [built]" in first
    assert "input measurements" in first


def test_graph_marks_stale_steps(project_copy: Path) -> None:
    with open(project_copy / "src/fit.py", "a") as f:
        f.write("# edited\n")
    out = reproflake("graph", cwd=project_copy).stdout
    assert "step fit [stale]" in out
    assert "step report [stale?]" in out
    assert "step prepare [built]" in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graph_svg_and_png(python_project: Path, tmp_path: Path) -> None:
    reproflake("graph", "--format", "svg", "-o", str(tmp_path / "g.svg"), cwd=python_project)
    assert "<svg" in (tmp_path / "g.svg").read_text()
    reproflake("graph", "--format", "png", "-o", str(tmp_path / "g.png"), cwd=python_project)
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_svg_without_graphviz_says_what_to_install(
    python_project: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("nix", "nix-store"):
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, bin_dir / tool)
    run = reproflake(
        "graph", "--format", "svg", "-o", str(tmp_path / "g.svg"),
        cwd=python_project, check=False, env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert run.returncode == 2
    assert "needs Graphviz's `dot`" in run.stderr
    assert "apt-get install graphviz" in run.stderr
    assert not (tmp_path / "g.svg").exists()


def test_graph_format_follows_the_output_extension(python_project: Path, tmp_path: Path) -> None:
    reproflake("graph", "-o", str(tmp_path / "g.svg"), cwd=python_project)
    assert "<svg" in (tmp_path / "g.svg").read_text()
    reproflake("graph", "-o", str(tmp_path / "g.mmd"), cwd=python_project)
    assert (tmp_path / "g.mmd").read_text().startswith("flowchart LR\n")
    reproflake("graph", "-o", str(tmp_path / "g.dot"), cwd=python_project)
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    # --format svg without -o: the picture on stdout.
    assert "<svg" in reproflake("graph", "--format", "svg", cwd=python_project).stdout
    run = reproflake("graph", "-o", str(tmp_path / "g.xyz"), cwd=python_project, check=False)
    assert run.returncode == 2
    assert "cannot tell the format of" in run.stderr and ".mmd" in run.stderr
    assert not (tmp_path / "g.xyz").exists()


def test_graph_as_json_has_nodes_and_edges(python_project: Path, tmp_path: Path) -> None:
    import json

    doc = json.loads(reproflake("graph", "--format", "json", cwd=python_project).stdout)
    steps = {n["name"]: n["status"] for n in doc["nodes"] if n["kind"] == "step"}
    assert steps == {"prepare": "built", "fit": "built", "report": "built"}
    assert ["step:prepare", "step:fit"] in doc["edges"]
    reproflake("graph", "-o", str(tmp_path / "g.json"), cwd=python_project)
    assert json.loads((tmp_path / "g.json").read_text()) == doc
