"""The core promise: lock → build in the sandbox → identical bytes, also with plain `nix build`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from conftest import git, needs_nix, raw_nix_build, reproflake

from reproflake.fsclock import RACY_NS

pytestmark = needs_nix

STEPS = ("prepare", "fit", "report")


def add_step(root: Path, text: str) -> None:
    with open(root / "reproflake.toml", "a") as f:
        f.write("\n" + text)


def test_python_template_builds(python_project: Path) -> None:
    for step in STEPS:
        link = python_project / "results" / step
        assert link.is_symlink() and os.readlink(link).startswith("/nix/store/")
    report = json.loads((python_project / "results/report/report.json").read_text())
    assert report["rows"] == 113
    assert 0.2 < report["rmse"] < 0.6
    model = json.loads((python_project / "results/fit/model.json").read_text())
    assert model["numpy"] == "2.2.6" and model["degree"] == 2


def test_second_build_builds_nothing(python_project: Path) -> None:
    before = {s: os.readlink(python_project / "results" / s) for s in STEPS}
    run = reproflake("build", cwd=python_project)
    assert "summary: 0 built, 3 already built, 0 failed" in run.stdout
    assert "building" not in run.stderr
    assert {s: os.readlink(python_project / "results" / s) for s in STEPS} == before


def test_every_step_is_bit_for_bit_reproducible(python_project: Path) -> None:
    run = reproflake("verify", cwd=python_project)
    for step in STEPS:
        assert f"{step}: reproducible" in run.stdout
    assert "verified 3 step(s): all reproducible" in run.stdout
    assert (
        "seed: .reproflake/seed/busybox is identical to ./bin/busybox in its pinned" in run.stdout
    )
    assert "environment py: reproducible (root filesystem rebuilt, identical bytes)" in run.stdout


def test_lock_is_deterministic_and_check_passes(python_project: Path) -> None:
    lock = (python_project / "reproflake.lock").read_bytes()
    reproflake("lock", "--upgrade", cwd=python_project)
    assert (python_project / "reproflake.lock").read_bytes() == lock
    run = reproflake("lock", "--check", cwd=python_project)
    assert "up to date" in run.output


def test_plain_nix_build_in_a_fresh_clone_gives_the_same_store_paths(
    python_project: Path, tmp_path: Path
) -> None:
    git("add", "-A", cwd=python_project)
    git("commit", "-qm", "pipeline", cwd=python_project)
    clone = tmp_path / "clone"
    git("clone", "-q", str(python_project), str(clone), cwd=tmp_path)
    assert not (clone / "results").exists()
    for step in STEPS:
        assert raw_nix_build(clone, step) == os.readlink(python_project / "results" / step)


def test_nondeterministic_step_fails_verify(project_copy: Path) -> None:
    add_step(
        project_copy,
        '[steps.clock]\nenv = "py"\nrun = "python3 -c \'import time; print(time.time_ns())\' > $OUT/now"\n'
        'outputs = ["now"]\n',
    )
    run = reproflake("verify", "clock", cwd=project_copy, check=False)
    assert run.returncode == 1
    assert "clock: NOT reproducible" in run.stdout
    assert "not bit-for-bit reproducible: clock" in run.stderr


def test_failing_step_shows_its_log_tail_and_how_to_see_more(project_copy: Path) -> None:
    add_step(
        project_copy,
        '[steps.broken]\nenv = "py"\nneeds = ["prepare"]\n'
        'run = "echo about to fail; python3 -c \'raise SystemExit(\\"the model diverged\\")\'"\n'
        'outputs = ["x"]\n',
    )
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 1
    assert "step broken failed; last lines of its log:" in run.stdout
    assert "| the model diverged" in run.stdout
    command = next(line for line in run.stdout.splitlines() if "full log: " in line)
    command = command.split("full log: ", 1)[1]
    assert command.startswith("nix --extra-experimental-features 'nix-command ca-derivations'")
    shown = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
    assert "the model diverged" in shown.stdout
    assert "summary: 0 built, 3 already built, 1 failed" in run.stdout


def test_missing_declared_output_fails_the_step(project_copy: Path) -> None:
    add_step(project_copy, '[steps.lazy]\nenv = "py"\nrun = "true"\noutputs = ["model.bin"]\n')
    run = reproflake("build", "lazy", cwd=project_copy, check=False)
    assert run.returncode == 1
    assert "did not write its declared output results/lazy/model.bin" in run.stdout


def test_steps_have_no_network(project_copy: Path) -> None:
    # A server on this machine's loopback: reachable from the host, not from the sandbox,
    # which has a network namespace of its own. No traffic leaves the machine.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # reachable from here
    script = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        "    print('NETWORK REACHABLE')\n"
        "except OSError as e:\n"
        "    raise SystemExit(f'no network: {e}')\n"
    )
    (project_copy / "net.py").write_text(script)
    add_step(
        project_copy,
        '[steps.net]\nenv = "py"\nrun = "python3 net.py"\nsources = ["net.py"]\noutputs = ["x"]\n',
    )
    run = reproflake("build", "net", cwd=project_copy, check=False)
    server.close()
    assert run.returncode == 1
    assert "no network:" in run.stdout
    assert "NETWORK REACHABLE" not in run.output


def test_environment_is_fixed(project_copy: Path) -> None:
    add_step(
        project_copy,
        '[steps.env]\nenv = "py"\nrun = "env | sort > $OUT/env.txt; id -u > $OUT/uid"\n'
        'outputs = ["env.txt"]\nvariables = { GREETING = "hello; $(rm -rf /) \\"quoted\\"" }\n',
    )
    reproflake("build", "env", cwd=project_copy)
    env = dict(
        line.split("=", 1)
        for line in (project_copy / "results/env/env.txt").read_text().splitlines()
    )
    assert env["TZ"] == "UTC"
    assert env["PYTHONHASHSEED"] == "0"
    assert env["FORCE_SOURCE_DATE"] == "1"
    assert env["PERL_HASH_SEED"] == env["PERL_PERTURB_KEYS"] == "0"
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["GREETING"] == 'hello; $(rm -rf /) "quoted"'
    lock = json.loads((project_copy / "reproflake.lock").read_text())
    assert env["SOURCE_DATE_EPOCH"] == str(lock["source-date-epoch"])
    assert env["OUT"] == "/work/results/env"


def test_noop_answer_notices_every_kind_of_change(project_copy: Path) -> None:
    """A no-op build is answered without Nix; any change that matters takes the full path."""
    spec = project_copy / "reproflake.toml"
    spec.write_text(spec.read_text().replace('sources = ["src/fit.py"]', 'sources = ["src/*.py"]'))
    # The copy's files are new: a file changed within RACY_NS of the build is compared by
    # its bytes at the next build, which asks Nix to confirm (tests/unit/test_noop.py).
    time.sleep(RACY_NS / 1e9 + 0.2)
    reproflake("build", cwd=project_copy)
    quiet = reproflake("build", cwd=project_copy, env={"REPROFLAKE_VERBOSE": "1"})
    assert "+ nix" not in quiet.stderr  # answered from the stamp
    assert "3 already built" in quiet.stdout

    # A new file that a source glob now matches: fit's inputs changed.
    (project_copy / "src" / "helpers.py").write_text(f"SALT = {os.getpid()}{id(spec)}\n")
    run = reproflake("build", cwd=project_copy, env={"REPROFLAKE_VERBOSE": "1"})
    assert "+ nix" in run.stderr and "finished fit in" in run.stderr

    # A results link removed by hand comes back.
    os.remove(project_copy / "results" / "report")
    run = reproflake("build", cwd=project_copy)
    assert os.readlink(project_copy / "results" / "report").startswith("/nix/store/")

    # The data changed on disk: the full path sees it.
    with open(project_copy / "data/measurements.csv", "a") as f:
        f.write(f"1.0,{os.getpid() % 97}.5\n")
    run = reproflake("build", cwd=project_copy)
    assert "input measurements changed" in run.stderr


def test_wheels_console_scripts_are_executable(project_copy: Path) -> None:
    add_step(
        project_copy,
        '[environments.tools]\ndebian = ["python3"]\npython = ["pygments==2.21.0"]\n'
        '[steps.highlight]\nenv = "tools"\nsources = ["src/fit.py"]\n'
        'run = "pygmentize -f html src/fit.py > $OUT/fit.html"\noutputs = ["fit.html"]\n',
    )
    reproflake("lock", cwd=project_copy)
    reproflake("build", "highlight", cwd=project_copy)
    assert '<div class="highlight">' in (project_copy / "results/highlight/fit.html").read_text()


FIGURE = """
import os
import matplotlib.pyplot as plt
import numpy as np

d = np.loadtxt("results/prepare/clean.csv", delimiter=",", skiprows=1)
fig, ax = plt.subplots(figsize=(4, 3))
ax.scatter(d[:, 0], d[:, 1], s=4)
ax.set_title("measurements")
for ext in ("png", "svg", "pdf"):
    fig.savefig(os.path.join(os.environ["OUT"], f"fit.{ext}"))
"""


def test_figures_are_bit_for_bit(project_copy: Path) -> None:
    (project_copy / "src" / "figure.py").write_text(FIGURE)
    add_step(
        project_copy,
        '[environments.plot]\ndebian = ["python3"]\npython = ["numpy==2.2.6", "matplotlib==3.11.2"]\n'
        '[steps.figure]\nenv = "plot"\nsources = ["src/figure.py"]\nneeds = ["prepare"]\n'
        'run = "python3 src/figure.py"\noutputs = ["fit.png", "fit.svg", "fit.pdf"]\n',
    )
    reproflake("lock", cwd=project_copy)
    run = reproflake("verify", "figure", cwd=project_copy)
    assert "figure: reproducible" in run.stdout
    assert (project_copy / "results/figure/fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_debian_alternatives_are_set_up(project_copy: Path) -> None:
    """Debian's own numpy finds its BLAS through an alternative its postinst would make."""
    add_step(
        project_copy,
        '[environments.debnumpy]\ndebian = ["python3-numpy"]\n'
        '[steps.dot]\nenv = "debnumpy"\n'
        "run = \"python3 -c 'import numpy; print(numpy.dot([1.0, 2.0], [3.0, 4.0]))' > $OUT/dot.txt\"\n"
        'outputs = ["dot.txt"]\n',
    )
    reproflake("lock", cwd=project_copy)
    reproflake("build", "dot", cwd=project_copy)
    assert (project_copy / "results/dot/dot.txt").read_text().strip() == "11.0"


def test_independent_chains_build_in_parallel_and_verify_one_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "chains"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    salt = f"{os.getpid()}.{time.time_ns()}"  # new derivations: nothing is built yet
    for chain in "ab":
        add_step(
            root,
            f'[steps.{chain}1]\nenv = "base"\nrun = "echo {chain} {salt} > $OUT/o.txt"\n'
            'outputs = ["o.txt"]\n'
            f'[steps.{chain}2]\nenv = "base"\nneeds = ["{chain}1"]\n'
            f'run = "cat results/{chain}1/o.txt results/{chain}1/o.txt > $OUT/o.txt"\n'
            'outputs = ["o.txt"]\n',
        )
    reproflake("lock", cwd=root)
    run = reproflake("build", "-j", "2", cwd=root)
    # The template's own step `hello` may have been built before, by another test.
    assert re.search(r"summary: [45] built, [01] already built, 0 failed", run.stdout)
    assert all(f"finished {step} in" in run.stderr for step in ("a1", "a2", "b1", "b2"))
    assert (root / "results/b2/o.txt").read_text() == f"b {salt}\nb {salt}\n"
    checked = reproflake("verify", "-j", "1", "a2", "b2", cwd=root)
    assert "verified 2 step(s): all reproducible" in checked.stdout
