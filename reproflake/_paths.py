"""Where reproflake's data lives: inside the installed package, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SPEC_FILE = "reproflake.toml"


def data_dir(name: str) -> Path:
    """``nix`` or ``templates``: packaged under _data/, else the checkout's top level."""
    packaged = PACKAGE / "_data" / name
    return packaged if packaged.is_dir() else PACKAGE.parent / name


def unusable_in_flake_path(path: Path) -> list[str]:
    """Characters Nix 2.8 cannot have in a flake's directory path (it makes an unescaped URL)."""
    return sorted({c for c in str(path.resolve()) if c in " #?%\"'" or not c.isprintable()})


def user_cache_dir() -> Path:
    """reproflake's cache in the user's home (``$XDG_CACHE_HOME/reproflake``)."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reproflake"


# The one system reproflake builds for (Debian's amd64), and where the flake keeps the
# attributes that are not packages.
SYSTEM = "x86_64-linux"
LEGACY = f"legacyPackages.{SYSTEM}"


def find_spec(start: Path) -> Path:
    """The reproflake.toml in ``start`` or its nearest parent. (Here, not in spec, so that
    shell completion finds the project without loading the validator.)"""
    from reproflake.errors import SpecError

    here = start.resolve()
    for directory in (here, *here.parents):
        candidate = directory / SPEC_FILE
        if candidate.is_file():
            return candidate
    raise SpecError(
        f"no {SPEC_FILE} in {here} or any parent directory",
        hint="run `reproflake init` to create a project, or cd into one",
    )
