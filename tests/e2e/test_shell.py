"""`reproflake shell`: a step's environment as the step sees it, entered outside Nix."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from conftest import needs_nix, raw_nix_build, reproflake

pytestmark = needs_nix

# An awkward value: quotes, a dollar sign, a backslash and trailing newlines must all
# arrive as written (the description stores each variable in a file of its own).
WEIRD = 'it\'s "$HOME" \\n\n\n'


def add_step(root: Path, text: str) -> None:
    with open(root / "reproflake.toml", "a") as f:
        f.write("\n" + text)


def test_a_step_sees_its_declared_files_only_and_no_network(project_copy: Path) -> None:
    # A port on this machine's loopback that the shell's command would reach if it shared
    # the host's network.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
            "    print('network: reached')\n"
            "except OSError as e:\n"
            "    print('network: unreachable', e.errno)\n"
        )
        script = (
            "find /work -mindepth 1 | sort; "
            "cat results/fit/model.json >/dev/null && echo 'fit: readable'; "
            "touch \"$OUT/new\" && echo 'OUT: writable'; "
            "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; "
            f'python3 -c "{probe}"; exit 7'
        )
        run = reproflake("shell", "report", "--", "sh", "-c", script, cwd=project_copy, check=False)
    assert run.returncode == 7, run.output
    lines = run.stdout.splitlines()
    # The sources, inputs and results report declares; not data/ nor the other steps' sources.
    assert lines[:6] == [
        "/work/results",
        "/work/results/fit",
        "/work/results/prepare",
        "/work/results/report",
        "/work/src",
        "/work/src/report.py",
    ], run.output
    assert lines[6:10] == ["fit: readable", "OUT: writable", "lo", "network: unreachable 101"]
    # Nothing of the session reaches the project: its results are Nix's, untouched.
    assert not (project_copy / "results/report/new").exists()


def test_the_variables_are_the_steps(project_copy: Path) -> None:
    add_step(
        project_copy,
        "[steps.probe]\n"
        'env = "py"\n'
        'run = "true"\n'
        'outputs = ["x"]\n'
        'sources = ["src/fit.py"]\n'
        'inputs = ["measurements"]\n'
        f'variables = {{ WEIRD = {json.dumps(WEIRD)}, DEGREE = "3" }}\n',
    )
    dump = "import json, os; print(json.dumps(dict(os.environ), sort_keys=True))"
    run = reproflake("shell", "probe", "--", "python3", "-c", dump, cwd=project_copy)
    env = json.loads(run.stdout)
    lock = json.loads((project_copy / "reproflake.lock").read_text())
    assert env.pop("WEIRD") == WEIRD
    assert env == {
        "DEGREE": "3",
        "FORCE_SOURCE_DATE": "1",
        "HOME": "/tmp/home",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "1",
        "OUT": "/work/results/probe",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "PERL_HASH_SEED": "0",
        "PERL_PERTURB_KEYS": "0",
        "PWD": "/work",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "REPROFLAKE_STEP": "probe",
        "SOURCE_DATE_EPOCH": str(lock["source-date-epoch"]),
        "TMPDIR": "/tmp",
        "TZ": "UTC",
    }
    files = reproflake("shell", "probe", "--", "find", "/work", "-mindepth", "1", cwd=project_copy)
    assert sorted(files.stdout.split()) == [
        "/work/data",
        "/work/data/measurements.csv",
        "/work/results",
        "/work/results/probe",
        "/work/src",
        "/work/src/fit.py",
    ]


def test_an_interactive_shell_reads_its_commands(project_copy: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", "shell", "prepare"],
        cwd=project_copy,
        input='echo "shell: $0 in $PWD"; exit 4\n',
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == "shell: /bin/bash in /work\n"


def test_an_environment_alone(project_copy: Path) -> None:
    run = reproflake(
        "shell", "--env", "py", "--", "sh", "-c",
        'find /work; python3 -c "import numpy; print(numpy.__version__)"',
        cwd=project_copy,
    )  # fmt: skip
    assert run.stdout.split() == ["/work", "/work/results", "/work/results/shell", "2.2.6"]


def test_a_user_other_than_root_enters_it(project_copy: Path, tmp_path: Path) -> None:
    # Nix's store belongs to root here (no daemon), so root realises the description;
    # entering it is what must work for anyone.
    reproflake("shell", "fit", "--", "true", cwd=project_copy)
    description = raw_nix_build(project_copy, "legacyPackages.x86_64-linux.shells.steps.fit")
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to run as another user"
    enter = (
        "import sys; from pathlib import Path; from reproflake.commands import shell; "
        f"sys.exit(shell.enter(Path({description!r}), sys.argv[1:]))"
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o777)
    scratch.chmod(0o777)
    proc = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-c", enter,
         "sh", "-c", 'ls /work/results/prepare; touch "$OUT/model.json"; id -u; exit 3'],
        env={**os.environ, "TMPDIR": str(scratch)},
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["clean.csv", "0"]
    assert list(scratch.iterdir()) == []  # its scratch directory is gone
