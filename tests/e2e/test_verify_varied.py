"""`verify` varies what a step must not depend on, inside the sandbox, and names the files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.e2e.conftest import reproflake

# Each file depends on one thing the second build varies.
PROBES = {
    "today.txt": "date +%F",
    "cpus.txt": "nproc",
    "host.txt": "hostname",
    "umask.txt": "umask",
    "aslr.txt": "cat /proc/self/personality",
}


def _project(tmp_path: Path, extra: str = "") -> Path:
    root = tmp_path / "vary"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    salt = f"{os.getpid()}.{time.time_ns()}"  # new derivations: nothing is built yet
    run = "; ".join(f"{cmd} > $OUT/{name}" for name, cmd in PROBES.items())
    outputs = ", ".join(f'"{n}"' for n in PROBES)
    with (root / "reproflake.toml").open("a") as f:
        f.write(
            f'\n[steps.probe]\nenv = "base"\nrun = "echo {salt} > /dev/null; {run}"\n'
            f"outputs = [{outputs}]\n{extra}"
        )
    reproflake("lock", cwd=root)
    return root


def test_each_variation_is_seen_by_the_step_and_the_file_is_named(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = reproflake("verify", "probe", cwd=root, check=False)
    assert run.returncode == 1, run.output
    assert "probe: NOT reproducible" in run.stdout
    for name in PROBES:
        assert f"different: results/probe/{name}" in run.stdout, run.stdout
    # The first build is the ordinary one: the varied values are only in the second.
    assert (root / "results/probe/umask.txt").read_text() == "0022\n"
    assert "not bit-for-bit reproducible: probe" in run.stderr


def test_vary_chooses_what_changes(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = reproflake("verify", "--vary", "time", "--vary", "cpus", "probe", cwd=root, check=False)
    assert run.returncode == 1
    assert "different: results/probe/today.txt" in run.stdout
    assert "different: results/probe/cpus.txt" in run.stdout
    for name in ("host.txt", "umask.txt", "aslr.txt"):
        assert f"results/probe/{name}" not in run.stdout
    # A date shows where it differs (a byte summary without diffoscope, its report with it).
    assert "today.txt" in run.stdout and (
        "first difference at byte" in run.stdout or "@@" in run.stdout
    )
    plain = reproflake("verify", "--vary", "none", "probe", cwd=root)
    assert "probe: reproducible" in plain.stdout


def test_json_gives_a_verdict_per_step_environment_and_seed(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = reproflake("verify", "--json", "--vary", "umask", "probe", cwd=root, check=False)
    assert run.returncode == 1, run.output
    doc = json.loads(run.stdout)  # the whole of stdout is one document
    probe = doc["steps"]["probe"]
    assert probe["verdict"] == "different"
    assert probe["files"] == [
        {"path": "results/probe/umask.txt", "verdict": "different", "detail": ""}
    ]
    assert probe["first"] == os.readlink(root / "results/probe")
    assert probe["second"].startswith("/nix/store/") and probe["second"] != probe["first"]
    assert doc["environments"] == {"base": {"verdict": "identical", "log_tail": []}}
    assert doc["seed"] == {"verdict": "identical", "log_tail": []}
    assert doc["varied"] == ["umask"]
    assert doc["summary"] == {
        "identical": 2, "different": 1, "within-tolerance": 0, "could-not-verify": 0,
    }  # fmt: skip
    same = reproflake("verify", "--json", "--vary", "none", "probe", cwd=root)
    assert json.loads(same.stdout)["steps"]["probe"]["verdict"] == "identical"
    # An error is a document too, on stdout, with the exit code.
    unknown = reproflake("verify", "--json", "nosuchstep", cwd=root, check=False)
    assert unknown.returncode == 2
    error = json.loads(unknown.stdout)
    assert error["exit_code"] == 2 and "nosuchstep" in error["error"]


def test_declared_unreproducible_and_tolerance_are_reported_not_ignored(tmp_path: Path) -> None:
    root = tmp_path / "tol"
    reproflake("init", "--template", "minimal", str(root), cwd=tmp_path)
    salt = f"{os.getpid()}.{time.time_ns()}"
    with (root / "reproflake.toml").open("a") as f:
        f.write(
            '\n[steps.tol]\nenv = "base"\n'
            f'run = "echo {salt} > /dev/null; date > $OUT/report.html; '
            "printf 'x,1.00000000%s\\\\n' $(nproc) > $OUT/m.csv\"\n"
            'outputs = ["report.html", "m.csv"]\n'
            'unreproducible = ["report.html"]\n'
            'tolerance = { "m.csv" = 1e-6 }\n'
        )
    reproflake("lock", cwd=root)
    run = reproflake("verify", "tol", cwd=root)
    assert "tol: within tolerance" in run.stdout
    assert "declared unreproducible: results/tol/report.html" in run.stdout
    assert "within tolerance: results/tol/m.csv (largest difference 2e-09 <= 1e-06)" in run.stdout
    doc = json.loads(reproflake("verify", "--json", "tol", cwd=root).stdout)
    assert doc["steps"]["tol"]["verdict"] == "within-tolerance"
    assert doc["steps"]["tol"]["files"] == [
        {
            "path": "results/tol/m.csv",
            "verdict": "within-tolerance",
            "detail": "largest difference 2e-09 <= 1e-06",
        },
        {
            "path": "results/tol/report.html",
            "verdict": "declared-unreproducible",
            "detail": "declared in the spec's unreproducible",
        },
    ]
    # Tighter than the difference: a failure that names the file.
    text = (root / "reproflake.toml").read_text().replace("1e-6", "1e-12")
    (root / "reproflake.toml").write_text(text)
    strict = reproflake("verify", "tol", cwd=root, check=False)
    assert strict.returncode == 1
    assert (
        "different: results/tol/m.csv (largest difference 2e-09 > tolerance 1e-12)" in strict.stdout
    )
