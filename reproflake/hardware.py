"""The machine's hardware profile, and which declared constraints it meets.

Declared constraints become Nix system features (see spec.Hardware.features);
the probe decides which of them this machine may advertise to Nix, so Nix
schedules a GPU step only where it can run: here, or on a remote builder that
advertises the same feature.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from reproflake import _proc
from reproflake.errors import HardwareError
from reproflake.spec import Spec, gpu_profile_feature


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str
    driver: str

    @property
    def profile(self) -> str:
        """The exact GPU a step may pin (spec: hardware.pin_profile): model and driver."""
        return f"{self.name}, driver {self.driver}"


@dataclass(frozen=True)
class AmdGpu:
    name: str
    gfx: str  # the GPU's architecture, e.g. "gfx90a" (empty when unknown)
    driver: str


@dataclass(frozen=True)
class HostProfile:
    cpu_model: str
    cpu_flags: tuple[str, ...]
    memory_gb: int
    gpus: tuple[Gpu, ...]
    cuda: str | None
    amd_gpus: tuple[AmdGpu, ...] = ()

    def offers(self, feature: str) -> bool:
        kind, _, value = feature.partition("-")
        if feature.startswith("cpu-"):
            return feature[4:] in self.cpu_flags
        if feature == "gpu-nvidia":
            return bool(self.gpus)
        if feature.startswith("gpu-profile-"):
            return any(gpu_profile_feature(g.profile) == feature for g in self.gpus)
        if feature == "gpu-amd":
            return bool(self.amd_gpus)
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
        if self.amd_gpus:
            gpus += "; " + ", ".join(g.name for g in self.amd_gpus)
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


AMD_VENDOR = "0x1002"  # PCI vendor id of AMD (ATI) in sysfs


def _amd(sys_root: Path) -> tuple[AmdGpu, ...]:
    """AMD GPUs: from rocm-smi when it exists, else from sysfs (the amdgpu driver's cards)."""
    if shutil.which("rocm-smi") is not None:
        found = _proc.run(["rocm-smi", "--showproductname", "--json"], check=False)
        try:
            cards = json.loads(found.stdout) if found.returncode == 0 else {}
        except ValueError:
            cards = {}
        gpus = [
            AmdGpu(
                str(c.get("Card series") or c.get("Card model") or "AMD GPU"),
                str(c.get("GFX Version") or ""),
                "amdgpu",
            )
            for name, c in sorted(cards.items())
            if name.startswith("card") and isinstance(c, dict)
        ]
        if gpus:
            return tuple(gpus)
    gpus = []
    for card in sorted((sys_root / "class/drm").glob("card[0-9]*")):
        device = card / "device"
        try:
            vendor = (device / "vendor").read_text().strip()
        except OSError:
            continue
        if vendor == AMD_VENDOR and "-" not in card.name:  # card0, not card0-DP-1
            try:
                model = (device / "product_name").read_text().strip()
            except OSError:
                model = "AMD GPU " + (device / "device").read_text().strip()
            gpus.append(AmdGpu(model, "", "amdgpu"))
    return tuple(gpus)


def probe(proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys")) -> HostProfile:
    def read(name: str) -> str:
        try:
            return (proc_root / name).read_text()
        except OSError:
            return ""

    model, flags = _cpu(read("cpuinfo"))
    gpus, cuda = _nvidia()
    return HostProfile(model, flags, _memory_gb(read("meminfo")), gpus, cuda, _amd(sys_root))


def resolve_pins(spec: Spec, host: HostProfile | None = None) -> Spec:
    """The spec with ``pin_profile = true`` replaced by this machine's GPU profile (probed
    only when a step asks): from here on, every reader sees the one exact profile."""
    pinning = [
        name
        for name, step in spec.steps.items()
        if step.hardware is not None and step.hardware.pin_profile is True
    ]
    if not pinning:
        return spec
    host = host or probe()
    profiles = sorted({g.profile for g in host.gpus})
    if len(profiles) != 1:
        found = (
            "no NVIDIA GPU" if not profiles else "GPUs of several profiles: " + "; ".join(profiles)
        )
        raise HardwareError(
            f"{spec.where('steps', pinning[0], 'hardware')}: steps.{pinning[0]}.hardware."
            "pin_profile: true pins this machine's "
            f"GPU profile, and this machine has {found}",
            hint='write the profile itself: pin_profile = "MODEL, driver VERSION" (the '
            "profile line of `reproflake hw` on the GPU machine)",
        )
    steps = dict(spec.steps)
    for name in pinning:
        hw = steps[name].hardware
        assert hw is not None
        steps[name] = replace(steps[name], hardware=replace(hw, pin_profile=profiles[0]))
    return replace(spec, steps=steps)


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
    """Which declared features this machine advertises to Nix, which steps only a remote
    builder can build, and which steps no machine can build."""

    host: HostProfile
    offered: tuple[str, ...]
    unbuildable: Mapping[str, tuple[str, ...]]  # step → the features nobody offers
    remote: Mapping[str, str] = field(default_factory=dict)  # step → the builder that can
    builders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # URI → features

    def why(self, step: str) -> str:
        """The one wording of a refusal, shared by `build`, `plan`, `shell` and `image`."""
        if self.builders:
            offers = "; ".join(
                f"{uri} offers {', '.join(fs) or 'no features'}"
                for uri, fs in sorted(self.builders.items())
            )
            others = f"no configured remote builder offers all of them ({offers})"
        else:
            others = "no remote builder is configured"
        return (
            f"needs {', '.join(self.unbuildable[step])}; this machine has "
            f"{self.host.describe()}, and {others}"
        )


GATE_HINT = (
    "build them on a machine that has this hardware, or add a remote builder that "
    "advertises these system features ([[builders]] in reproflake's config.toml, or "
    "nix.conf: builders; see docs/scaling.md)"
)


def gate(
    required: Mapping[str, Iterable[str]],
    host: HostProfile | None = None,
    builders: Mapping[str, Iterable[str]] | None = None,
) -> Gate:
    """The hardware gate for steps and the features each requires (probed once).

    ``builders``: the remote builders reproflake hands Nix, URI → the features each
    advertises. Nix sends a step to a builder only when that one builder advertises every
    feature the step requires, so a step is buildable remotely under the same rule."""
    host = host or probe()
    required = {s: tuple(fs) for s, fs in required.items()}
    offers = {uri: tuple(sorted(set(fs))) for uri, fs in (builders or {}).items()}
    offered = tuple(sorted({f for fs in required.values() for f in fs if host.offers(f)}))
    missing = {s: tuple(host.missing(fs)) for s, fs in required.items() if host.missing(fs)}
    remote = {}
    for step in list(missing):
        able = [uri for uri, fs in sorted(offers.items()) if set(required[step]) <= set(fs)]
        if able:
            remote[step] = able[0]
            del missing[step]
    if missing and remote_builders_configured():
        missing = {}  # nix.conf's builders may offer them: Nix decides, and says so if none does
    return Gate(host, offered, dict(sorted(missing.items())), remote, offers)


# --------------------------------------------------------------------------- advertising
# Nix matches system features as exact strings: a machine with sm 9.0 must also advertise
# gpu-sm-8.0 for a step that asks for "at least 8.0". These are the values a step can name.
COMPUTE_CAPABILITIES = (
    "3.5", "3.7", "5.0", "5.2", "5.3", "6.0", "6.1", "6.2", "7.0", "7.2", "7.5",
    "8.0", "8.6", "8.7", "8.9", "9.0", "10.0", "10.1", "12.0",
)  # fmt: skip
CUDA_VERSIONS = tuple(f"11.{i}" for i in range(9)) + tuple(f"12.{i}" for i in range(10))


def _memory_sizes(total: int) -> list[int]:
    # Every size up to 64 GB, then every 8 GB: enough resolution without a line of thousands.
    return [n for n in range(1, total + 1) if n <= 64 or n % 8 == 0 or n == total]


def advertised(host: HostProfile, required: Iterable[str] = ()) -> tuple[str, ...]:
    """The system features this machine satisfies, as Nix must be told them: every
    value a step may require that the probe meets (``required``: a project's own)."""
    found = {f"cpu-{flag}" for flag in host.cpu_flags}
    found |= {f"memory-{n}g" for n in _memory_sizes(host.memory_gb)}
    candidates = [f"gpu-sm-{c}" for c in COMPUTE_CAPABILITIES]
    candidates += [f"gpu-sm-{g.compute_capability}" for g in host.gpus]
    candidates += [f"cuda-{v}" for v in CUDA_VERSIONS] + (
        [f"cuda-{host.cuda}"] if host.cuda else []
    )
    candidates += [gpu_profile_feature(g.profile) for g in host.gpus]
    candidates += ["gpu-nvidia", "gpu-amd", *required]
    found |= {f for f in candidates if host.offers(f)}
    return tuple(sorted(found))


def nix_default_features() -> tuple[str, ...]:
    """The system features Nix has now (its defaults, or nix.conf's): kept when adding ours."""
    result = _proc.run(
        ["nix", "--extra-experimental-features", "nix-command", "show-config"], check=False
    )
    m = re.search(r"^system-features = (.*)$", result.stdout, re.M)
    return tuple(m.group(1).split()) if m else ()


def nix_conf_line(features: Iterable[str], defaults: Iterable[str] = ()) -> str:
    """The nix.conf line that makes this machine build steps needing ``features``."""
    return "system-features = " + " ".join(sorted(set(defaults)) + sorted(set(features)))


def machines_line(host_name: str, features: Iterable[str], jobs: int, user: str = "root") -> str:
    """The /etc/nix/machines line (Nix's builders) that offers this machine to others:
    URI, systems, SSH key (-: the client's default), max jobs, speed factor, supported
    features, mandatory features (-: none), host key (-: from known_hosts)."""
    return f"ssh-ng://{user}@{host_name} x86_64-linux - {jobs} 1 {','.join(sorted(features)) or '-'} - -"
