from __future__ import annotations

import shutil
import subprocess

import pytest

from reproflake.errors import LockError
from reproflake.lock.debver import compare, parse, satisfies

# (a, b, sign of compare(a, b)) — each row is a rule of dpkg's ordering.
TABLE = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),  # a missing revision equals revision 0
    ("1.0-1", "1.0-2", -1),
    ("1.0-10", "1.0-9", 1),  # digit runs compare numerically
    ("1.01", "1.1", 0),  # leading zeros do not count
    ("1.10", "1.9", 1),
    ("0:1.0", "1.0", 0),  # epoch 0 is the default
    ("1:0.1", "9.9", 1),  # epoch beats everything
    ("2:1.0", "10:0.1", -1),  # epochs compare numerically
    ("1.0~rc1", "1.0", -1),  # '~' sorts before the end of the string
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~~a", "1.0~~", 1),
    ("1.0~", "1.0", -1),
    ("1.0a", "1.0", 1),  # any letter after the end sorts later
    ("1.0a", "1.0+", -1),  # letters before non-letters
    ("1.0a", "1.0.", -1),
    ("1.0+", "1.0.", -1),  # non-letters by ASCII: '+' < '.'
    ("1.0+b1", "1.0", 1),  # binNMU suffix
    ("1.0A", "1.0a", -1),  # uppercase before lowercase (ASCII)
    ("1.0z", "1.0+", -1),
    ("3.11.2-6+deb12u6", "3.11.2-6", 1),
    ("3.11.2-6+deb12u6", "3.11.2-6+deb12u10", -1),
    ("2.36-9+deb12u4", "2.36-9+deb12u10", -1),
    ("1.2.3-4ubuntu1", "1.2.3-4", 1),
    ("1.0-1~bpo12+1", "1.0-1", -1),  # backports sort before the release
    ("7.4.052-1ubuntu3", "7.4.052-1ubuntu3.1", -1),
    ("1.0-a-1", "1.0-a", 1),  # the revision is after the last hyphen
    ("a", "b", -1),
    ("9", "10", -1),
    ("0.0", "0", 1),
    ("1.2.3", "1.2.3.0", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), TABLE)
def test_compare_table(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg not installed")
@pytest.mark.parametrize(("a", "b", "expected"), TABLE)
def test_compare_agrees_with_dpkg(a: str, b: str, expected: int) -> None:
    op = {-1: "lt", 0: "eq", 1: "gt"}[expected]
    # dpkg warns (but answers) for versions not starting with a digit.
    result = subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True)
    assert result.returncode == 0


@pytest.mark.parametrize(
    ("version", "op", "bound", "expected"),
    [
        ("1.0", "<<", "1.1", True),
        ("1.1", "<<", "1.1", False),
        ("1.1", "<=", "1.1", True),
        ("1.2", "<=", "1.1", False),
        ("1.1", "=", "1.1-0", True),
        ("1.1", "=", "1.1-1", False),
        ("1.1", ">=", "1.1", True),
        ("1.0", ">=", "1.1", False),
        ("1.2", ">>", "1.1", True),
        ("1.1", ">>", "1.1", False),
        ("1.1", "<", "1.1", True),  # legacy '<' means '<='
        ("1.1", ">", "1.1", True),  # legacy '>' means '>='
        ("3.11.2-1+b1", ">=", "3.11", True),
        ("3.11~rc1", ">=", "3.11", False),
    ],
)
def test_satisfies(version: str, op: str, bound: str, expected: bool) -> None:
    assert satisfies(version, op, bound) is expected


def test_unknown_operator() -> None:
    with pytest.raises(LockError, match="unknown version relation"):
        satisfies("1.0", "!=", "1.0")


def test_parse_parts() -> None:
    v = parse("2:1.0-rc-3+deb12u1")
    assert (v.epoch, v.upstream, v.revision) == (2, "1.0-rc", "3+deb12u1")
    assert parse("1.0").revision == ""


@pytest.mark.parametrize("bad", ["", "  ", "a:1.0", "1:", "1.0 beta", "-1", ":1.0"])
def test_invalid_versions(bad: str) -> None:
    with pytest.raises(LockError, match="invalid Debian version"):
        parse(bad)
