"""`reproflake shell`'s glue: its command line and its refusal where namespaces are off."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reproflake import cli
from reproflake.commands import shell
from reproflake.lock.model import Lock
from reproflake.spec import Spec


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.main, list(args))


def test_everything_after_the_double_dash_is_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, ...]] = []

    def fake(start: Path, step: str | None, env: str | None, command: list[str], **_: Any) -> int:
        seen.append((step, env, command))
        return 7

    monkeypatch.setattr(shell, "run", fake)
    assert invoke("shell", "--env", "py", "--", "ls", "--env", "-l").exit_code == 7
    assert invoke("shell", "report", "--", "python3", "src/report.py").exit_code == 7
    assert invoke("shell", "report").exit_code == 7
    assert seen == [
        (None, "py", ["ls", "--env", "-l"]),
        ("report", None, ["python3", "src/report.py"]),
        ("report", None, []),
    ]


def test_a_command_without_the_double_dash_is_refused() -> None:
    result = invoke("shell", "report", "ls")
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name a step or an environment"),
        (("report", "--env", "py"), "name a step or --env, not both"),
    ],
)
def test_a_step_or_an_environment(args: tuple[str, ...], message: str) -> None:
    result = invoke("shell", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_refused_namespaces_are_named_with_what_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine that refuses user namespaces cannot be made here without changing the
    # kernel's settings for everyone: util-linux's unshare is stood in for, saying what
    # it says on such a machine.
    fake = tmp_path / "unshare"
    fake.write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(shell.NamespaceError) as caught:
        shell.check_namespaces()
    assert "user, mount and network namespace" in caught.value.message
    assert "unshare failed: Operation not permitted" in caught.value.message
    assert caught.value.hint is not None and "root" in caught.value.hint


def test_namespaces_allowed_here_pass_the_check() -> None:
    shell.check_namespaces()


def test_an_unknown_environment_gets_a_short_list_and_the_close_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_lock: Callable[[Spec], Lock]
) -> None:
    """As for every other hint: at most 20 names, how many more, and the close one."""
    from reproflake import executor
    from reproflake.errors import UsageError
    from tests.unit.locked_project import write_locked_project

    envs = "".join(f"[environments.env{i:02d}]\ndebian = []\n" for i in range(30))
    spec = (
        '[project]\nname = "p"\n[debian]\nmirror = "http://mirror.invalid/debian"\n'
        f'suite = "bookworm"\n{envs}[steps.a]\nenv = "env00"\nrun = "true"\noutputs = ["x"]\n'
    )
    root = write_locked_project(tmp_path / "p", spec, make_lock)
    monkeypatch.setattr(executor, "require_nix", lambda: None)
    with pytest.raises(UsageError) as err:
        shell.run(root, None, "env_07", [], log=lambda _m: None)
    listed = ", ".join(f"env{i:02d}" for i in range(20))
    assert err.value.hint == f"known environments: {listed}, … (10 more) (did you mean 'env07'?)"
