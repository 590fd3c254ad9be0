"""A cloned repository is hostile input; a careless user's machine is not a lab.

Real builds (real Nix, sandbox on): nothing outside the project leaks in because a
repository asked for it, stale bytes are never taken for current ones, special files
never hang a command, and a rebuild that crashed is never reported as a difference.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conftest import git, needs_nix, reproflake

from reproflake.executor import fixed_path
from reproflake.lock.hashing import nar_hash
from reproflake.lock.model import store_name

pytestmark = needs_nix


def append(root: Path, text: str) -> None:
    with open(root / "reproflake.toml", "a") as f:
        f.write("\n" + text)


def commit_all(root: Path) -> None:
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "change", cwd=root)


def test_a_committed_link_out_of_the_project_never_reaches_the_store(
    project_copy: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text(f"root:$y$secret-{uuid.uuid4()}:19000::::::\n")
    (project_copy / "data" / "leak").symlink_to(secret)
    append(
        project_copy,
        '[inputs.leak]\npath = "data/leak"\n'
        '[steps.steal]\nenv = "py"\ninputs = ["leak"]\n'
        'run = "cat data/leak > $OUT/stolen"\noutputs = ["stolen"]\n',
    )
    # The attacker's own machine allows it, locks, and commits link, spec and lock.
    allow = {"REPROFLAKE_READ_OUTSIDE": str(secret.parent)}
    reproflake("lock", cwd=project_copy, env=allow)
    commit_all(project_copy)
    clone = tmp_path / "clone"
    git("clone", "-q", str(project_copy), str(clone), cwd=tmp_path)
    where_in_store = fixed_path(nar_hash(secret), store_name("leak"), recursive=True)

    for command in (["build", "steal"], ["lock"], ["plan", "steal"]):
        run = reproflake(*command, cwd=clone, check=False)
        assert run.returncode == 2, run.output
        assert f"inputs.leak: data/leak is a link to {secret}, outside the project" in run.stderr
        assert "reproflake.toml:" in run.stderr
    assert not (clone / "results" / "steal").exists()
    assert not os.path.exists(where_in_store)
    assert secret.read_text() not in json.dumps(
        [p.read_text(errors="replace") for p in clone.rglob("*") if p.is_file()]
    )

    # This machine's user may allow it, and then the data is the input.
    run = reproflake("build", "steal", cwd=clone, env=allow)
    assert (clone / "results/steal/stolen").read_text() == secret.read_text()


def test_an_ignored_local_link_out_of_the_project_is_the_users_own(
    project_copy: Path, tmp_path: Path
) -> None:
    data = tmp_path / "scratch" / "big.csv"
    data.parent.mkdir()
    data.write_text("x,y\n1,2\n")
    (project_copy / "data" / "big.csv").symlink_to(data)
    with open(project_copy / ".gitignore", "a") as f:
        f.write("/data/big.csv\n")
    append(
        project_copy,
        '[inputs.big]\npath = "data/big.csv"\n'
        '[steps.count]\nenv = "py"\ninputs = ["big"]\n'
        'run = "wc -l < data/big.csv > $OUT/n"\noutputs = ["n"]\n',
    )
    reproflake("lock", cwd=project_copy)
    reproflake("build", "count", cwd=project_copy)
    assert (project_copy / "results/count/n").read_text().strip() == "2"


def test_a_same_size_rewrite_with_its_mtime_restored_is_seen(project_copy: Path) -> None:
    """What `cp -p` or `rsync --times` of an equally long file does."""
    data = project_copy / "data" / "measurements.csv"
    before = data.stat()
    text = data.read_text()
    # Same length, other numbers: every digit 1 becomes 2 (and back where it was 2).
    swapped = text.translate(str.maketrans("12", "21"))
    assert swapped != text and len(swapped.encode()) == before.st_size
    time.sleep(0.01)
    data.write_text(swapped)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    assert reproflake("lock", "--check", cwd=project_copy, check=False).returncode == 1
    old_clean = (project_copy / "results/prepare/clean.csv").read_text()
    run = reproflake("build", "prepare", cwd=project_copy)
    assert "input measurements changed" in run.stderr
    new_clean = (project_copy / "results/prepare/clean.csv").read_text()
    assert new_clean != old_clean


def test_a_fifo_never_hangs_build_or_lock(project_copy: Path, tmp_path: Path) -> None:
    os.mkfifo(project_copy / "src" / "pipe.py")
    append(
        project_copy,
        '[steps.globbed]\nenv = "py"\nsources = ["src/*.py"]\nrun = "ls src > $OUT/ls"\n'
        'outputs = ["ls"]\n',
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", "build", "globbed"],
        cwd=project_copy, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "src/pipe.py is a FIFO (named pipe), not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr
    os.unlink(project_copy / "src" / "pipe.py")

    fifo = tmp_path / "allowed" / "fifo"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    spec = project_copy / "reproflake.toml"
    spec.write_text(
        spec.read_text() + f'\n[inputs.pipe]\nurl = "file://{fifo}"\nsha256 = "{"0" * 64}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "reproflake", "lock"],
        cwd=project_copy, capture_output=True, text=True, timeout=120,
        env={**os.environ, "REPROFLAKE_READ_OUTSIDE": str(fifo.parent)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"inputs.pipe.url: {fifo} is a FIFO (named pipe), not a regular file" in proc.stderr
    assert time.monotonic() - started < 120


def test_hostile_values_reach_the_step_byte_for_byte(project_copy: Path) -> None:
    """Values a spec may hold that look like Nix or shell code are only ever data."""
    run_marker = "${builtins.currentTime} '' $(touch /tmp/pwned) `id` \"q\" 'q' \\n"
    variable = "${x} '' $(id) `id` \"a b\" -rf\ttab"
    odd_source = "src/-rf $(id) ${x} 'q'.txt"
    odd_output = "-n ${x} $(id) 'q' \"d\""
    (project_copy / odd_source).write_text("source bytes\n")
    step = {
        "env": "py",
        "sources": [odd_source],
        "variables": {"V": variable},
        "outputs": ["run.txt", "var.txt", odd_output],
        # The command writes its own text (between the markers) and the values it was given.
        "run": (
            "cat > \"$OUT/run.txt\" <<'REPROFLAKE_END'\n"
            + run_marker
            + "\nREPROFLAKE_END\n"
            + 'printf \'%s\' "$V" > "$OUT/var.txt"\n'
            + f'cp -- {shlex.quote(odd_source)} "$OUT"/{shlex.quote(odd_output)}\n'
        ),
    }
    append(project_copy, "[steps.hostile]\n" + "".join(
        f"{k} = {json.dumps(v) if not isinstance(v, dict) else '{ V = ' + json.dumps(v['V']) + ' }'}\n"
        for k, v in step.items()
    ))  # fmt: skip
    reproflake("build", "hostile", cwd=project_copy)
    out = project_copy / "results" / "hostile"
    assert (out / "run.txt").read_text() == run_marker + "\n"
    assert (out / "var.txt").read_text() == variable
    assert (out / odd_output).read_text() == "source bytes\n"
    assert not Path("/tmp/pwned").exists()


def test_lock_entries_nix_would_trip_over_are_named(project_copy: Path) -> None:
    path = project_copy / "reproflake.lock"
    good = path.read_text()
    doc = json.loads(good)
    doc["seed"]["nar_hash"] = "sha256-" + "A" * 43 + "="
    path.write_text(json.dumps(doc))
    with open(project_copy / "src/fit.py", "a") as f:
        f.write("# force the full path\n")
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "seed.nar_hash is sha256-AAAA" in run.stderr
    assert "store path mismatch" not in run.stderr

    doc = json.loads(good)
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    run = reproflake("build", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert '"version": 99 is not a lock format this reproflake reads' in run.stderr


def test_a_crashed_rebuild_is_could_not_verify(project_copy: Path, tmp_path: Path) -> None:
    """Nix stands in for a crash only on `--rebuild` (the real nix runs everything else)."""
    wrapper = tmp_path / "bin" / "nix"
    wrapper.parent.mkdir()
    real = subprocess.run(["sh", "-c", "command -v nix"], capture_output=True, text=True).stdout
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = --rebuild ] && { echo "error: unexpected EOF reading a line'
        ' (a simulated crash)" >&2; exit 1; }; done\n'
        f'exec {real.strip()} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{wrapper.parent}:{os.environ['PATH']}"}
    run = reproflake("verify", "prepare", cwd=project_copy, check=False, env=env)
    assert run.returncode == 1
    assert "environment py: could not verify: the rebuild failed" in run.stdout
    assert "a simulated crash" in run.stdout
    assert "NOT reproducible" not in run.stdout
    assert "prepare: reproducible" in run.stdout


def test_an_environment_without_the_essential_set_is_only_unpacked(project_copy: Path) -> None:
    """essential = false: dpkg may come in as a dependency, but maintainer scripts expect
    sed, grep, ... and are not run; the root is unpacked, and it verifies."""
    append(
        project_copy,
        "[environments.bare]\ndebian = []\nessential = false\n"
        '[steps.tiny]\nenv = "bare"\nrun = "echo tiny > $OUT/t"\noutputs = ["t"]\n',
    )
    reproflake("lock", cwd=project_copy)
    reproflake("build", "tiny", cwd=project_copy)
    assert (project_copy / "results/tiny/t").read_text() == "tiny\n"
    run = reproflake("verify", "tiny", "--vary", "none", cwd=project_copy)
    assert "environment bare: reproducible" in run.stdout
