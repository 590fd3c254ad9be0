"""Pin Python wheels with uv: one wheel per package, for one target interpreter and platform.

The target (Python version, glibc, CPU) is the Debian system the Nix build runs on, not
the host running reproflake, so uv resolves for an explicit ``--python-version`` and
``--python-platform`` and only binary distributions are allowed: reproflake installs wheels
and never builds from source. Package indexes come from pip's configuration (or the user's
spec); none is written into this module. pip's constraint files (``constraint =``,
``PIP_CONSTRAINT``) narrow the resolution as they narrow ``pip install``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from reproflake._proc import CommandError, run
from reproflake.errors import LockError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the package still declares Python 3.10 support
    import tomli as tomllib

# --------------------------------------------------------------------------- index config


@dataclass(frozen=True)
class IndexConfig:
    """Where packages come from, and the constraint files that narrow which versions may
    be chosen. ``index_url=None`` means uv's own default index."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()


# pip's site-wide file besides those under $XDG_CONFIG_DIRS, and the one of the running
# Python environment (module constants so tests can point them elsewhere).
_ETC_PIP_CONF = Path("/etc/pip.conf")
_SITE_PIP_CONF = Path(sys.prefix) / "pip.conf"

# The pip options that say where packages come from and which versions are allowed.
# extra-index-url, find-links and constraint may be given several times; pip splits their
# configured values on whitespace.
_INDEX_OPTIONS = ("index-url", "extra-index-url", "find-links", "constraint")


def index_from_pip_config(env: Mapping[str, str] | None = None) -> IndexConfig:
    """Read the index and constraint settings `pip install` would use, without importing pip.

    Mirrors pip's precedence: files are merged per ``section.key`` (later files win), then
    ``[global]`` is applied, then ``[install]``, then ``PIP_*`` environment variables.
    """
    environ = os.environ if env is None else env
    merged: dict[str, str] = {}
    for path in pip_config_files(environ):
        merged.update(_read_pip_config_file(path))
    options: dict[str, str] = {}
    for section in ("global", "install"):
        prefix = section + "."
        options.update({k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)})
    options.update(_pip_env_options(environ))
    index_url = options.get("index-url", "").strip() or None
    return IndexConfig(
        index_url=index_url,
        extra_index_urls=tuple(options.get("extra-index-url", "").split()),
        find_links=tuple(options.get("find-links", "").split()),
        constraints=tuple(options.get("constraint", "").split()),
    )


def pip_config_files(env: Mapping[str, str]) -> list[Path]:
    """pip's configuration files on Linux, lowest priority first (only those that exist)."""
    config_file = env.get("PIP_CONFIG_FILE")
    if config_file == os.devnull:
        # pip's documented switch: PIP_CONFIG_FILE=/dev/null loads no file at all.
        return []
    xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files.append(_ETC_PIP_CONF)
    home = env.get("HOME")
    env_file_exists = config_file is not None and Path(config_file).exists()
    # pip skips the user's files when PIP_CONFIG_FILE names an existing file.
    if home and not env_file_exists:
        xdg_home = env.get("XDG_CONFIG_HOME") or str(Path(home) / ".config")
        files += [Path(home) / ".pip" / "pip.conf", Path(xdg_home) / "pip" / "pip.conf"]
    files.append(_SITE_PIP_CONF)
    if config_file:
        files.append(Path(config_file))
    return [f for f in files if f.is_file()]


def _read_pip_config_file(path: Path) -> dict[str, str]:
    """``{"section.key": value}`` of one file, keys normalised the way pip does."""
    # pip uses RawConfigParser: no %-interpolation, values verbatim.
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot parse pip configuration file {path}: {exc}") from exc
    return {
        f"{section}.{_pip_key(key)}": value
        for section in parser.sections()
        for key, value in parser.items(section)
    }


def _pip_env_options(env: Mapping[str, str]) -> dict[str, str]:
    """Index and constraint options from ``PIP_*`` variables (``PIP_EXTRA_INDEX_URL`` ->
    extra-index-url, ``PIP_CONSTRAINT`` -> constraint)."""
    options = {}
    for name, value in env.items():
        if name.startswith("PIP_") and _pip_key(name[4:]) in _INDEX_OPTIONS:
            options[_pip_key(name[4:])] = value
    return options


def _pip_key(name: str) -> str:
    return name.lower().replace("_", "-").removeprefix("--")


# --------------------------------------------------------------------------- wheel tags


def supported_tags(python_version: str, glibc: str, arch: str) -> list[tuple[str, str, str]]:
    """Tags a CPython of that version on that glibc/CPU installs, most specific first.

    Same order as ``packaging.tags.sys_tags`` (cpython_tags, then compatible_tags), which is
    the order pip prefers wheels in.
    """
    minor = _python_minor(python_version)
    platforms = _linux_platforms(glibc, arch)
    cp = f"cp3{minor}"
    tags = [(cp, cp, p) for p in platforms]
    tags += [(cp, "abi3", p) for p in platforms]
    tags += [(cp, "none", p) for p in platforms]
    for older in range(minor - 1, 1, -1):
        tags += [(f"cp3{older}", "abi3", p) for p in platforms]
    pys = [f"py3{minor}", "py3", *(f"py3{m}" for m in range(minor - 1, -1, -1))]
    for py in pys:
        tags += [(py, "none", p) for p in platforms]
    tags.append((cp, "none", "any"))
    tags += [(py, "none", "any") for py in pys]
    return tags


# manylinux1 and manylinux2010 exist only for these CPUs (PEP 513, PEP 571).
_LEGACY_MANYLINUX = {
    (2, 17): (
        "manylinux2014",
        {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
    ),
    (2, 12): ("manylinux2010", {"x86_64", "i686"}),
    (2, 5): ("manylinux1", {"x86_64", "i686"}),
}


def _linux_platforms(glibc: str, arch: str) -> list[str]:
    """manylinux_2_N for N from the target's glibc down to the oldest, then linux_<arch>."""
    major, minor = _glibc_version(glibc)
    # As in packaging: x86 manylinux starts at glibc 2.5, every other CPU at 2.17.
    oldest = 5 if arch in ("x86_64", "i686") else 17
    platforms = []
    for glibc_minor in range(minor, oldest - 1, -1):
        platforms.append(f"manylinux_{major}_{glibc_minor}_{arch}")
        legacy = _LEGACY_MANYLINUX.get((major, glibc_minor))
        if legacy and arch in legacy[1]:
            platforms.append(f"{legacy[0]}_{arch}")
    platforms.append(f"linux_{arch}")
    return platforms


def wheel_tags(filename: str) -> list[tuple[str, str, str]]:
    """Expand a wheel filename's compressed tag set (``py2.py3-none-any``) into tags."""
    stem = filename.removesuffix(".whl")
    parts = stem.split("-")
    if stem == filename or len(parts) not in (5, 6):
        raise LockError(f"not a wheel filename: {filename!r}")
    pys, abis, plats = parts[-3:]
    return [
        (py, abi, plat)
        for py in pys.split(".")
        for abi in abis.split(".")
        for plat in plats.split(".")
    ]


def select_wheel(
    filenames: Sequence[str], python_version: str, glibc: str, arch: str
) -> str | None:
    """The one wheel to install on the target: most specific matching tag, ties by filename.

    None when no filename is installable there.
    """
    rank = {tag: i for i, tag in enumerate(supported_tags(python_version, glibc, arch))}
    best: tuple[int, str] | None = None
    for filename in filenames:
        ranks = [rank[t] for t in wheel_tags(filename) if t in rank]
        if ranks and (best is None or (min(ranks), filename) < best):
            best = (min(ranks), filename)
    return None if best is None else best[1]


def _python_minor(python_version: str) -> int:
    match = re.fullmatch(r"3\.(\d+)(?:\.\d+)?", python_version)
    if not match:
        raise UsageError(f"unsupported target Python version {python_version!r} (want 3.X)")
    return int(match.group(1))


def _glibc_version(glibc: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[._](\d+)", glibc)
    if not match:
        raise UsageError(f"invalid glibc version {glibc!r} (want e.g. 2.36)")
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None


@dataclass(frozen=True)
class PythonLock:
    requirements: tuple[str, ...]
    python_version: str
    platform: str
    wheels: tuple[Wheel, ...]
    pylock: str


# The manylinux glibc minors uv 0.13 accepts in --python-platform (x86_64 and aarch64).
_UV_GLIBC_MINORS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)

# UV_* variables that change nothing about what gets resolved (transport, TLS, credentials)
# and may be needed to reach the index. Every other UV_* variable is dropped for uv's run:
# UV_INDEX_URL, UV_EXCLUDE_NEWER, UV_CONSTRAINT, ... would silently change the lock.
_UV_ENV_KEEP = re.compile(
    r"UV_(NATIVE_TLS|INSECURE_HOST|HTTP_TIMEOUT|REQUEST_TIMEOUT|HTTP_RETRIES|"
    r"CONCURRENT_DOWNLOADS|KEYRING_PROVIDER|NO_PROGRESS|INDEX_[A-Z0-9_]+_(USERNAME|PASSWORD))"
)


def resolve(
    requirements: Sequence[str],
    python_version: str,
    glibc: str,
    arch: str,
    index: IndexConfig,
    cache_dir: Path,
    *,
    exclude_newer: str | None = None,
) -> PythonLock:
    """Resolve ``requirements`` for CPython ``python_version`` on ``arch`` Linux with ``glibc``.

    ``exclude_newer`` (an RFC 3339 timestamp or date) is passed to uv only when given; it
    must be a fixed value for the lock to be reproducible later.
    """
    _check_requirements(requirements)
    _python_minor(python_version)
    platform = f"{arch}-manylinux_{'_'.join(map(str, _glibc_version(glibc)))}"
    argv = [
        *_env_prefix(),
        _uv_bin(),
        *_uv_compile_args(python_version, _uv_platform(glibc, arch), index, cache_dir),
        *(["--exclude-newer", exclude_newer] if exclude_newer else []),
    ]
    cache_dir.mkdir(parents=True, exist_ok=True)
    # uv runs in an empty directory so no pyproject.toml or .python-version near the
    # caller's working directory can influence it.
    with tempfile.TemporaryDirectory(prefix="reproflake-uv-") as workdir:
        try:
            result = run(argv, cwd=workdir, input="".join(r + "\n" for r in requirements))
        except CommandError as exc:
            raise _uv_failure(exc, python_version, platform) from None
    doc = _parse_pylock(result.stdout)
    packages = [
        _pin_package(p, python_version, glibc, arch, platform) for p in doc.get("packages", [])
    ]
    doc["packages"] = [p for p, _ in packages]
    return PythonLock(
        requirements=tuple(requirements),
        python_version=python_version,
        platform=platform,
        wheels=tuple(sorted((w for _, w in packages), key=lambda w: w.name)),
        pylock=dump_toml(doc),
    )


def _uv_compile_args(
    python_version: str, uv_platform: str, index: IndexConfig, cache_dir: Path
) -> list[str]:
    args = [
        "pip", "compile", "-",
        "--format", "pylock.toml",
        "--python-version", python_version,
        "--python-platform", uv_platform,
        "--only-binary", ":all:",
        # Ignore uv.toml / pyproject [tool.uv]: the lock depends on the spec alone.
        "--no-config",
        # uv's header names the command (and thus temp paths); the output must be stable.
        "--no-header",
        # pip considers every index and takes the best version; the index settings come
        # from pip's configuration, so resolve the way pip would with them.
        "--index-strategy", "unsafe-best-match",
        "--cache-dir", str(cache_dir.absolute()),
        "--color", "never",
        "--no-progress",
    ]  # fmt: skip
    if index.index_url:
        args += ["--index-url", _absolute_location(index.index_url)]
    for url in index.extra_index_urls:
        args += ["--extra-index-url", _absolute_location(url)]
    for link in index.find_links:
        args += ["--find-links", _absolute_location(link)]
    # uv reads constraint files as pip does (a file or a URL, `-c` lines inside followed).
    for constraint in index.constraints:
        args += ["--constraint", _absolute_location(constraint)]
    return args


def _check_requirements(requirements: Sequence[str]) -> None:
    """Reject what would turn the requirements file fed to uv into something else."""
    for req in requirements:
        # A line such as "--index-url ..." or "-r other.txt" would be obeyed by uv.
        if not req.strip() or req.lstrip().startswith("-") or "\n" in req or "\r" in req:
            raise UsageError(
                f"invalid Python requirement {req!r}",
                hint="give one PEP 508 requirement per entry, e.g. 'numpy==2.2.6'",
            )


def _uv_platform(glibc: str, arch: str) -> str:
    """uv's --python-platform: the newest manylinux level uv knows that the target runs.

    Wheels for a level between that and the target's glibc are then not considered; that
    only narrows the choice, it never admits a wheel the target cannot load.
    """
    major, minor = _glibc_version(glibc)
    known = [m for m in _UV_GLIBC_MINORS if m <= minor]
    if arch not in ("x86_64", "aarch64") or major != 2 or not known:
        raise UsageError(
            f"cannot resolve Python wheels for {arch} with glibc {glibc}",
            hint="supported targets: x86_64 or aarch64 Linux with glibc 2.17 or newer",
        )
    return f"{arch}-manylinux_2_{known[-1]}"


def _env_prefix() -> list[str]:
    """``env -u NAME ...`` for UV_* variables that would leak into the resolution.

    _proc.run can add variables but not remove them, hence the env(1) wrapper.
    """
    drop = sorted(k for k in os.environ if k.startswith("UV_") and not _UV_ENV_KEEP.fullmatch(k))
    if not drop:
        return []
    return ["env", *(arg for name in drop for arg in ("-u", name))]


def _uv_bin() -> str:
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise LockError(
                "uv is not installed", hint="install reproflake with its dependencies"
            ) from None
        return found


def _absolute_location(location: str) -> str:
    """Make a local path absolute, since uv runs elsewhere; leave URLs alone."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", location):
        return _absolute_file_url(location)
    return os.path.abspath(os.path.expanduser(location))


def _absolute_file_url(url: str) -> str:
    """A ``file:`` URL with a relative path becomes absolute; any other URL is unchanged."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return url
    path = unquote(parts.path)
    return url if os.path.isabs(path) else Path(os.path.abspath(path)).as_uri()


# Where uv says a package has no wheel usable on the target (the requirement, or the name).
# Every repetition is bounded, and only the start of uv's text is searched: a regular
# expression over text that echoes the user's requirements must stay linear.
_NO_WHEEL_PATTERNS = (
    re.compile(r"Wheels are required for `([^`\n]{1,300})`"),
    re.compile(r"(?<!\S)(\S{1,300}) has no usable wheels"),
    re.compile(r"(?<!\S)(\S{1,300}) has no wheels with a matching"),
)
_SEARCHED_BYTES = 64 * 1024


def _uv_failure(exc: CommandError, python_version: str, platform: str) -> LockError:
    """LockError with uv's own explanation, naming the package when it lacks wheels."""
    stderr = exc.stderr[:_SEARCHED_BYTES]
    lines = [line.rstrip()[:500] for line in stderr.strip().splitlines() if line.strip()]
    detail = "\n".join("  " + line for line in lines[:40]) or f"  (exit code {exc.returncode})"
    for pattern in _NO_WHEEL_PATTERNS:
        match = pattern.search(stderr)
        if match:
            name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}", match.group(1))
            package = name.group(0) if name else match.group(1)
            return LockError(
                f"Python package {package!r} has no wheel for CPython {python_version} on "
                f"{platform}; reproflake installs wheels only, never builds from source\n" + detail,
                hint=f"pin a version of {package} that has a wheel for this platform",
            )
    return LockError(
        f"uv could not resolve the Python requirements for CPython {python_version} on "
        f"{platform}:\n{detail}",
        hint="check the requirement names and versions, and that the package index "
        "(pip configuration or the spec's index settings) is reachable",
    )


def _parse_pylock(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"uv produced an unreadable pylock.toml: {exc}") from exc


def _pin_package(
    package: dict[str, Any], python_version: str, glibc: str, arch: str, platform: str
) -> tuple[dict[str, Any], Wheel]:
    """The package's pylock entry cut down to the chosen wheel, and that wheel's record."""
    name = _normalise(str(package["name"]))
    entries = {_wheel_filename(e): e for e in package.get("wheels", [])}
    chosen = select_wheel(sorted(entries), python_version, glibc, arch)
    if chosen is None:
        raise LockError(
            f"Python package {name!r} {package.get('version', '')} has no wheel for CPython "
            f"{python_version} on {platform}; reproflake installs wheels only",
            hint=f"pin a version of {name} that has a wheel for this platform",
        )
    entry = _absolute_wheel_entry(entries[chosen])
    sha256 = str(entry.get("hashes", {}).get("sha256", "")).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise LockError(f"no sha256 for {chosen} in uv's resolution")
    size = entry.get("size")
    wheel = Wheel(
        name=name,
        version=str(package["version"]),
        filename=chosen,
        url=str(entry["url"]) if "url" in entry else Path(entry["path"]).as_uri(),
        sha256=sha256,
        size=size if isinstance(size, int) else None,
    )
    # Only the chosen wheel stays in the pylock, and no sdist: what the lock lists is
    # exactly what gets installed.
    pinned = {k: v for k, v in package.items() if k != "sdist"}
    pinned["wheels"] = [entry]
    return pinned, wheel


def _wheel_filename(entry: Mapping[str, Any]) -> str:
    """PEP 751's optional ``name``, else the last segment of the URL or path."""
    if "name" in entry:
        return str(entry["name"])
    location = str(entry.get("url") or entry.get("path") or "")
    return unquote(urlsplit(location).path).rstrip("/").rsplit("/", 1)[-1]


def _absolute_wheel_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    fixed = dict(entry)
    if "url" in fixed:
        fixed["url"] = _absolute_file_url(str(fixed["url"]))
    elif "path" in fixed:
        fixed["path"] = os.path.abspath(str(fixed["path"]))
    else:
        raise LockError(f"wheel without url or path in uv's resolution: {dict(entry)}")
    return fixed


def _normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- TOML output


def dump_toml(doc: Mapping[str, Any]) -> str:
    """Deterministic TOML for a pylock document (tomllib can only read).

    Top-level values first, then tables and arrays of tables; everything below a table is
    written inline, as uv does for pylock.toml.
    """
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not _is_table(v)]
    for key, value in doc.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{_toml_key(key)}]", *_toml_items(value)]
        elif _is_table(value):
            for item in value:
                lines += ["", f"[[{_toml_key(key)}]]", *_toml_items(item)]
    return "\n".join(lines) + "\n"


def _is_table(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _toml_items(table: Mapping[str, Any]) -> Iterator[str]:
    for key, value in table.items():
        yield f"{_toml_key(key)} = {_toml_value(value)}"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string (same escapes) once DEL, which TOML also
        # wants escaped, is; ensure_ascii=False avoids \uD83D-style surrogate escapes.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime):
        return _toml_datetime(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        pairs = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    raise LockError(f"cannot write {type(value).__name__} value to pylock.toml: {value!r}")


def _toml_datetime(value: datetime) -> str:
    text = value.isoformat()
    if value.utcoffset() == timedelta(0):
        text = text.removesuffix("+00:00") + "Z"
    return text
