"""The one error family. Only the CLI turns these into exit codes and messages."""

from __future__ import annotations


class ReproflakeError(Exception):
    """Base of every error reproflake reports to the user.

    ``exit_code`` is what the CLI exits with: 2 for usage and spec errors (the
    user must change their input), 1 for failures (a build or a fetch failed).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(ReproflakeError):
    """The command line or the project directory is not usable as given."""

    exit_code = 2


class ArchiveError(UsageError):
    """A release archive is unsafe or damaged: it is refused before anything is built."""


class SpecError(UsageError):
    """reproflake.toml is malformed or invalid."""


class CycleError(SpecError):
    """The steps' `needs` form a cycle."""


class LockError(ReproflakeError):
    """Pinning an input failed (resolution, download, hash mismatch)."""


class StaleLockError(LockError):
    """The lock is missing or does not match the spec: the user must run `reproflake lock`."""

    exit_code = 2


class InvalidLockError(LockError):
    """reproflake.lock is corrupt or contradicts itself: restore or regenerate it."""

    exit_code = 2


class HashMismatchError(LockError):
    """Downloaded or local content does not match its pinned hash."""

    exit_code = 2


class NixError(ReproflakeError):
    """Nix is missing or a Nix command failed."""


class BuildError(NixError):
    """One or more steps failed to build."""


class HardwareError(ReproflakeError):
    """A step's hardware constraints cannot be met here."""
