"""What a project may read outside its own directory: nothing, unless this machine's user says so.

A spec, its lock and every file of a cloned repository are someone else's words. A
repository that commits ``data/leak -> /etc/shadow`` and declares it as an input, or
names ``file:///home/you/.ssh/id_ed25519`` as a URL input, must not get that file
hashed, copied into the Nix store or handed to a step. The rule:

- a local path (an input, a source file) must resolve inside the project directory;
- a link that leaves it is accepted only if the link is this machine's own: git
  ignores it and does not track it (a clone never brings such a link), or
- the target lies under a directory this machine's user allowed: the
  ``REPROFLAKE_READ_OUTSIDE`` variable (directories separated by ``:``) or
  ``read_outside = [...]`` in ``$XDG_CONFIG_HOME/reproflake/config.toml``.
- a ``file://`` URL in the spec (input, Debian mirror, Python index) follows the same
  rule: inside the project, or under an allowed directory.

Anything else is refused before it is opened, naming the link and its target.
"""

from __future__ import annotations

import functools
import os
import stat
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from reproflake.errors import UsageError

ENV_VAR = "REPROFLAKE_READ_OUTSIDE"
ALLOW_HINT = (
    f"allow a directory on this machine with {ENV_VAR}=/that/dir, or read_outside = "
    '["/that/dir"] in ~/.config/reproflake/config.toml'
)


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "reproflake" / "config.toml"


def allowed_dirs() -> tuple[Path, ...]:
    """The directories this machine's user lets projects read from (resolved)."""
    config = config_file()
    try:
        st = config.stat()
        version = (st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    except OSError:
        version = (0, 0, -1)
    return _allowed(os.environ.get(ENV_VAR, ""), str(config), version)


@functools.lru_cache(maxsize=4)
def _allowed(env_value: str, config: str, _version: tuple[int, int, int]) -> tuple[Path, ...]:
    found = [p for p in env_value.split(os.pathsep) if p]
    try:
        import tomllib

        with open(config, "rb") as f:
            doc = tomllib.load(f)
        listed = doc.get("read_outside", [])
        if isinstance(listed, list):
            found += [str(p) for p in listed if isinstance(p, str) and p]
    except (OSError, ValueError):
        pass
    return tuple(
        Path(p).expanduser().resolve() for p in found if Path(p).expanduser().is_absolute()
    )


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def is_allowed(resolved: Path, root: Path) -> bool:
    """Whether a resolved path may be read for the project in ``root``."""
    return _inside(resolved, root.resolve()) or any(_inside(resolved, d) for d in allowed_dirs())


def _leaving_link(root: Path, rel: str) -> tuple[str, str] | None:
    """The first link along ``rel`` whose target takes the path out of the project."""
    base = root.resolve()
    current = base
    parts = Path(rel).parts
    for i, part in enumerate(parts):
        candidate = current / part
        if candidate.is_symlink():
            target = os.readlink(candidate)
            resolved = candidate.resolve()
            if not _inside(resolved, base):
                return "/".join(parts[: i + 1]), target
            current = resolved
        else:
            current = candidate
    return None


def _local_link(root: Path, link: str) -> bool:
    """A link git ignores and does not track: made on this machine, not brought by a clone."""
    from reproflake import project

    repo = project.repository(root)
    if repo is None:
        return False
    name = project.in_repo(repo, root, link)
    return bool(repo.path_is_ignored(name)) and name not in repo.index


def local_path(root: Path, rel: str, where: str) -> Path:
    """``root/rel`` resolved, refused if a link takes it outside the project uninvited.

    ``where`` starts the message (``file:line: inputs.raw``)."""
    full = root / rel
    resolved = full.resolve()
    if is_allowed(resolved, root):
        return resolved
    found = _leaving_link(root, rel)
    link, target = found if found is not None else (rel, str(resolved))
    if found is not None and _local_link(root, link):
        return resolved
    raise UsageError(
        f"{where}: {link} is a link to {target}, outside the project; reproflake does not read "
        "files outside the project because a repository's link points there",
        hint="copy the data into the project, or, if you made this link yourself, make git "
        f"ignore it (add it to .gitignore); or {ALLOW_HINT}",
    )


def local_paths(root: Path, rels: Sequence[str], where: Callable[[], str]) -> None:
    """Check many matched files at once; only links (or linked directories) cost more.

    ``where`` makes the start of a message, called only for a link: finding a key's line
    scans the spec, which a project of many steps must not do once per step. Plain strings
    and cached directory lookups: a project of 10,000 steps checks every file on each plan."""
    top = str(root)
    base = _resolved_dir(top)
    for rel in rels:
        full = os.path.join(top, rel)
        parent = _resolved_dir(full.rsplit("/", 1)[0])
        if (parent == base or parent.startswith(base.rstrip("/") + "/")) and not os.path.islink(
            full
        ):
            continue
        local_path(root, rel, where())


@functools.lru_cache(maxsize=4096)
def _resolved_dir(path: str) -> str:
    return os.path.realpath(path)


def file_url_path(url: str) -> Path | None:
    """The local path of a ``file://`` URL, or None for any other URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(urllib.parse.unquote(parts.path))


def file_url(root: Path, url: str, where: str) -> Path | None:
    """A ``file://`` URL's path if the project may read it; None for other URLs."""
    path = file_url_path(url)
    if path is None:
        return None
    resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
    if not is_allowed(resolved, root):
        raise UsageError(
            f"{where}: {url} is outside the project; reproflake does not read files outside the "
            "project because its spec names them",
            hint=f"copy the file into the project and use a path input, or {ALLOW_HINT}",
        )
    return resolved


def regular_file(path: Path, what: str) -> os.stat_result:
    """stat ``path`` (following links) and refuse anything but a regular file, before
    opening it: a FIFO would block forever, a device would read without end."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(
            f"{what}: cannot read {path}: {exc.strerror}", hint="fix the path, or restore the file"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(
            f"{what}: {path} is {describe_mode(st.st_mode)}, not a regular file",
            hint="point it at a regular file",
        )
    return st


def describe_mode(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"
