"""Helpers shared by the benchmark scripts in bench/ (stdlib and reproflake only).

Every script times whole commands with time.perf_counter around subprocess.run, works in
a temporary directory it removes afterwards, prints a small table and writes one JSON
line to bench/out/<name>.json.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
OUT_DIR = BENCH / "out"
SYSTEM = "x86_64-linux"
# Other work on the machine skews timings: the 1-minute load average is recorded at the
# start and end of every run.
LOAD_AT_START = os.getloadavg()[0]


class BenchError(Exception):
    """A benchmark cannot go on; the message says why and what to do."""


def die(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        hints = {
            "nix": "install Nix (on Debian: apt-get install nix-bin)",
            "nix-store": "install Nix (on Debian: apt-get install nix-bin)",
            "reproflake": "install reproflake (pip install -e . in the repository)",
            "git": "install git",
        }
        lines = [f"  {n}: {hints.get(n, 'install it')}" for n in missing]
        die("required program(s) not on PATH: " + ", ".join(missing) + "\n" + "\n".join(lines))


def nix_options() -> list[str]:
    """The flags reproflake itself passes to every nix command."""
    try:
        from reproflake import executor
    except ImportError as exc:
        die(f"cannot import reproflake ({exc}); install it with pip install -e .")
    return executor.nix_options()


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command to completion; returns (wall seconds, result)."""
    full_env = None if env is None else {**os.environ, **env}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=full_env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BenchError(f"cannot run {argv[0]!r}: not found on PATH") from exc
    seconds = time.perf_counter() - start
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchError(
            f"command failed with exit code {proc.returncode}: {shlex.join(argv)}\n{tail}"
        )
    return seconds, proc


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"reproflake-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def new_project(parent: Path, template: str = "python", name: str = "proj") -> Path:
    """`reproflake init` a project (mirror and suite come from this host's apt sources)."""
    root = parent / name
    run(["reproflake", "init", "--template", template, str(root)])
    return root


GIT_AUTHOR = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]


def committed_built_project(
    command: Sequence[str], root: Path, template: str, env: Mapping[str, str] | None = None
) -> None:
    """A project of ``template`` at ``root``, locked, built and committed, made with the
    reproflake ``command`` (e.g. ``[sys.executable, "-m", "reproflake"]``)."""
    for args, cwd in ((["init", "--template", template, str(root)], None), (["lock"], root),
                      (["build"], root)):  # fmt: skip
        subprocess.run([*command, *args], cwd=cwd, check=True, capture_output=True, env=env)
    subprocess.run(["git", "init", "-q"], cwd=root, check=False, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", *GIT_AUTHOR, "commit", "-qm", "bench"], cwd=root, check=True)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def url_scheme(url: str) -> str:
    """Only the scheme of a URL: results never record mirror host names."""
    return urlsplit(url).scheme or "path"


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nix_version = "none"
    with contextlib.suppress(BenchError):
        nix_version = run(["nix", "--version"])[1].stdout.strip()
    return {
        "reproflake": reproflake_revision(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nix": nix_version,
        "loadavg_1m_start": round(LOAD_AT_START, 2),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
    }


def reproflake_revision() -> str:
    """The commit of the reproflake checkout being measured, "+dirty" if its code is edited."""
    try:
        import reproflake
    except ImportError:
        return "not importable"
    repo = Path(reproflake.__file__).resolve().parent.parent
    try:
        head = run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])[1].stdout.strip()
        status = run(["git", "-C", str(repo), "status", "--porcelain", "--", "reproflake", "nix"])
    except BenchError:
        return "unknown"
    return head + ("+dirty" if status[1].stdout.strip() else "")


def launcher() -> str:
    """What `reproflake` on PATH is: a console script, or a wrapper such as a pyenv shim."""
    path = shutil.which("reproflake")
    if path is None:
        return "none"
    with contextlib.suppress(OSError, UnicodeDecodeError), open(path, encoding="utf-8") as f:
        return f"{path} ({f.readline().strip()})"
    return path


def command_line() -> str:
    return shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_result(name: str, record: Mapping[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    doc = {"benchmark": name, "command": command_line(), "machine": machine(), **record}
    path.write_text(json.dumps(doc, sort_keys=True) + "\n")
    return path


def main(fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)
