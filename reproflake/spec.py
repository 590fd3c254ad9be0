"""reproflake.toml → a validated, frozen :class:`Spec`.

This is the only module that looks at raw dictionaries from the user. Every
error names the file and line, the key, what was expected and how to fix it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from reproflake import speckeys

# Re-exported: the spec file is found without loading this module (shell completion).
from reproflake._paths import SPEC_FILE as SPEC_FILE
from reproflake._paths import find_spec as find_spec
from reproflake.errors import SpecError

# One argument of a process may be at most 128 KiB on Linux (MAX_ARG_STRLEN), and a
# step's command and variables travel as arguments and environment variables (twice:
# to Nix's builder, then into the chroot), which together must stay well under ARG_MAX.
MAX_RUN_BYTES = 100_000
MAX_VARIABLE_BYTES = 100_000
MAX_STEP_TEXT_BYTES = 400_000
# Every other string: names, paths, URLs, requirements. Far beyond any real value, and
# small enough that no regular expression or message over it can take long.
MAX_STRING_BYTES = 4096
MAX_REQUIREMENT_BYTES = 1000
# Keys, types, enums and patterns live in speckeys (shared with the JSON Schema).
URL_CHARS = speckeys.URL_CHARS
URL_QUERY_CHARS = speckeys.URL_QUERY_CHARS
HOST_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
SUITE_RE = re.compile(speckeys.SUITE)
COMPONENT_RE = re.compile(speckeys.COMPONENT)
REQUIREMENT_RE = re.compile(speckeys.REQUIREMENT)
NAME_RE = re.compile(speckeys.NAME)
VAR_RE = re.compile(speckeys.VAR)
SHA256_RE = re.compile(speckeys.SHA256)
DEBIAN_PACKAGE_RE = re.compile(speckeys.DEBIAN_PACKAGE)
# Variables the build environment fixes; a step may not override them.
RESERVED_VARS = frozenset(
    {
        "HOME",
        "PATH",
        "TZ",
        "LANG",
        "LC_ALL",
        "SOURCE_DATE_EPOCH",
        "FORCE_SOURCE_DATE",
        "PYTHONHASHSEED",
        "PERL_HASH_SEED",
        "PERL_PERTURB_KEYS",
        "PYTHONDONTWRITEBYTECODE",
        "OUT",
        "TMPDIR",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "REPROFLAKE_STEP",
    }
)
# Packages every environment gets: /bin/sh runs the step, coreutils for its plumbing.
BASE_PACKAGES = ("coreutils", "dash")
# Stands for the suite's Essential packages among an environment's roots (and in the lock).
ESSENTIAL = "@essential"
# manylinux wheels assume these libraries from the host (PEP 600's baseline).
WHEEL_BASE_PACKAGES = ("libgcc-s1", "libstdc++6")


@dataclass(frozen=True)
class DebianConfig:
    mirror: str
    suite: str
    components: tuple[str, ...] = ("main",)
    architecture: str = "amd64"
    keyring: str | None = None  # None: Debian's archive keyring on this machine
    verify: bool = True


@dataclass(frozen=True)
class PythonIndex:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    name: str
    debian: tuple[str, ...]
    python: tuple[str, ...] = ()
    openblas_coretype: str = "Haswell"
    essential: bool = True

    @property
    def all_debian(self) -> tuple[str, ...]:
        """The packages to resolve: the user's plus the implicit base.

        ESSENTIAL stands for the suite's Essential set, which Debian packages rely on
        without declaring it (their scripts call sed, grep, ...)."""
        extra = BASE_PACKAGES + (WHEEL_BASE_PACKAGES if self.python else ())
        extra += (ESSENTIAL,) if self.essential else ()
        return tuple(sorted(set(self.debian) | set(extra)))


@dataclass(frozen=True)
class Input:
    name: str
    path: str | None = None  # project-relative (local input) or where a URL input appears
    url: str | None = None
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return self.url is not None

    @property
    def is_glob(self) -> bool:
        """A local input given as a pattern (``data/*.csv``): every file it matches."""
        return self.url is None and self.path is not None and any(c in self.path for c in "*?[")

    @property
    def mount_path(self) -> str:
        """Where the step sees this input, relative to its working directory."""
        if self.path is not None:
            return self.path
        assert self.url is not None
        base = self.url.rstrip("/").rsplit("/", 1)[-1] or self.name
        return f"inputs/{self.name}/{base}"


@dataclass(frozen=True)
class Step:
    name: str
    env: str
    run: str
    sources: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    hardware: Hardware | None = None
    # What `verify` and `reproduce` accept instead of identical bytes (never part of the
    # derivation): outputs that cannot be bit-for-bit, and numeric outputs (CSV, JSON,
    # NPY) whose numbers may differ by at most an absolute tolerance.
    unreproducible: tuple[str, ...] = ()
    tolerance: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Hardware:
    """What a step needs of the machine. Each constraint becomes a Nix system feature."""

    gpu: str | None = None  # vendor
    compute_capability: str | None = None  # minimum, e.g. "8.0"
    cuda: str | None = None  # minimum CUDA version the driver supports, e.g. "12.2"
    cpu_features: tuple[str, ...] = ()  # /proc/cpuinfo flags, e.g. ("avx2",)
    memory_gb: int | None = None  # minimum
    # The exact GPU (model and driver) the step is built with, part of its hash: a profile
    # such as "NVIDIA H100 80GB HBM3, driver 550.54.15", or True for this machine's, which
    # the commands resolve to the probed profile before anything reads the spec.
    pin_profile: bool | str = False

    def features(self) -> tuple[str, ...]:
        """Nix's requiredSystemFeatures: a machine must advertise every one."""
        found = [f"cpu-{flag}" for flag in self.cpu_features]
        if isinstance(self.pin_profile, str):
            found.append(gpu_profile_feature(self.pin_profile))
        if self.gpu:
            found.append(f"gpu-{self.gpu}")
        if self.compute_capability:
            found.append(f"gpu-sm-{self.compute_capability}")
        if self.cuda:
            found.append(f"cuda-{self.cuda}")
        if self.memory_gb:
            found.append(f"memory-{self.memory_gb}g")
        return tuple(sorted(found))

    def as_dict(self) -> dict[str, object]:
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in (
                ("gpu", self.gpu),
                ("compute_capability", self.compute_capability),
                ("cuda", self.cuda),
                ("cpu_features", self.cpu_features),
                ("memory_gb", self.memory_gb),
                ("pin_profile", self.pin_profile),
            )
            if v
        }


def gpu_profile_feature(profile: str) -> str:
    """The system feature of one exact GPU profile: Nix matches features as plain words,
    and a profile has spaces and commas, so its digest names it."""
    return "gpu-profile-" + hashlib.sha256(profile.encode()).hexdigest()[:16]


GPU_VENDORS = speckeys.GPU_VENDORS


@dataclass(frozen=True)
class Image:
    """An OCI image of one step: its environment, its working directory and its outputs."""

    name: str
    step: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/work"
    labels: Mapping[str, str] = field(default_factory=dict)
    outputs: str = ""  # where the step's outputs go in the image; "" is WORKDIR/results/STEP
    workspace: bool = True  # the step's sources, inputs and needed outputs under workdir

    @property
    def outputs_path(self) -> str:
        return self.outputs or f"{self.workdir.rstrip('/')}/results/{self.step}"


@dataclass(frozen=True)
class CacheSpec:
    """[cache]: the read side of the project's Nix binary caches (never a secret key)."""

    urls: tuple[str, ...] = ()
    public_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    debian: DebianConfig
    python_index: PythonIndex
    environments: Mapping[str, Environment]
    inputs: Mapping[str, Input]
    steps: Mapping[str, Step]
    source_date_epoch: int | None = None
    # [nix] library: the flake URL of reproflake's Nix library; None: the vendored copy.
    nix_library: str | None = None
    text: str = field(default="", compare=False, repr=False)
    images: Mapping[str, Image] = field(default_factory=dict)
    cache: CacheSpec = field(default_factory=lambda: CacheSpec())

    @functools.cached_property
    def root(self) -> Path:
        # Cached: asked once per step and file in big projects, and a Path is not free.
        return self.path.parent

    def where(self, *key: str) -> str:
        """``file:line`` of a key path, for messages raised after parsing."""
        return f"{self.path}:{_locator(self.text).line(tuple(key))}"


# --------------------------------------------------------------------------- locating keys


class _Locator:
    """Maps a key path such as ("steps", "train", "run") to a line of the file.

    tomllib keeps no positions, so we scan the text: table headers set the
    current table, `key =` lines name keys in it. Good enough for pointing a
    user at the right line; falls back to the table's header, then line 1.
    """

    # Words between blanks, not a class holding the blank: a long run of blanks (valid in
    # TOML) must not be split between \s* and the name in every way (cubic backtracking).
    _header = re.compile(r"^\s*\[\[?\s*([^\]\s]+(?:\s+[^\]\s]+)*)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(
        r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-"]+(?:[ \t]+[A-Za-z0-9_.\-"]+)*)\s*="""
    )

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_string: str | None = None  # the delimiter of a multi-line string we are inside
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if m := self._header.match(line):
                table = _split_dotted(m.group(1))
                for i in range(1, len(table) + 1):
                    self.lines.setdefault(table[:i], number)
                continue
            if m := self._key.match(line):
                key = table + _split_dotted(m.group(1))
                for i in range(len(table) + 1, len(key) + 1):
                    self.lines.setdefault(key[:i], number)
                for delimiter in ('"""', "'''"):
                    if line.count(delimiter) % 2 == 1:
                        in_string = delimiter

    def line(self, path: tuple[str, ...]) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


@functools.lru_cache(maxsize=4)
def _locator(text: str) -> _Locator:
    """One scan per spec text: on a 10,000-step spec a scan takes a noticeable fraction of a
    second, and messages about many keys (or a loop that prepares them) would repeat it."""
    return _Locator(text)


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', text)
    return tuple(a or b or c for a, b, c in parts)


class _Checker:
    """Typed access to the raw document with precise errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    @functools.cached_property
    def locator(self) -> _Locator:
        # Built only when an error needs a line number: scanning is not free on big specs.
        return _Locator(self.text)

    def fail(self, key: tuple[str, ...], problem: str, fix: str) -> SpecError:
        where = f"{self.path}:{self.locator.line(key)}"
        dotted = ".".join(key) if key else "(top level)"
        return SpecError(f"{where}: {dotted}: {problem}", hint=fix)

    def table(self, raw: Any, key: tuple[str, ...], fix: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a table, got {_kind(raw)}", fix)
        return raw

    def string(
        self,
        raw: Any,
        key: tuple[str, ...],
        fix: str,
        *,
        empty_ok: bool = False,
        limit: int = MAX_STRING_BYTES,
    ) -> str:
        if not isinstance(raw, str):
            raise self.fail(key, f"expected a string, got {_kind(raw)}", fix)
        if not empty_ok and not raw.strip():
            raise self.fail(key, "must not be empty", fix)
        self.text_value(raw, key, limit)
        return raw

    def text_value(self, raw: str, key: tuple[str, ...], limit: int) -> None:
        """No NUL (Nix, the kernel and C strings cut there) and a bounded length."""
        if "\0" in raw:
            raise self.fail(key, "contains a NUL character", "remove it")
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise self.fail(
                key, f"is {size} bytes long; at most {limit} are allowed here", "shorten it"
            )

    def url(self, raw: Any, key: tuple[str, ...], fix: str, *, query: bool) -> str:
        """An http(s):// or file:// URL made of plain URL characters (no quotes, '$',
        braces, spaces or control characters: percent-encode them), with a host for
        http(s) and none but localhost for file; a query only where ``query``."""
        import urllib.parse

        text = self.string(raw, key, fix)
        problem = None
        allowed = URL_QUERY_CHARS if query else URL_CHARS
        if not re.match(r"(https?|file)://", text):
            problem = "is not an http(s):// or file:// URL"
        elif not re.fullmatch(allowed, text):
            problem = "has characters a URL cannot hold unencoded: percent-encode them"
            if not query and "?" in text:
                problem = "has a query string ('?...'), which is not allowed here"
        else:
            parts = urllib.parse.urlsplit(text)
            path = urllib.parse.unquote(parts.path)
            if parts.scheme in ("http", "https") and not HOST_RE.fullmatch(parts.netloc):
                problem = "has no valid host name"
            elif parts.scheme == "file" and parts.netloc not in ("", "localhost"):
                problem = "names a host; a file:// URL is file:///absolute/path"
            elif "\0" in path or any(seg in ("..", ".") for seg in path.split("/")[1:]):
                problem = "has '.', '..' or an encoded NUL in its path"
        if problem:
            raise self.fail(key, f"{_show(text)} {problem}", fix)
        return text

    def boolean(self, raw: Any, key: tuple[str, ...], fix: str) -> bool:
        if not isinstance(raw, bool):
            raise self.fail(key, f"expected true or false, got {_kind(raw)}", fix)
        return raw

    def strings(
        self, raw: Any, key: tuple[str, ...], fix: str, *, limit: int = MAX_STRING_BYTES
    ) -> tuple[str, ...]:
        if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
            raise self.fail(key, f"expected a list of non-empty strings, got {_kind(raw)}", fix)
        if len(raw) > 100_000:
            raise self.fail(key, f"lists {len(raw)} entries; at most 100000", "list fewer")
        seen = set()
        for item in raw:
            self.text_value(item, key, limit)
            if item in seen:
                raise self.fail(key, f"{_show(item)} is listed twice", "list each entry once")
            seen.add(item)
        return tuple(raw)

    def only(self, raw: Mapping[str, Any], key: tuple[str, ...], allowed: set[str]) -> None:
        for name in raw:
            if name not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(
                    key + (name,),
                    f"unknown key {_show(name)}",
                    f"expected one of: {expected}" + suggest(name, allowed),
                )

    def name(self, name: str, key: tuple[str, ...], what: str) -> str:
        if not NAME_RE.fullmatch(name):
            raise self.fail(
                key,
                f"{what} name {_show(name)} is not allowed",
                "use a letter followed by letters, digits, '-' or '_' (at most 64)",
            )
        return name

    def relpath(self, raw: Any, key: tuple[str, ...], fix: str, *, base: str = "project") -> str:
        text = self.string(raw, key, fix)
        p = PurePosixPath(text)
        bad = (
            str(p) == "."
            or p.is_absolute()
            or ".." in p.parts
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)
            or "\\" in text
            or text.startswith("./")
            or (base == "project" and p.parts[:1] in (("results",), (".reproflake",), (".git",)))
        )
        if bad:
            where = (
                "the project directory, outside results/, .reproflake/ and .git/"
                if base == "project"
                else "the step's output directory ($OUT)"
            )
            raise self.fail(
                key,
                f"{_show(text)} is not a plain relative path inside {where.split(',')[0]}",
                f"write a path relative to {where}, without '..', './', tabs or newlines",
            )
        return str(p)

    def relpaths(
        self, raw: Any, key: tuple[str, ...], fix: str, *, base: str = "project"
    ) -> tuple[str, ...]:
        """A list of paths, each normalised (``a//b`` is ``a/b``), none twice."""
        paths = [self.relpath(x, key, fix, base=base) for x in self.strings(raw, key, fix)]
        for i, path in enumerate(paths):
            if path in paths[:i]:
                raise self.fail(
                    key, f"{_show(path)} is listed twice (once written differently)", "list it once"
                )
        return tuple(paths)


def _show(value: object, limit: int = 80) -> str:
    """A value for a message: quoted, and cut when long (a spec may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


def _kind(raw: Any) -> str:
    if raw is None:
        return "nothing (the key is missing)"
    if isinstance(raw, bool):
        return f"a boolean ({str(raw).lower()})"
    if isinstance(raw, int):
        return f"an integer ({raw})"
    if isinstance(raw, str):
        return f"a string ({_show(raw)})"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a table"
    return type(raw).__name__


LISTED = 20  # names a hint lists; a spec of thousands of steps would flood the terminal


def listing(names: Iterable[str]) -> str:
    """Names for a hint, sorted: the first LISTED of them, and how many more there are."""
    ordered = sorted(names)
    shown = ", ".join(ordered[:LISTED])
    rest = len(ordered) - LISTED
    return f"{shown}, … ({rest} more)" if rest > 0 else shown


def suggest(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {_show(close[0])}?)" if close else ""


# --------------------------------------------------------------------------- loading


def load(path: Path) -> Spec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text", hint="save the file as UTF-8") from exc
    cache = _cache_file(path, text)
    spec = _cached(cache, path)
    if spec is None:
        spec = parse(text, path)
        _remember(cache, spec)
    return spec


# A big spec (thousands of steps) takes a noticeable time to parse and validate with the
# standard library's pure-Python TOML parser, and every command starts by loading it.
# The validated Spec is kept in the user's cache, keyed by the file's exact bytes and
# reproflake's version. It lives outside the project: it is a pickle, never to be read
# from a directory someone else may have written.


def _cache_file(path: Path, text: str) -> Path:
    import hashlib

    from reproflake import __version__
    from reproflake._paths import user_cache_dir

    base = user_cache_dir() / "specs"
    key = hashlib.sha256(f"{__version__}\0{path.resolve()}\0{text}".encode()).hexdigest()
    return base / f"{key}.pickle"


def _cached(cache: Path, path: Path) -> Spec | None:
    from reproflake.fsutil import read_cache

    spec = read_cache(cache, Spec)
    return spec if spec is not None and spec.path == path else None


def _remember(cache: Path, spec: Spec) -> None:
    """Only worth it for big specs: small ones parse faster than a cache file is written."""
    if len(spec.steps) < 200:
        return
    import pickle

    from reproflake.fsutil import write_atomic

    # A read-only home is fine: the spec is just parsed again next time.
    with contextlib.suppress(OSError):
        write_atomic(cache, pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))


def _toml() -> Any:
    """The TOML parser, imported when a text is parsed: a big spec comes from the cache."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    return tomllib


def parse_toml(text: str) -> dict[str, Any]:
    """The raw document (for comparing revisions key by key); assumes it already parsed once."""
    return dict(_toml().loads(text))


# A placeholder counts only as a whole value (`mirror = {{mirror}}`), so text such as
# "{{name}}" inside a step's command is the user's, never substituted.
PLACEHOLDER = re.compile(
    r'^(?P<key>[ \t]*(?:name|mirror|suite)[ \t]*=[ \t]*)"?\{\{(?P<what>name|mirror|suite)\}\}"?'
    r"(?P<rest>[ \t]*(?:#.*)?)$",
    re.MULTILINE,
)


def placeholders(text: str) -> list[tuple[int, str]]:
    """The unfilled placeholders in a spec's text: (line, which)."""
    return [
        (text.count("\n", 0, m.start()) + 1, m.group("what")) for m in PLACEHOLDER.finditer(text)
    ]


def parse(text: str, path: Path) -> Spec:
    unfilled = placeholders(text)
    if unfilled:
        line, what = unfilled[0]
        raise SpecError(
            f"{path}:{line}: {{{{{what}}}}} is a template placeholder: this project was copied "
            "from a template (nix flake init) and is not finished",
            hint="run `reproflake lock`: it fills name, mirror and suite as `reproflake init` "
            "does (from this machine's apt sources); or write the values yourself",
        )
    tomllib = _toml()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        where = f"{path}:{m.group(1)}:{m.group(2)}" if m else str(path)
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise SpecError(
            f"{where}: not valid TOML: {problem}",
            hint="see docs/spec.md for the format; check quotes, brackets and commas",
        ) from exc
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise SpecError(
            f"{path}: nested too deeply (arrays or inline tables inside each other)",
            hint="see docs/spec.md for the format: a spec is a few levels deep",
        ) from None
    return _validate(raw, _Checker(path, text), path)


def _validate(raw: dict[str, Any], c: _Checker, path: Path) -> Spec:
    c.only(raw, (), speckeys.allowed(speckeys.SPEC))
    project = c.table(raw.get("project"), ("project",), 'add a [project] table with name = "..."')
    c.only(project, ("project",), speckeys.allowed(speckeys.PROJECT))
    if "description" in project:
        c.string(project["description"], ("project", "description"), "free text", empty_ok=True)
    name = c.name(
        c.string(project.get("name"), ("project", "name"), 'set name = "my-pipeline"'),
        ("project", "name"),
        "project",
    )
    sde = project.get("source_date_epoch")
    if sde is not None and (isinstance(sde, bool) or not isinstance(sde, int) or sde < 0):
        raise c.fail(
            ("project", "source_date_epoch"),
            f"expected a non-negative integer (seconds since 1970), got {_kind(sde)}",
            "for example source_date_epoch = 1700000000, or remove it to use the lock's",
        )

    debian = _debian(raw.get("debian"), c)
    python_index = _python_index(raw.get("python", {}), c)
    environments = _environments(raw.get("environments"), c)
    inputs = _inputs(raw.get("inputs", {}), c)
    steps = _steps(raw.get("steps"), c, environments, inputs)
    nix_library = _nix_library(raw.get("nix", {}), c)
    images = _images(raw.get("images", {}), c, steps)
    cache = _cache(raw.get("cache", {}), c)
    return Spec(
        path=path,
        name=name,
        debian=debian,
        python_index=python_index,
        environments=environments,
        inputs=inputs,
        steps=steps,
        source_date_epoch=sde,
        nix_library=nix_library,
        text=c.text,
        images=images,
        cache=cache,
    )


# Flake URL types that name their source directly. An indirect reference ("reproflake",
# "flake:reproflake") is looked up in Nix's global registry, which means the network.
FLAKE_URL_RE = re.compile(
    r"(path:/|git\+file:///|git\+(https?|ssh)://|(tarball\+)?(https?|file)://|"
    r"(github|gitlab|sourcehut):)[A-Za-z0-9._~%/:@+=,!*?&;-]*"
)


def flake_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the flake input for reproflake's library; None if it can."""
    if FLAKE_URL_RE.fullmatch(url):
        return None
    if re.fullmatch(r"(flake:)?[A-Za-z][A-Za-z0-9_-]*(/[^:]*)?", url):
        return "is an indirect flake reference: Nix would look it up in its global registry"
    return (
        "is not an absolute flake URL of a type Nix fetches directly, written with plain "
        "URL characters (percent-encode others)"
    )


CACHE_URL_RE = re.compile(speckeys.CACHE_URL)
PUBLIC_KEY_RE = re.compile(speckeys.PUBLIC_KEY)


def _cache(raw: Any, c: _Checker) -> CacheSpec:
    key = ("cache",)
    fix = '[cache] urls = ["https://cache.example.org"], public_keys = ["name:base64key="]'
    table = c.table(raw, key, fix)
    c.only(table, key, speckeys.allowed(speckeys.CACHE))
    urls = c.strings(table.get("urls", []), key + ("urls",), fix)
    for url in urls:
        if not CACHE_URL_RE.fullmatch(url):
            raise c.fail(
                key + ("urls",),
                f"{_show(url)} is not a binary cache URL "
                "(expected file:///, http://, https://, ssh-ng://, ssh:// or s3://)",
                fix,
            )
    keys = c.strings(table.get("public_keys", []), key + ("public_keys",), fix)
    for k in keys:
        if not PUBLIC_KEY_RE.fullmatch(k):
            raise c.fail(
                key + ("public_keys",),
                f"{_show(k)} is not a Nix public key (NAME:BASE64, as "
                "nix-store --generate-binary-cache-key writes)",
                "copy the key from the cache's public key file; never put the secret key here",
            )
    if urls and not keys:
        raise c.fail(
            key + ("public_keys",),
            "a cache needs the public keys its entries are signed with",
            "add public_keys = [...]; reproflake never builds with require-sigs = false",
        )
    return CacheSpec(tuple(urls), tuple(keys))


def _nix_library(raw: Any, c: _Checker) -> str | None:
    key = ("nix",)
    table = c.table(raw, key, '[nix] holds library = "vendored" or a flake URL')
    c.only(table, key, speckeys.allowed(speckeys.NIX))
    fix = (
        'library = "vendored" (the copy in .reproflake/lib, the default), or the URL of '
        'reproflake\'s flake, e.g. "git+file:///home/me/src/reproflake" or "path:/opt/reproflake"'
    )
    library = c.string(table.get("library", "vendored"), key + ("library",), fix)
    if library == "vendored":
        return None
    problem = flake_url_problem(library)
    if problem:
        raise c.fail(key + ("library",), f"{_show(library)} {problem}", fix)
    return library


def _debian(raw: Any, c: _Checker) -> DebianConfig:
    key = ("debian",)
    fix = 'add [debian] with mirror = "http://<your mirror>/debian" and suite = "bookworm"'
    table = c.table(raw, key, fix)
    c.only(table, key, speckeys.allowed(speckeys.DEBIAN))
    mirror = c.url(table.get("mirror"), key + ("mirror",), fix, query=False).rstrip("/")
    suite = c.string(table.get("suite"), key + ("suite",), 'for example suite = "bookworm"')
    if not SUITE_RE.fullmatch(suite) or ".." in suite:
        raise c.fail(
            key + ("suite",),
            f"{_show(suite)} is not a Debian suite name",
            'use a codename or suite such as "bookworm", "bookworm-updates" or "stable"',
        )
    components: tuple[str, ...] = ("main",)
    if "components" in table:
        components = c.strings(table["components"], key + ("components",), 'e.g. ["main"]')
        for component in components:
            if not COMPONENT_RE.fullmatch(component) or ".." in component:
                raise c.fail(
                    key + ("components",),
                    f"{_show(component)} is not an archive component",
                    'use names such as "main", "contrib", "non-free-firmware"',
                )
    arch = table.get("architecture", "amd64")
    if arch not in speckeys.ARCHITECTURES:
        raise c.fail(
            key + ("architecture",),
            f"expected one of: {', '.join(speckeys.ARCHITECTURES)}, got {_show(arch)}",
            "reproflake builds for x86_64-linux (amd64) for now",
        )
    keyring = None
    if "keyring" in table:
        keyring_fix = "a path to a .gpg keyring, relative to the project or absolute"
        keyring = c.string(table["keyring"], key + ("keyring",), keyring_fix)
        if not keyring.startswith("/"):
            keyring = c.relpath(keyring, key + ("keyring",), keyring_fix)
        elif ".." in PurePosixPath(keyring).parts or any(ord(ch) < 0x20 for ch in keyring):
            raise c.fail(key + ("keyring",), f"{_show(keyring)} is not a plain path", keyring_fix)
    verify = c.boolean(table.get("verify", True), key + ("verify",), "verify = true")
    return DebianConfig(
        mirror=mirror,
        suite=suite,
        components=components,
        architecture=arch,
        keyring=keyring,
        verify=verify,
    )


def _python_index(raw: Any, c: _Checker) -> PythonIndex:
    key = ("python",)
    table = c.table(raw, key, "[python] holds index_url and extra_index_urls")
    c.only(table, key, speckeys.allowed(speckeys.PYTHON))
    fix = "a package index URL (http://, https:// or file://), e.g. the one pip is set up with"
    index_url = None
    if "index_url" in table:
        index_url = c.url(table["index_url"], key + ("index_url",), fix, query=False)
    extra: tuple[str, ...] = ()
    if "extra_index_urls" in table:
        extra = c.strings(table["extra_index_urls"], key + ("extra_index_urls",), "a list of URLs")
        for item in extra:
            c.url(item, key + ("extra_index_urls",), fix, query=False)
    return PythonIndex(index_url=index_url, extra_index_urls=extra)


def _environments(raw: Any, c: _Checker) -> dict[str, Environment]:
    fix = 'add [environments.NAME] with debian = ["python3"]'
    table = c.table(raw, ("environments",), fix)
    if not table:
        raise c.fail(("environments",), "no environments defined", fix)
    result = {}
    for name in sorted(table):
        key = ("environments", name)
        c.name(name, key, "environment")
        env = c.table(table[name], key, fix)
        c.only(env, key, speckeys.allowed(speckeys.ENVIRONMENT))
        debian = c.strings(env.get("debian", []), key + ("debian",), 'e.g. debian = ["python3"]')
        for pkg in debian:
            if not DEBIAN_PACKAGE_RE.fullmatch(pkg):
                raise c.fail(
                    key + ("debian",),
                    f"{_show(pkg)} is not a Debian package name",
                    "use the package name (e.g. python3-numpy), optionally name=version",
                )
        python = c.strings(
            env.get("python", []),
            key + ("python",),
            'e.g. ["numpy==2.2.6"]',
            limit=MAX_REQUIREMENT_BYTES,
        )
        for req in python:
            if not REQUIREMENT_RE.fullmatch(req):
                raise c.fail(
                    key + ("python",),
                    f"{_show(req)} is not a Python requirement",
                    "give one PEP 508 requirement per entry, e.g. 'numpy==2.2.6' or "
                    "'scipy>=1.11; python_version >= \"3.11\"'",
                )
        if python and not any(p.split("=")[0] in ("python3", "python3-minimal") for p in debian):
            raise c.fail(
                key + ("python",),
                "Python requirements need a Python interpreter from Debian",
                'add "python3" to debian = [...]; its version decides which wheels are used',
            )
        coretype = c.string(
            env.get("openblas_coretype", "Haswell"), key + ("openblas_coretype",), "e.g. Haswell"
        )
        if not re.fullmatch(speckeys.OPENBLAS_CORE, coretype):
            raise c.fail(key + ("openblas_coretype",), "expected an OpenBLAS core name", "Haswell")
        essential = c.boolean(
            env.get("essential", True),
            key + ("essential",),
            "essential = false leaves out Debian's Essential packages (sed, grep, bash, ...)",
        )
        result[name] = Environment(name, debian, python, coretype, essential)
    return result


def _inputs(raw: Any, c: _Checker) -> dict[str, Input]:
    table = c.table(raw, ("inputs",), 'add [inputs.NAME] with path = "data/file.csv"')
    result = {}
    for name in sorted(table):
        key = ("inputs", name)
        c.name(name, key, "input")
        fix = 'give either path = "data/file.csv" or url = "https://…" with sha256 = "…"'
        item = c.table(table[name], key, fix)
        c.only(item, key, speckeys.allowed(speckeys.INPUT))
        path = c.relpath(item["path"], key + ("path",), fix) if "path" in item else None
        url = None
        sha256 = None
        if "url" in item:
            url = c.url(item["url"], key + ("url",), fix, query=True)
            sha256 = c.string(item.get("sha256"), key + ("sha256",), 'add sha256 = "<64 hex>"')
            if not SHA256_RE.fullmatch(sha256):
                raise c.fail(
                    key + ("sha256",),
                    "expected 64 lowercase hex digits",
                    f"compute it with: sha256sum <file>, or curl -L {url} | sha256sum",
                )
        elif path is None:
            raise c.fail(key, "neither path nor url is set", fix)
        elif "sha256" in item:
            raise c.fail(
                key + ("sha256",),
                "sha256 is only for URL inputs",
                "local inputs are hashed by `reproflake lock`; remove sha256",
            )
        result[name] = Input(name=name, path=path, url=url, sha256=sha256)
    return result


def _steps(
    raw: Any, c: _Checker, environments: Mapping[str, Environment], inputs: Mapping[str, Input]
) -> dict[str, Step]:
    fix = 'add [steps.NAME] with env = "...", run = "..." and outputs = [...]'
    table = c.table(raw, ("steps",), fix)
    if not table:
        raise c.fail(("steps",), "no steps defined", fix)
    result = {}
    for name in sorted(table):
        key = ("steps", name)
        c.name(name, key, "step")
        if name in speckeys.SPEC.keys["steps"].reserved_keys:
            raise c.fail(
                key,
                "the step name 'default' is taken by the flake's package of all steps",
                "choose another name",
            )
        step = c.table(table[name], key, fix)
        c.only(step, key, speckeys.allowed(speckeys.STEP))
        env = c.string(step.get("env"), key + ("env",), f"one of: {listing(environments)}")
        if env not in environments:
            raise c.fail(
                key + ("env",),
                f"unknown environment {_show(env)}",
                f"expected one of: {listing(environments)}" + suggest(env, environments.keys()),
            )
        run = c.string(
            step.get("run"), key + ("run",), 'e.g. run = "python3 src/fit.py"', limit=1 << 30
        )
        if len(run.encode()) > MAX_RUN_BYTES:
            raise c.fail(
                key + ("run",),
                f"is {len(run.encode())} bytes; at most {MAX_RUN_BYTES} fit in one command",
                "move the script into a file, list it in sources, and run that file",
            )
        sources = c.relpaths(step.get("sources", []), key + ("sources",), 'e.g. ["src/*.py"]')
        step_inputs = c.strings(step.get("inputs", []), key + ("inputs",), 'e.g. ["raw"]')
        for item in step_inputs:
            if item not in inputs:
                known = listing(inputs) or "(none defined)"
                raise c.fail(
                    key + ("inputs",),
                    f"unknown input {_show(item)}",
                    f"known inputs: {known}" + suggest(item, inputs.keys()),
                )
        needs = c.strings(step.get("needs", []), key + ("needs",), 'e.g. ["prepare"]')
        for item in needs:
            if item not in table:
                raise c.fail(
                    key + ("needs",),
                    f"unknown step {_show(item)}",
                    f"known steps: {listing(table)}" + suggest(item, list(table)),
                )
            if item == name:
                raise c.fail(key + ("needs",), f"step {_show(name)} needs itself", "remove it")
        outputs = c.relpaths(
            step.get("outputs", []), key + ("outputs",), 'e.g. ["model.json"]', base="output"
        )
        if not outputs:
            raise c.fail(
                key + ("outputs",),
                "a step must declare at least one output",
                f'list what the step writes under results/{name}/, e.g. outputs = ["report.json"]',
            )
        variables = _variables(step.get("variables", {}), key + ("variables",), c)
        total = len(run.encode()) + sum(len(k) + len(v.encode()) for k, v in variables.items())
        if total > MAX_STEP_TEXT_BYTES:
            raise c.fail(
                key + ("variables",),
                f"the command and variables together are {total} bytes; at most "
                f"{MAX_STEP_TEXT_BYTES} can be passed to a step",
                "put large values in a file, list it in sources or inputs, and read it",
            )
        hardware = (
            _hardware(step["hardware"], key + ("hardware",), c) if "hardware" in step else None
        )
        unreproducible = c.relpaths(
            step.get("unreproducible", []),
            key + ("unreproducible",),
            'outputs of this step, e.g. unreproducible = ["report.html"]',
            base="output",
        )
        tolerance = _tolerance(step.get("tolerance", {}), key + ("tolerance",), c)
        for item in (*unreproducible, *tolerance):
            if not any(item == o or item.startswith(o + "/") for o in outputs):
                where = "unreproducible" if item in unreproducible else "tolerance"
                raise c.fail(
                    key + (where,),
                    f"{_show(item)} is not one of the step's outputs (nor inside one)",
                    f"expected one of: {', '.join(outputs)}",
                )
        result[name] = Step(
            name, env, run, sources, step_inputs, needs, outputs, variables, hardware,
            unreproducible, tolerance,
        )  # fmt: skip
    return result


def _tolerance(raw: Any, key: tuple[str, ...], c: _Checker) -> dict[str, float]:
    """Output → the absolute difference its numbers may have (CSV, JSON or NPY outputs)."""
    fix = 'e.g. tolerance = { "metrics.json" = 1e-6 }'
    table = c.table(raw, key, fix)
    found: dict[str, float] = {}
    for name, value in sorted(table.items()):
        path = c.relpath(name, key, fix, base="output")
        if not path.endswith((".csv", ".json", ".npy")):
            raise c.fail(
                key + (name,),
                f"{_show(name)}: a tolerance applies to numbers in .csv, .json or .npy outputs",
                'list other outputs that vary in unreproducible = ["..."]',
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise c.fail(key + (name,), f"expected a number >= 0, got {_kind(value)}", fix)
        found[path] = float(value)
    return found


def _hardware(raw: Any, key: tuple[str, ...], c: _Checker) -> Hardware:
    fix = 'e.g. hardware = { gpu = "nvidia", cuda = "12.2", cpu_features = ["avx2"] }'
    table = c.table(raw, key, fix)
    c.only(table, key, speckeys.allowed(speckeys.HARDWARE))
    gpu = table.get("gpu")
    if gpu is not None and gpu not in GPU_VENDORS:
        raise c.fail(
            key + ("gpu",),
            f"expected one of: {', '.join(GPU_VENDORS)}, got {_kind(gpu)}",
            "name the GPU vendor the step needs",
        )
    versions = {}
    for name in ("compute_capability", "cuda"):
        if name in table:
            value = c.string(table[name], key + (name,), 'a version such as "8.0"')
            if not re.fullmatch(speckeys.VERSION, value):
                raise c.fail(
                    key + (name,), f'expected a version like "8.0", got {_show(value)}', fix
                )
            versions[name] = value
    if versions and gpu != "nvidia":
        raise c.fail(key, 'compute_capability and cuda need gpu = "nvidia"', 'add gpu = "nvidia"')
    pin = table.get("pin_profile", False)
    if not isinstance(pin, bool) and not (isinstance(pin, str) and pin.strip()):
        raise c.fail(
            key + ("pin_profile",),
            f"expected true, false or a GPU profile string, got {_kind(pin)}",
            'pin_profile = true (this machine\'s GPU), or the "profile" line of `reproflake hw`',
        )
    if pin and gpu != "nvidia":
        raise c.fail(key, 'pin_profile needs gpu = "nvidia"', 'add gpu = "nvidia"')
    flags = c.strings(table.get("cpu_features", []), key + ("cpu_features",), 'e.g. ["avx2"]')
    for flag in flags:
        if not re.fullmatch(speckeys.CPU_FLAG, flag):
            raise c.fail(
                key + ("cpu_features",),
                f"{_show(flag)} is not a CPU flag",
                "use the names in /proc/cpuinfo's flags line, e.g. avx2, avx512f",
            )
    memory = table.get("memory_gb")
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, int) or memory < 1
    ):
        raise c.fail(
            key + ("memory_gb",), f"expected a positive integer, got {_kind(memory)}", "e.g. 16"
        )
    return Hardware(
        gpu=gpu,
        compute_capability=versions.get("compute_capability"),
        cuda=versions.get("cuda"),
        cpu_features=tuple(sorted(set(flags))),
        memory_gb=memory,
        pin_profile=pin.strip() if isinstance(pin, str) else pin,
    )


def _variables(
    raw: Any, key: tuple[str, ...], c: _Checker, *, reserved: frozenset[str] = RESERVED_VARS
) -> dict[str, str]:
    table = c.table(raw, key, 'e.g. variables = { SEED = "42" }')
    result = {}
    for var in sorted(table):
        if not VAR_RE.fullmatch(var):
            raise c.fail(
                key + (var,), f"{_show(var)} is not a variable name", "use [A-Za-z_][A-Za-z0-9_]*"
            )
        if var in reserved:
            raise c.fail(
                key + (var,),
                f"{var} is fixed by reproflake for reproducibility",
                f"reserved: {', '.join(sorted(reserved))}; pick another name",
            )
        value = table[var]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise c.fail(
                key + (var,), f"expected a string or number, got {_kind(value)}", "quote it"
            )
        text = str(value)
        c.text_value(text, key + (var,), MAX_VARIABLE_BYTES)
        result[var] = text
    return result


# Labels reproflake itself writes from the build's facts; a spec may not claim them.
RESERVED_LABEL_PREFIX = "dev.reproflake."
RESERVED_LABELS = frozenset(
    {"org.opencontainers.image.revision", "org.opencontainers.image.created"}
)
LABEL_KEY_RE = re.compile(speckeys.LABEL_KEY)


def _images(raw: Any, c: _Checker, steps: Mapping[str, Step]) -> dict[str, Image]:
    fix = 'add [images.NAME] with step = "STEP" and entrypoint = ["python3", "serve.py"]'
    table = c.table(raw, ("images",), fix)
    result = {}
    for name in sorted(table):
        key = ("images", name)
        c.name(name, key, "image")
        image = c.table(table[name], key, fix)
        c.only(image, key, speckeys.allowed(speckeys.IMAGE))
        step = c.string(image.get("step"), key + ("step",), f"one of: {listing(steps)}")
        if step not in steps:
            raise c.fail(
                key + ("step",),
                f"unknown step {_show(step)}",
                f"expected one of: {listing(steps)}" + suggest(step, steps.keys()),
            )
        entrypoint = _argv(image.get("entrypoint", []), key + ("entrypoint",), c)
        cmd = _argv(image.get("cmd", []), key + ("cmd",), c)
        env = _variables(image.get("env", {}), key + ("env",), c, reserved=frozenset())
        workdir = _abspath(image.get("workdir", "/work"), key + ("workdir",), c)
        outputs = _abspath(image["outputs"], key + ("outputs",), c) if "outputs" in image else ""
        labels = _labels(image.get("labels", {}), key + ("labels",), c)
        workspace = c.boolean(
            image.get("workspace", True),
            key + ("workspace",),
            "workspace = false leaves the step's sources, inputs and needed outputs out",
        )
        result[name] = Image(name, step, entrypoint, cmd, env, workdir, labels, outputs, workspace)
    return result


def _argv(raw: Any, key: tuple[str, ...], c: _Checker) -> tuple[str, ...]:
    """A command as a list of arguments (repeats and empty arguments are allowed)."""
    fix = 'a list of arguments, e.g. ["python3", "src/serve.py"]'
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise c.fail(key, f"expected a list of strings, got {_kind(raw)}", fix)
    for arg in raw:
        c.text_value(arg, key, MAX_VARIABLE_BYTES)
    if len(raw) > 1000:
        raise c.fail(key, f"lists {len(raw)} arguments; at most 1000", "put them in a script")
    return tuple(raw)


def _abspath(raw: Any, key: tuple[str, ...], c: _Checker) -> str:
    fix = 'an absolute path inside the image, e.g. "/work"'
    text = c.string(raw, key, fix)
    p = PurePosixPath(text)
    if (
        not text.startswith("/")
        or ".." in p.parts
        or "//" in text
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)
        or "\\" in text
    ):
        raise c.fail(key, f"{_show(text)} is not a plain absolute path", fix)
    return str(p)


def _labels(raw: Any, key: tuple[str, ...], c: _Checker) -> dict[str, str]:
    table = c.table(raw, key, 'e.g. labels = { "org.opencontainers.image.licenses" = "MIT" }')
    result = {}
    for label in sorted(table):
        if not LABEL_KEY_RE.fullmatch(label):
            raise c.fail(
                key + (label,),
                f"{_show(label)} is not a label key",
                "use reverse-DNS keys of letters, digits, '.', '-', '_' and '/'",
            )
        if label.startswith(RESERVED_LABEL_PREFIX) or label in RESERVED_LABELS:
            raise c.fail(
                key + (label,),
                f"{label} is written by reproflake from the build itself",
                f"remove it; reproflake sets {', '.join(sorted(RESERVED_LABELS))} and "
                f"{RESERVED_LABEL_PREFIX}*",
            )
        result[label] = c.string(table[label], key + (label,), "a string", empty_ok=True)
    return result
