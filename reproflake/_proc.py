"""The one place reproflake starts other programs.

Every subprocess goes through :func:`run` so that verbose mode echoes the
command, failures carry the command, exit code and output, and Ctrl-C stops
the child cleanly.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reproflake.errors import ReproflakeError

VERBOSE = bool(os.environ.get("REPROFLAKE_VERBOSE"))


class CommandError(ReproflakeError):
    """A command exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = (stderr or stdout).strip().splitlines()[-20:]
        super().__init__(
            f"command failed with exit code {returncode}: {shlex.join(self.argv)}"
            + ("\n" + "\n".join("  " + line for line in tail) if tail else "")
        )


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def _start(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
    stdin: bool,
) -> subprocess.Popen[str]:
    """Start ``argv`` in its own process group (so Ctrl-C reaches it through stop())."""
    if VERBOSE:
        print("+ " + shlex.join(argv), file=sys.stderr)
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if argv and os.path.basename(argv[0]).startswith("nix"):
            # Whichever Nix tool a command needs first, the fix is the same.
            raise ReproflakeError(
                f"Nix is not installed (no `{argv[0]}` on PATH)",
                hint="install Nix (on Debian: apt-get install nix-bin), then run the command "
                "again; see README.md",
            ) from exc
        raise ReproflakeError(f"cannot run {argv[0]!r}: not found on PATH") from exc


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
) -> Result:
    """Run ``argv`` to completion, capturing text output."""
    proc = _start(argv, cwd=cwd, env=env, stdin=input is not None)
    try:
        out, err = proc.communicate(input)
    except KeyboardInterrupt:
        stop(proc)
        raise
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, out, err)
    return Result(proc.returncode, out, err)


def stream(
    argv: Sequence[str],
    on_stderr: Callable[[str], None],
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ``argv``, handing each stderr line to ``on_stderr`` as it comes.

    stdout is collected on a thread of its own, so a child that writes a lot to
    both never blocks on a full pipe. Never raises for a non-zero exit.
    """
    proc = _start(argv, cwd=cwd, env=None, stdin=False)
    chunks: list[str] = []
    out, err = proc.stdout, proc.stderr
    assert out is not None and err is not None
    reader = threading.Thread(target=lambda: chunks.append(out.read()), daemon=True)
    reader.start()
    try:
        for line in err:
            on_stderr(line)
        proc.wait()
        reader.join()
    except KeyboardInterrupt:
        stop(proc)
        raise
    return Result(proc.returncode, "".join(chunks), "")


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a child (and its process group) politely, then firmly."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def interactive(argv: Sequence[str], *, env: Mapping[str, str]) -> int:
    """Run ``argv`` on this terminal with exactly ``env``; its exit status (128+N for signal N).

    The child keeps this process's group, so Ctrl-C reaches it (and an interactive shell
    handles it); this process ignores Ctrl-C meanwhile rather than dying under it."""
    if VERBOSE:
        print("+ " + shlex.join(argv), file=sys.stderr)
    try:
        proc = subprocess.Popen(list(argv), env=dict(env))
    except FileNotFoundError as exc:
        raise ReproflakeError(f"cannot run {argv[0]!r}: not found") from exc
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code
