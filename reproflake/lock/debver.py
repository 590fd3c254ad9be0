"""Debian version comparison, exactly as dpkg's ``verrevcmp`` does it.

A version is ``[epoch:]upstream[-revision]``. The epoch compares numerically;
upstream and revision compare by alternating runs of non-digits (character by
character, with ``~`` before everything, even the end of the string, and letters
before all other characters) and digits (numerically). A missing revision equals
``0``, so ``1.0`` and ``1.0-0`` are the same version, as in dpkg.
"""

from __future__ import annotations

from dataclasses import dataclass

from reproflake.errors import LockError

# Relation operators of Depends fields. The single-character forms are
# deprecated in Debian policy but still accepted by dpkg with these meanings.
OPERATORS = ("<<", "<=", "=", ">=", ">>", "<", ">")


@dataclass(frozen=True)
class Version:
    epoch: int
    upstream: str
    revision: str


def parse(version: str) -> Version:
    """Split a version into epoch, upstream and revision; raise LockError if dpkg would."""
    text = version.strip()
    if not text:
        raise LockError("invalid Debian version: empty string")
    if any(c.isspace() for c in text):
        raise LockError(f"invalid Debian version {version!r}: contains whitespace")
    epoch = 0
    rest = text
    if ":" in text:
        epoch_text, rest = text.split(":", 1)
        if not epoch_text or not all(_isdigit(c) for c in epoch_text):
            raise LockError(f"invalid Debian version {version!r}: epoch is not a number")
        epoch = int(epoch_text)
        if not rest:
            raise LockError(f"invalid Debian version {version!r}: nothing after the epoch")
    # The revision is everything after the *last* hyphen: upstream may contain hyphens.
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not upstream:
        raise LockError(f"invalid Debian version {version!r}: empty upstream version")
    return Version(epoch, upstream, revision)


def _isdigit(c: str) -> bool:
    # str.isdigit() accepts non-ASCII digits such as "²"; dpkg only knows 0-9.
    return "0" <= c <= "9"


def _order(c: str) -> int:
    # dpkg's order(): '~' lowest, then end-of-run (0), then letters by code,
    # then everything else by code shifted above all letters.
    if c == "~":
        return -1
    if _isdigit(c):
        return 0
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not _isdigit(a[i])) or (j < len(b) and not _isdigit(b[j])):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        # Equal-length digit runs compare by their first differing digit; a
        # longer run (after stripping leading zeros) is the larger number.
        while i < len(a) and _isdigit(a[i]) and j < len(b) and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and _isdigit(a[i]):
            return 1
        if j < len(b) and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def compare(a: str, b: str) -> int:
    """Return -1, 0 or 1 as version ``a`` sorts before, equal to or after ``b``."""
    va, vb = parse(a), parse(b)
    if va.epoch != vb.epoch:
        return _sign(va.epoch - vb.epoch)
    result = _verrevcmp(va.upstream, vb.upstream)
    if result:
        return _sign(result)
    return _sign(_verrevcmp(va.revision, vb.revision))


def satisfies(version: str, op: str, bound: str) -> bool:
    """Whether ``version op bound`` holds, e.g. ``satisfies("3.11.2-1", ">=", "3.11")``."""
    c = compare(version, bound)
    if op == "<<":
        return c < 0
    if op in ("<=", "<"):
        return c <= 0
    if op == "=":
        return c == 0
    if op in (">=", ">"):
        return c >= 0
    if op == ">>":
        return c > 0
    raise LockError(
        f"unknown version relation {op!r} in '{op} {bound}'",
        hint="use one of << <= = >= >>",
    )
