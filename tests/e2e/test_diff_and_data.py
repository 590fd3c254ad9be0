"""`diff` between revisions, and large data inputs kept outside git."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pygit2
from conftest import git, needs_nix, reproflake

pytestmark = needs_nix


def commit(root: Path, message: str) -> None:
    git("add", "-A", cwd=root)
    git("commit", "-qm", message, "--allow-empty", cwd=root)


def test_diff_names_what_changed_and_what_it_affects(project_copy: Path) -> None:
    commit(project_copy, "base")
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('DEGREE = "2"', 'DEGREE = "3"'))
    out = reproflake("diff", cwd=project_copy).stdout
    assert "steps.fit.variables.DEGREE: '2' → '3'" in out
    assert "fit: variable DEGREE changed ('2' → '3')" in out
    assert "report: needs fit, which is affected" in out
    assert "prepare:" not in out.split("affected steps:")[1]

    commit(project_copy, "degree 3")
    doc = json.loads(reproflake("diff", "HEAD~1", "HEAD", "--json", cwd=project_copy).stdout)
    assert sorted(doc["affected_steps"]) == ["fit", "report"]
    assert doc["affected_artifacts"] == [
        "results/fit",
        "results/report",
        "the flake's default package (all steps)",
    ]
    # Between identical revisions nothing is affected.
    assert "no step is affected" in reproflake("diff", "HEAD", "HEAD", cwd=project_copy).stdout


def test_diff_rejects_unknown_revisions(project_copy: Path) -> None:
    commit(project_copy, "base")
    run = reproflake("diff", "no-such-rev", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "unknown revision 'no-such-rev'" in run.stderr


def test_large_data_outside_git(project_copy: Path) -> None:
    commit(project_copy, "base")
    big = project_copy / "big"
    big.mkdir()
    (big / "samples.bin").write_bytes(os.urandom(3 << 20))
    with open(project_copy / ".gitignore", "a") as f:
        f.write("/big/\n")
    with open(project_copy / "reproflake.toml", "a") as f:
        f.write(
            '\n[inputs.samples]\npath = "big/samples.bin"\n'
            '\n[steps.size]\nenv = "py"\ninputs = ["samples"]\n'
            'run = "wc -c < big/samples.bin > $OUT/size"\noutputs = ["size"]\n'
        )
    reproflake("lock", cwd=project_copy)
    run = reproflake("build", "size", cwd=project_copy)
    assert "added input samples to the Nix store" in run.stderr
    assert (project_copy / "results/size/size").read_text().strip() == str(3 << 20)
    # The data never went into git's index, so the flake never copied it.
    index = pygit2.Repository(str(project_copy)).index
    assert "big/samples.bin" not in index

    # Unchanged: nothing to do. Changed: plan and diff both say so.
    assert "added input" not in reproflake("build", "size", cwd=project_copy).stderr
    commit(project_copy, "samples")
    with open(big / "samples.bin", "ab") as f:
        f.write(b"more")
    plan = reproflake("plan", "size", cwd=project_copy).stdout
    assert "size: will build — input samples changed" in plan
    diff = reproflake("diff", cwd=project_copy).stdout
    assert "data inputs:\n  samples changed" in diff


def test_missing_input_file_and_empty_glob_are_clear_errors(project_copy: Path) -> None:
    os.remove(project_copy / "data/measurements.csv")
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "inputs.measurements: data/measurements.csv does not exist" in run.stderr

    copy_spec = project_copy / "reproflake.toml"
    text = copy_spec.read_text().replace('sources = ["src/fit.py"]', 'sources = ["src/*.R"]')
    copy_spec.write_text(text)
    (project_copy / "data/measurements.csv").write_text("x,y\n1,2\n")
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "steps.fit.sources: 'src/*.R' matches no file" in run.stderr
    assert "reproflake.toml:" in run.stderr


def test_diff_in_a_shallow_clone_says_to_fetch_history(project_copy: Path, tmp_path: Path) -> None:
    commit(project_copy, "one")
    (project_copy / "src/fit.py").write_text((project_copy / "src/fit.py").read_text() + "# two\n")
    commit(project_copy, "two")
    shallow = tmp_path / "shallow"
    git("clone", "-q", "--depth", "1", f"file://{project_copy}", str(shallow), cwd=tmp_path)
    run = reproflake("diff", "HEAD~1", "HEAD", cwd=shallow, check=False)
    assert run.returncode == 2
    assert "not in this shallow clone's history" in run.stderr
    assert "git fetch --unshallow" in run.stderr


def test_glob_input_sees_exactly_what_it_matches(project_copy: Path) -> None:
    more = project_copy / "data" / "more"
    more.mkdir()
    (more / "a.csv").write_text("1\n2\n")
    (more / "b.csv").write_text(f"3\n{os.getpid()}\n")
    (more / "notes.txt").write_text("not matched\n")
    with open(project_copy / "reproflake.toml", "a") as f:
        f.write(
            '\n[inputs.extra]\npath = "data/more/*.csv"\n'
            '\n[steps.count]\nenv = "py"\ninputs = ["extra"]\n'
            'run = "ls data/more > $OUT/files; cat data/more/*.csv | wc -l > $OUT/n"\n'
            'outputs = ["n", "files"]\n'
        )
    reproflake("lock", cwd=project_copy)
    lock = json.loads((project_copy / "reproflake.lock").read_text())
    assert sorted(lock["inputs"]["extra"]["files"]) == ["data/more/a.csv", "data/more/b.csv"]
    reproflake("build", "count", cwd=project_copy)
    assert (project_copy / "results/count/files").read_text().split() == ["a.csv", "b.csv"]
    assert (project_copy / "results/count/n").read_text().strip() == "4"

    (more / "c.csv").write_text("5\n")
    plan = reproflake("plan", "count", cwd=project_copy).stdout
    assert "count: will build — input extra:data/more/c.csv was added" in plan
    reproflake("build", "count", cwd=project_copy)
    assert (project_copy / "results/count/n").read_text().strip() == "5"


def test_glob_input_matching_nothing_is_a_clear_error(project_copy: Path) -> None:
    with open(project_copy / "reproflake.toml", "a") as f:
        f.write('\n[inputs.none]\npath = "data/*.parquet"\n')
    run = reproflake("lock", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "inputs.none: 'data/*.parquet' matches no file" in run.stderr
    assert "reproflake.toml:" in run.stderr


def test_diff_names_package_versions_and_the_environment(project_copy: Path) -> None:
    commit(project_copy, "base")
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('"numpy==2.2.6"', '"numpy==2.3.5"'))
    reproflake("lock", cwd=project_copy)
    out = reproflake("diff", cwd=project_copy).stdout
    assert "packages:\n  py: wheel numpy 2.2.6 → 2.3.5" in out
    assert "fit: wheel numpy changed (2.2.6 → 2.3.5)" in out
    assert "environment py (its root filesystem)" in out


def test_diff_of_a_new_environment_is_one_line(project_copy: Path) -> None:
    commit(project_copy, "base")
    with open(project_copy / "reproflake.toml", "a") as f:
        f.write('\n[environments.tools]\ndebian = ["jq"]\n')
    reproflake("lock", cwd=project_copy)
    out = reproflake("diff", cwd=project_copy).stdout
    lines = [line for line in out.splitlines() if line.startswith("  tools:")]
    assert len(lines) == 1, out
    assert lines[0].startswith("  tools: environment added (")
    assert "Debian packages)" in lines[0]


def test_diff_names_a_source_made_executable(project_copy: Path) -> None:
    """Nix takes a source with its executable bit: the step's derivation changes."""
    commit(project_copy, "base")
    source = project_copy / "src/prepare.py"
    source.chmod(source.stat().st_mode | 0o100)
    out = reproflake("diff", cwd=project_copy).stdout
    assert "prepare: src/prepare.py became executable" in out
    assert "source files:\n  src/prepare.py became executable\n" in out
    commit(project_copy, "executable")  # git keeps the bit: 100755
    doc = json.loads(reproflake("diff", "HEAD~1", "HEAD", "--json", cwd=project_copy).stdout)
    assert sorted(doc["affected_steps"]) == ["fit", "prepare", "report"]
    assert doc["sources"] == ["src/prepare.py became executable"]
