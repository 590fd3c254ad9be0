"""Edge cases a user meets: edits during a build, links, ignored files, odd paths, no cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conftest import git, needs_nix, reproflake

pytestmark = needs_nix


def append(root: Path, text: str) -> None:
    with open(root / "reproflake.toml", "a") as f:
        f.write("\n" + text)


def test_an_edit_during_a_build_is_not_taken_for_built(project_copy: Path) -> None:
    (project_copy / "src" / "slow.txt").write_text(f"v1 {uuid.uuid4()}\n")
    append(
        project_copy,
        '[steps.slow]\nenv = "py"\nsources = ["src/slow.txt"]\n'
        'run = "sleep 4; cat src/slow.txt > $OUT/copy"\noutputs = ["copy"]\n',
    )
    build = subprocess.Popen(
        [sys.executable, "-m", "reproflake", "build", "slow"],
        cwd=project_copy, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.5)
    (project_copy / "src" / "slow.txt").write_text(f"v2 {uuid.uuid4()}\n")
    build.communicate(timeout=600)
    assert build.returncode == 0
    reproflake("build", "slow", cwd=project_copy)
    # Whatever the first build saw, the result now matches the file as it is.
    copy = (project_copy / "results/slow/copy").read_text()
    assert copy == (project_copy / "src/slow.txt").read_text()


def test_a_recursive_glob_never_picks_up_results(project_copy: Path) -> None:
    append(
        project_copy,
        '[steps.txt]\nenv = "py"\nsources = ["**/*.txt"]\n'
        "run = \"find . -name '*.txt' -not -path './results/*' | sort > $OUT/seen.txt\"\n"
        'outputs = ["seen.txt"]\n',
    )
    (project_copy / "notes.txt").write_text("a note\n")
    reproflake("build", "txt", cwd=project_copy)
    reproflake("build", "txt", cwd=project_copy)
    os.remove(project_copy / ".reproflake/cache/stamp.json")
    run = reproflake("build", "txt", cwd=project_copy)
    assert "0 built" in run.stdout
    staged = git("ls-files", "--cached", cwd=project_copy)
    assert "results/" not in staged


def test_a_linked_input_is_its_data(project_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "bigdata"
    outside.mkdir()
    (outside / "part-0.bin").write_bytes(os.urandom(1000))
    os.symlink(outside, project_copy / "data" / "big")
    # A link out of the project is read only when it is this machine's own: git ignores it.
    with open(project_copy / ".gitignore", "a") as f:
        f.write("/data/big\n")
    append(
        project_copy,
        '[inputs.big]\npath = "data/big"\n'
        '[steps.sizes]\nenv = "py"\ninputs = ["big"]\n'
        'run = "wc -c < data/big/part-0.bin > $OUT/size"\noutputs = ["size"]\n',
    )
    reproflake("lock", cwd=project_copy)
    reproflake("build", "sizes", cwd=project_copy)
    assert (project_copy / "results/sizes/size").read_text().strip() == "1000"
    (outside / "part-0.bin").write_bytes(os.urandom(2000))
    assert (
        "sizes: will build — input big changed"
        in reproflake("plan", "sizes", cwd=project_copy).stdout
    )
    reproflake("build", "sizes", cwd=project_copy)
    assert (project_copy / "results/sizes/size").read_text().strip() == "2000"


def test_an_ignored_source_is_refused_and_never_staged(project_copy: Path) -> None:
    (project_copy / "src" / "secret.py").write_text("TOKEN = 1\n")
    with open(project_copy / ".gitignore", "a") as f:
        f.write("/src/secret.py\n")
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('sources = ["src/fit.py"]', 'sources = ["src/*.py"]'))
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "src/secret.py is ignored by git" in run.stderr
    assert "src/secret.py" not in git("ls-files", "--cached", cwd=project_copy)


def test_a_directory_input_with_ignored_files_and_empty_dirs(project_copy: Path) -> None:
    d = project_copy / "data" / "set"
    (d / "empty").mkdir(parents=True)
    (d / "keep.csv").write_text("1\n")
    (d / "debug.log").write_text(f"{uuid.uuid4()}\n")
    with open(project_copy / ".gitignore", "a") as f:
        f.write("*.log\n")
    append(
        project_copy,
        '[inputs.set]\npath = "data/set"\n'
        '[steps.listing]\nenv = "py"\ninputs = ["set"]\n'
        'run = "ls -A data/set > $OUT/ls"\noutputs = ["ls"]\n',
    )
    reproflake("lock", cwd=project_copy)
    reproflake("build", "listing", cwd=project_copy)
    # The step sees the directory exactly as the lock hashed it.
    assert (project_copy / "results/listing/ls").read_text().split() == [
        "debug.log",
        "empty",
        "keep.csv",
    ]
    assert "data/set/debug.log" not in git("ls-files", "--cached", cwd=project_copy)


def test_a_project_path_nix_cannot_use_is_a_clear_error(tmp_path: Path) -> None:
    made = tmp_path / "made"
    reproflake("init", "--template", "minimal", str(made), cwd=tmp_path)
    reproflake("lock", cwd=made)
    root = tmp_path / "my project #1"
    made.rename(root)  # moved after init, which refuses such a path itself
    run = reproflake("build", cwd=root, check=False)
    assert run.returncode == 1
    assert "Nix cannot build a flake whose directory path contains ' ', '#'" in run.stderr


def test_builds_need_no_cache_and_no_network_for_the_seed(tmp_path: Path) -> None:
    root = tmp_path / "project"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    reproflake("lock", cwd=root)
    reproflake("build", cwd=root)
    assert (root / "results/hello/hello.txt").exists()
    # Later builds take the seed from the project itself: no cache, no network needed.
    spec = root / "reproflake.toml"
    spec.write_text(spec.read_text().replace("hermetic build", f"hermetic build {uuid.uuid4()}"))
    empty_cache = tmp_path / "empty-cache"
    run = reproflake(
        "build",
        cwd=root,
        env={"XDG_CACHE_HOME": str(empty_cache), "http_proxy": "http://127.0.0.1:9"},
    )
    assert "1 built" in run.stdout


def test_a_file_url_with_an_escaped_space(project_copy: Path, tmp_path: Path) -> None:
    data = tmp_path / "my data.csv"
    data.write_text(f"x\n{uuid.uuid4()}\n")
    import hashlib

    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    append(
        project_copy,
        f'[inputs.remote]\nurl = "file://{str(data).replace(" ", "%20")}"\nsha256 = "{digest}"\n'
        'path = "data/remote.csv"\n'
        '[steps.use]\nenv = "py"\ninputs = ["remote"]\nrun = "cp data/remote.csv $OUT/r.csv"\n'
        'outputs = ["r.csv"]\n',
    )
    allow = {"REPROFLAKE_READ_OUTSIDE": str(tmp_path)}
    reproflake("lock", cwd=project_copy, env=allow)
    reproflake("build", "use", cwd=project_copy, env=allow)
    assert (project_copy / "results/use/r.csv").read_text() == data.read_text()


def test_results_entry_that_is_not_a_link(project_copy: Path) -> None:
    os.remove(project_copy / "results" / "report")
    (project_copy / "results" / "report").mkdir()
    with open(project_copy / "src/report.py", "a") as f:
        f.write(f"# {uuid.uuid4()}\n")
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "results/report exists and is not a link reproflake made" in run.stderr
    shutil.rmtree(project_copy / "results" / "report")


def test_a_lock_that_contradicts_itself(project_copy: Path) -> None:
    path = project_copy / "reproflake.lock"
    lock = json.loads(path.read_text())
    del lock["debs"][lock["seed"]["deb"]]
    path.write_text(json.dumps(lock))
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "refers to entries it does not contain" in run.stderr
