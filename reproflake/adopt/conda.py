"""conda environment files (environment.yml): ``dependencies``, mapped by a small table.

conda packages are not Debian's nor PyPI's, so each name is looked up in the tables
below, which say what the package is elsewhere; a name in none of them is listed as not
mapped (in init's output and as a comment in the spec), never guessed. The ``pip:``
list is read as requirement lines. Versions: ``numpy=1.26`` (conda: 1.26.*) becomes
``numpy==1.26.*``, ``numpy==1.26.4``, ``>=``/``<`` ranges are kept; build strings and
channels are dropped with a note. A Debian package takes the suite's version, so a
version asked for one is dropped with a note; ``python=3.x`` only becomes a note.

The YAML is read as a stream of events (iterative, depth-bounded, no aliases, nothing
constructed), so a hostile file cannot recurse the reader to death or build objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from reproflake.adopt import _read, requirements
from reproflake.adopt.model import Imported, Item
from reproflake.errors import UsageError
from reproflake.spec import REQUIREMENT_RE

# conda packages that are the same Python distribution on PyPI under the same name.
# (A word list reads better than 80 quoted strings.)
SAME_ON_PYPI = frozenset(
    """
    aiohttp altair attrs beautifulsoup4 biopython black bokeh catboost click cloudpickle
    cython dask datasets docutils flake8 gensim geopandas h5py ipykernel ipython jinja2
    joblib jupyter jupyterlab keras lightgbm lxml matplotlib mypy netcdf4 networkx nltk
    notebook numba numpy openpyxl packaging pandas pillow plotly polars pyarrow pygments
    pymc pyproj pytest pytest-cov python-dateutil pytz pyyaml pyzmq rasterio requests
    scikit-image scikit-learn scipy seaborn shapely six snakemake spacy sphinx sqlalchemy
    statsmodels sympy tensorflow threadpoolctl tokenizers toolz torchaudio torchvision
    tornado tqdm transformers tzdata xarray xgboost xlrd zarr
    """.split()  # noqa: SIM905
)
# conda packages whose PyPI distribution has another name.
PYPI_NAMES = {
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "numpy-base": "numpy",
    "opencv": "opencv-python-headless",
    "py-opencv": "opencv-python-headless",
    "py-xgboost": "xgboost",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "typing_extensions": "typing-extensions",
}
# conda packages of programs and libraries that Debian packages (under these names).
DEBIAN_NAMES = {
    "bcftools": "bcftools",
    "bowtie2": "bowtie2",
    "bwa": "bwa",
    "bzip2": "bzip2",
    "c-compiler": "gcc",
    "cmake": "cmake",
    "curl": "curl",
    "cxx-compiler": "g++",
    "ffmpeg": "ffmpeg",
    "fortran-compiler": "gfortran",
    "gcc": "gcc",
    "gdal": "gdal-bin",
    "gfortran": "gfortran",
    "git": "git",
    "gnuplot": "gnuplot-nox",
    "graphviz": "graphviz",
    "gxx": "g++",
    "hdf5": "hdf5-tools",
    "imagemagick": "imagemagick",
    "jq": "jq",
    "make": "make",
    "ninja": "ninja-build",
    "nodejs": "nodejs",
    "octave": "octave",
    "openjdk": "default-jdk-headless",
    "pandoc": "pandoc",
    "parallel": "parallel",
    "perl": "perl",
    "pkg-config": "pkg-config",
    "r-base": "r-base-core",
    "r-recommended": "r-recommended",
    "rsync": "rsync",
    "samtools": "samtools",
    "sqlite": "sqlite3",
    "texlive-core": "texlive-latex-base",
    "unzip": "unzip",
    "wget": "wget",
    "xz": "xz-utils",
    "zip": "zip",
    "zstd": "zstd",
}
# Families Debian packages under a prefix of its own: CRAN and Bioconductor.
DEBIAN_PREFIXES = (("r-", "r-cran-"), ("bioconductor-", "r-bioc-"))
# Installers and conda itself: the lock installs wheels without them.
TOOLS = frozenset({"conda", "mamba", "pip", "setuptools", "wheel"})

MAX_DEPTH = 8
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass
class Node:
    """A YAML scalar (str), sequence (list) or mapping (dict), with its line."""

    line: int
    value: str | list[Node] | dict[str, Node] = field(default_factory=list)


def read(root: Path, rel: str, into: Imported) -> None:
    name = _read.display(root, rel)
    doc = load(_read.read_text(root, rel, name), name)
    if not isinstance(doc.value, dict) or not isinstance(
        deps := doc.value.get("dependencies", Node(doc.line, "")).value, list
    ):
        raise UsageError(
            f"{name}:{doc.line}: expected a conda environment: a mapping with a dependencies list",
            hint="dependencies:\n    - python=3.11\n    - numpy",
        )
    if "channels" in doc.value:
        into.notes.append(
            f"{name}:{doc.value['channels'].line}: channels are not used: packages come "
            "from the Debian suite and the package index"
        )
    if "variables" in doc.value:
        into.notes.append(
            f"{name}:{doc.value['variables'].line}: variables are not taken over; set them "
            "in a step's variables"
        )
    for dep in deps:
        where = f"{name}:{dep.line}"
        if isinstance(dep.value, str):
            _package(dep.value, where, into)
        elif isinstance(dep.value, dict) and list(dep.value) == ["pip"]:
            pip = dep.value["pip"].value
            if not isinstance(pip, list) or not all(isinstance(p.value, str) for p in pip):
                raise UsageError(
                    f"{where}: pip: expected a list of requirements",
                    hint="pip:\n      - requests==2.32.3",
                )
            lines = [(p.line, str(p.value).strip()) for p in pip if str(p.value).strip()]
            requirements.take_lines(root, rel, lines, into)
        else:
            raise UsageError(
                f"{where}: expected a package (e.g. numpy=1.26) or a pip: list",
                hint="each entry of dependencies is a conda match spec or pip: [...]",
            )


def _package(spec: str, where: str, into: Imported) -> None:
    text = spec.strip()
    shown = json.dumps(text[:80])
    if "::" in text:  # channel::name
        text = text.split("::", 1)[1].strip()
    m = _NAME.match(text)
    if not m:
        raise UsageError(
            f"{where}: {shown} is not a conda package spec",
            hint="write name, name=version or name>=version",
        )
    conda, rest = m.group(0).lower(), text[m.end() :].strip()
    if conda in TOOLS:
        into.notes.append(f"{where}: skipped {conda}: the lock installs wheels without it")
        return
    if conda in ("python", "python3"):
        asked = f" ({shown})" if rest else ""
        into.notes.append(
            f"{where}: python{asked}: the environment's Python is the Debian suite's "
            "python3 (its version decides which wheels the lock picks)"
        )
        into.debian.append(Item("python3", where))
        return
    debian = _debian_name(conda)
    if debian is not None:
        if rest:
            into.notes.append(
                f"{where}: {shown} is Debian's {debian}; the version is the Debian suite's"
            )
        into.debian.append(Item(debian, where))
        return
    pypi = PYPI_NAMES.get(conda, conda if conda in SAME_ON_PYPI else None)
    if pypi is None:
        into.unmapped.append(Item(spec.strip()[:200], where))
        return
    version, dropped = pip_version(rest)
    requirement = pypi + (version or "")
    if version and not REQUIREMENT_RE.fullmatch(requirement):
        requirement, dropped = pypi, "a version pip cannot read"
    if dropped:
        into.notes.append(f"{where}: {shown}: {dropped} dropped; took {requirement}")
    into.python.append(Item(requirement, where))


def _debian_name(conda: str) -> str | None:
    if conda in DEBIAN_NAMES:
        return DEBIAN_NAMES[conda]
    for prefix, debian in DEBIAN_PREFIXES:
        if conda.startswith(prefix) and len(conda) > len(prefix):
            name = debian + conda[len(prefix) :].replace("_", "-").replace(".", "")
            return name if _DEBIAN_NAME.match(name) else None
    return None


def pip_version(rest: str) -> tuple[str | None, str | None]:
    """A conda version constraint as a PEP 440 specifier, and what was dropped (or None)."""
    if not rest:
        return None, None
    if rest.startswith("["):
        return None, "the bracketed constraint"
    if "|" in rest:
        return None, "the alternative versions (|)"
    build = None
    if rest.startswith("==") or rest[0] in "<>!~":
        version, _, build = rest.partition(" ")
        spec = version.replace(" ", "")
    elif rest.startswith("="):
        version, _, build = rest[1:].partition("=")
        spec = "==" + _wildcard(version.strip())
    else:  # `numpy 1.26.4 py311_0`: the version, then the build
        version, _, build = rest.partition(" ")
        spec = "==" + version if not version.endswith("*") else "==" + _wildcard(version)
    return spec, ("the build string" if build.strip() else None)


def _wildcard(version: str) -> str:
    """conda's ``=1.26`` means 1.26 and anything after it: PEP 440's ``1.26.*``."""
    stem = version.rstrip("*").rstrip(".")
    return stem + ".*"


def load(text: str, name: str) -> Node:
    """The document's tree of strings, lists and mappings, with lines."""
    import yaml

    stack: list[tuple[Node, list[str]]] = []  # open collections, and a mapping's next key
    root: Node | None = None

    def add(node: Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent, key = stack[-1]
        if isinstance(parent.value, list):
            parent.value.append(node)
        elif not key:
            if not isinstance(node.value, str):
                raise UsageError(f"{name}:{node.line}: a mapping key must be a plain string")
            key.append(node.value)
        else:
            assert isinstance(parent.value, dict)
            parent.value[key.pop()] = node

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else 1
            if isinstance(event, yaml.DocumentStartEvent) and root is not None:
                raise UsageError(f"{name}:{line}: more than one YAML document")
            if isinstance(event, yaml.AliasEvent):
                raise UsageError(
                    f"{name}:{line}: YAML aliases (*name) are not read here",
                    hint="write the values out",
                )
            if isinstance(event, yaml.ScalarEvent):
                add(Node(line, event.value))
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise UsageError(
                        f"{name}:{line}: nested deeper than {MAX_DEPTH} levels",
                        hint="an environment file is a few levels deep",
                    )
                empty: list[Node] | dict[str, Node] = (
                    [] if isinstance(event, yaml.SequenceStartEvent) else {}
                )
                stack.append((Node(line, empty), []))
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                add(stack.pop()[0])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{where}: not valid YAML: {problem}", hint="fix the file") from None
    if root is None:
        raise UsageError(f"{name}: empty", hint="dependencies:\n    - numpy")
    return root
