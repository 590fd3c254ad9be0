"""Global options before or after the subcommand; colour; quiet."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reproflake import _proc, cli


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli._Settings, "quiet", False)
    monkeypatch.setattr(cli._Settings, "color", None)
    monkeypatch.setattr(_proc, "VERBOSE", False)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.main, list(args), env=env or {})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["-C", "{d}", "plan"],
        ["plan", "-C", "{d}"],
        ["-v", "plan", "-C", "{d}"],
        ["plan", "-v", "-C", "{d}"],
    ],
)
def test_global_options_work_on_either_side(tmp_path: Path, args: list[str]) -> None:
    code, _out, err = run(*[a.format(d=tmp_path) for a in args])
    assert code == 2
    assert err.startswith(f"error: no reproflake.toml in {tmp_path.resolve()}")


def test_verbose_after_the_subcommand_echoes_commands(tmp_path: Path) -> None:
    run("plan", "-v", "-C", str(tmp_path))
    assert _proc.VERBOSE is True


def test_colour_follows_the_option_then_no_color(tmp_path: Path) -> None:
    _code, _out, err = run("plan", "-C", str(tmp_path), "--color", "always")
    assert err.startswith("\x1b[31merror: ")
    cli._Settings.color = None
    _code, _out, err = run("plan", "-C", str(tmp_path), env={"NO_COLOR": "1"})
    assert err.startswith("error: ") and "\x1b[" not in err
    # An explicit choice beats the environment.
    _code, _out, err = run("--color", "always", "plan", "-C", str(tmp_path), env={"NO_COLOR": "1"})
    assert "\x1b[31m" in err


def test_quiet_silences_progress_not_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli._log("progress line")
    assert capsys.readouterr().err == "progress line\n"
    _code, _out, err = run("graph", "-q", "-C", str(tmp_path))
    assert err.startswith("error: no reproflake.toml")  # errors still show
    cli._log("progress line")
    cli._out("a result")
    assert capsys.readouterr() == ("a result\n", "")
