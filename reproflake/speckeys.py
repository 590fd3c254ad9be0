"""The shape of reproflake.toml as data: every table, its keys, their types, enums and
patterns.

Two readers use it, so they cannot drift apart: the validator (:mod:`reproflake.spec`)
takes the allowed keys, enums and patterns from here, and :mod:`reproflake.schema`
turns it into the JSON Schema editors check the file with. What a table cannot say
(that a step's ``env`` names an environment, that a path stays inside the project) is
the validator's alone; docs/spec.md says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- patterns

NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"
SHA256 = r"^[0-9a-f]{64}$"
SUITE = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._+-]{0,63}){0,2}$"
COMPONENT = r"^[a-z0-9][a-z0-9._+-]{0,63}(/[a-z0-9][a-z0-9._+-]{0,63}){0,2}$"
DEBIAN_PACKAGE = r"^[a-z0-9][a-z0-9+.\-]+(=[A-Za-z0-9.+:~\-]+)?$"
# A PEP 508 requirement by name: the name, extras, version specifiers and a marker. No
# URL or path references (they would make the resolver read what the spec points at), no
# '$', braces, backquotes, backslashes or control characters, and a letter or digit
# first (a leading '-' would be an option to the resolver). Linear to match.
REQUIREMENT = (
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?"
    r"[ \t]*(?:\[[A-Za-z0-9._, -]{0,200}\])?"
    r"[ \t]*(?:[(<>=!~][A-Za-z0-9 ._*!=<>~,()+-]*)?"
    r"(?:;[A-Za-z0-9 ._*!=<>~,()'\"-]*)?$"
)
OPENBLAS_CORE = r"^[A-Za-z0-9_]+$"
VERSION = r"^\d+\.\d+$"
CPU_FLAG = r"^[a-z0-9_]+$"
URL_CHARS = r"(https?|file)://[A-Za-z0-9._~%/:@+=,!*-]*"
URL_QUERY_CHARS = r"(https?|file)://[A-Za-z0-9._~%/:@+=,!*-]*(\?[A-Za-z0-9._~%/:@+=,!*&;-]*)?"
URL = f"^{URL_CHARS}$"
URL_QUERY = f"^{URL_QUERY_CHARS}$"
CACHE_URL = r"^(file:///|https?://|ssh-ng://|ssh://|s3://)\S+$"
PUBLIC_KEY = r"^[A-Za-z0-9._-]+:[A-Za-z0-9+/]{43}=$"
LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$"
ABSOLUTE = r"^/"

GPU_VENDORS = ("amd", "nvidia")
ARCHITECTURES = ("amd64",)


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Value:
    """What one key holds.

    ``kind`` is ``string``, ``boolean``, ``integer``, ``number``, ``list`` (of ``item``),
    ``table`` (fixed ``keys``), ``map`` (any key matching ``key_pattern``, every value
    a ``values``), ``scalar`` (a string or a number, as variables are) or
    ``flag_or_string`` (true, false or a non-blank string).
    """

    kind: str
    doc: str = ""
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    non_empty: bool = False  # strings: not blank; lists: at least one item; maps: one key
    unique: bool = False  # lists: no item twice
    item: Value | None = None
    keys: Mapping[str, Value] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    key_pattern: str | None = None
    reserved_keys: tuple[str, ...] = ()
    values: Value | None = None
    one_of_required: tuple[str, ...] = ()  # tables: at least one of these keys
    dependent: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # key → needs


def string(doc: str, pattern: str | None = None, *, non_empty: bool = True) -> Value:
    return Value("string", doc, pattern=pattern, non_empty=non_empty)


def strings(doc: str, pattern: str | None = None, *, non_empty: bool = False) -> Value:
    """A list of distinct non-empty strings (the validator's ``strings``)."""
    return Value("list", doc, item=string("", pattern), unique=True, non_empty=non_empty)


def table(
    doc: str,
    keys: Mapping[str, Value],
    *,
    required: tuple[str, ...] = (),
    one_of_required: tuple[str, ...] = (),
    dependent: Mapping[str, tuple[str, ...]] | None = None,
) -> Value:
    return Value(
        "table", doc, keys=keys, required=required, one_of_required=one_of_required,
        dependent=dependent or {},
    )  # fmt: skip


def named(
    doc: str, entry: Value, *, reserved: tuple[str, ...] = (), non_empty: bool = False
) -> Value:
    """``[what.NAME]`` tables: a name of letters, digits, '-' and '_' for each."""
    return Value(
        "map", doc, key_pattern=NAME, values=entry, reserved_keys=reserved, non_empty=non_empty
    )


PROJECT = table(
    "The project: its name, and optionally a fixed SOURCE_DATE_EPOCH.",
    {
        "name": string("The project's name.", NAME),
        "source_date_epoch": Value(
            "integer", "Seconds since 1970 that every step sees as SOURCE_DATE_EPOCH.", minimum=0
        ),
        "description": string("Free text.", non_empty=False),
    },
    required=("name",),
)

DEBIAN = table(
    "Where Debian packages come from.",
    {
        "mirror": string("The Debian mirror's URL.", URL),
        "suite": string('The suite, e.g. "bookworm".', SUITE),
        "components": strings('Archive components, e.g. ["main"].', COMPONENT),
        "architecture": Value("string", "The architecture (amd64).", enum=ARCHITECTURES),
        "keyring": string("The keyring the suite is signed with (default: Debian's)."),
        "verify": Value("boolean", "Check the suite's signature (default true)."),
    },
    required=("mirror", "suite"),
)

PYTHON = table(
    "Where wheels come from (default: this machine's pip configuration).",
    {
        "index_url": string("A package index URL.", URL),
        "extra_index_urls": strings("More package index URLs.", URL),
    },
)

ENVIRONMENT = table(
    "A root file system of Debian packages and, optionally, Python wheels.",
    {
        "debian": strings("Debian packages, optionally name=version.", DEBIAN_PACKAGE),
        "python": strings("PEP 508 requirements, one per entry.", REQUIREMENT),
        "openblas_coretype": string("OpenBLAS core type (default Haswell).", OPENBLAS_CORE),
        "essential": Value("boolean", "Include Debian's Essential packages (default true)."),
    },
)

INPUT = table(
    "A data input: a local path (or pattern), or a URL with its sha256.",
    {
        "path": string("A path relative to the project, or where a URL input appears."),
        "url": string("An http(s):// or file:// URL.", URL_QUERY),
        "sha256": string("The URL's sha256 (64 lowercase hex digits).", SHA256),
    },
    one_of_required=("path", "url"),
    dependent={"url": ("sha256",), "sha256": ("url",)},
)

HARDWARE = table(
    "What the step needs of the machine; each constraint is a Nix system feature.",
    {
        "gpu": Value("string", "The GPU vendor.", enum=GPU_VENDORS),
        "compute_capability": string('Minimum CUDA compute capability, e.g. "8.0".', VERSION),
        "cuda": string('Minimum CUDA version the driver supports, e.g. "12.2".', VERSION),
        "cpu_features": strings("CPU flags as /proc/cpuinfo names them.", CPU_FLAG),
        "memory_gb": Value("integer", "Minimum memory in GB.", minimum=1),
        "pin_profile": Value(
            "flag_or_string",
            "Pin the exact GPU profile into the step's hash: true (this machine's GPU) or "
            "the profile line of `reproflake hw`.",
        ),
    },
    dependent={"compute_capability": ("gpu",), "cuda": ("gpu",), "pin_profile": ("gpu",)},
)

VARIABLES = Value(
    "map",
    "Environment variables: NAME = string or number.",
    key_pattern=VAR,
    values=Value("scalar", ""),
)

STEP = table(
    "A step: a command run in an environment, writing its outputs to $OUT.",
    {
        "env": string("The environment it runs in.", NAME),
        "run": string("The command (/bin/sh -c)."),
        "sources": strings("Project files or patterns the step reads."),
        "inputs": strings("Inputs it reads (names of [inputs.NAME])."),
        "needs": strings("Steps whose outputs it reads (names of [steps.NAME])."),
        "outputs": strings("What it writes under $OUT.", non_empty=True),
        "variables": VARIABLES,
        "hardware": HARDWARE,
        "unreproducible": strings("Outputs whose bytes may differ between builds."),
        "tolerance": Value(
            "map",
            "Numeric outputs (.csv, .json, .npy) and the absolute difference allowed.",
            key_pattern=r"\.(csv|json|npy)$",
            values=Value("number", "", minimum=0),
        ),
    },
    required=("env", "run", "outputs"),
)

IMAGE = table(
    "An OCI image of one step.",
    {
        "step": string("The step.", NAME),
        "entrypoint": Value("list", "The entrypoint's arguments.", item=Value("string")),
        "cmd": Value("list", "The default arguments.", item=Value("string")),
        "env": Value(
            "map",
            "Environment variables of the image.",
            key_pattern=VAR,
            values=Value("scalar", ""),
        ),
        "workdir": string("The working directory (absolute).", ABSOLUTE),
        "labels": Value("map", "OCI labels.", key_pattern=LABEL_KEY, values=Value("string", "")),
        "outputs": string("Where the step's outputs go (absolute).", ABSOLUTE),
        "workspace": Value("boolean", "Include the step's working directory (default true)."),
    },
    required=("step",),
)

NIX = table(
    "Where the flake takes reproflake's Nix library from.",
    {"library": string('"vendored" (default) or the URL of reproflake\'s flake.')},
)

CACHE = table(
    "Nix binary caches to read from, and their public keys.",
    {
        "urls": strings("Binary cache URLs.", CACHE_URL),
        "public_keys": strings("Public keys (NAME:BASE64).", PUBLIC_KEY),
    },
    dependent={"urls": ("public_keys",)},
)

SPEC = table(
    "reproflake.toml",
    {
        "project": PROJECT,
        "debian": DEBIAN,
        "python": PYTHON,
        "environments": named("Environments by name.", ENVIRONMENT, non_empty=True),
        "inputs": named("Data inputs by name.", INPUT),
        # "default" is the flake's package of all steps.
        "steps": named("Steps by name.", STEP, reserved=("default",), non_empty=True),
        "nix": NIX,
        "images": named("OCI images by name.", IMAGE),
        "cache": CACHE,
    },
    required=("project", "debian", "environments", "steps"),
)


def allowed(shape: Value) -> set[str]:
    """The keys a table may hold."""
    return set(shape.keys)
