"""The machine's hardware profile, and which declared constraints it meets.

Declared constraints become Nix system features (see spec.Hardware.features);
the probe decides which of them this machine may advertise to Nix, so Nix
schedules a GPU step only where it can run: here, or on a remote builder that
advertises the same feature.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from reproflake import _proc


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str
    driver: str


@dataclass(frozen=True)
class HostProfile:
    cpu_model: str
    cpu_flags: tuple[str, ...]
    memory_gb: int
    gpus: tuple[Gpu, ...]
    cuda: str | None

    def offers(self, feature: str) -> bool:
        kind, _, value = feature.partition("-")
        if feature.startswith("cpu-"):
            return feature[4:] in self.cpu_flags
        if feature == "gpu-nvidia":
            return bool(self.gpus)
        if feature.startswith("gpu-sm-"):
            want = _version(feature[len("gpu-sm-") :])
            return any(_version(g.compute_capability) >= want for g in self.gpus)
        if kind == "cuda":
            return self.cuda is not None and _version(self.cuda) >= _version(value)
        if kind == "memory" and value.endswith("g"):
            return self.memory_gb >= int(value[:-1])
        return False

    def missing(self, features: Iterable[str]) -> list[str]:
        return sorted(f for f in features if not self.offers(f))

    def describe(self) -> str:
        gpus = (
            ", ".join(f"{g.name} (sm {g.compute_capability})" for g in self.gpus) or "no NVIDIA GPU"
        )
        cuda = f"CUDA {self.cuda}" if self.cuda else "no CUDA driver"
        return f"{self.cpu_model}; {self.memory_gb} GB; {gpus}; {cuda}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def _cpu(cpuinfo: str) -> tuple[str, tuple[str, ...]]:
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
    return (
        model.group(1).strip() if model else "unknown CPU",
        tuple(sorted(set(flags.group(1).split()))) if flags else (),
    )


def _memory_gb(meminfo: str) -> int:
    m = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    return int(m.group(1)) // (1024 * 1024) if m else 0


def _nvidia() -> tuple[tuple[Gpu, ...], str | None]:
    """GPUs and the CUDA version the driver supports, from nvidia-smi when it exists."""
    if shutil.which("nvidia-smi") is None:
        return (), None
    query = _proc.run(
        ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
        check=False,
    )
    gpus = []
    if query.returncode == 0:
        for line in query.stdout.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 3 and re.fullmatch(r"\d+\.\d+", parts[1]):
                gpus.append(Gpu(*parts))
    header = _proc.run(["nvidia-smi"], check=False)
    m = re.search(r"CUDA Version:\s*(\d+\.\d+)", header.stdout)
    return tuple(gpus), m.group(1) if m else None


def probe(proc_root: Path = Path("/proc")) -> HostProfile:
    def read(name: str) -> str:
        try:
            return (proc_root / name).read_text()
        except OSError:
            return ""

    model, flags = _cpu(read("cpuinfo"))
    gpus, cuda = _nvidia()
    return HostProfile(model, flags, _memory_gb(read("meminfo")), gpus, cuda)


def remote_builders_configured() -> bool:
    """Whether Nix has remote builders (which may offer features this machine lacks)."""
    if os.environ.get("REPROFLAKE_BUILDERS"):
        return True
    result = _proc.run(
        ["nix", "--extra-experimental-features", "nix-command", "show-config"], check=False
    )
    m = re.search(r"^builders = (.*)$", result.stdout, re.M)
    value = m.group(1).strip() if m else ""
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError:
            return False
    return any(line.strip() and not line.lstrip().startswith("#") for line in value.splitlines())


@dataclass(frozen=True)
class Gate:
    """Which declared features this machine advertises to Nix, and which steps no machine
    can build (their hardware is missing here and Nix has no remote builders)."""

    host: HostProfile
    offered: tuple[str, ...]
    unbuildable: Mapping[str, tuple[str, ...]]  # step → the features nobody offers

    def why(self, step: str) -> str:
        """The one wording of a refusal, shared by `build` and `plan`."""
        return (
            f"needs {', '.join(self.unbuildable[step])}; this machine has "
            f"{self.host.describe()}, and Nix has no remote builders"
        )


GATE_HINT = (
    "build them on a machine that has this hardware, or add a Nix remote builder that "
    "advertises these system features (nix.conf: builders)"
)


def gate(required: Mapping[str, Iterable[str]], host: HostProfile | None = None) -> Gate:
    """The hardware gate for steps and the features each requires (probed once)."""
    host = host or probe()
    required = {s: tuple(fs) for s, fs in required.items()}
    offered = tuple(sorted({f for fs in required.values() for f in fs if host.offers(f)}))
    missing = {s: tuple(host.missing(fs)) for s, fs in required.items() if host.missing(fs)}
    if missing and remote_builders_configured():
        missing = {}  # a builder may offer them: Nix decides, and says so if none does
    return Gate(host, offered, dict(sorted(missing.items())))
