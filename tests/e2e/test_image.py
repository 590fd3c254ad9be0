"""`reproflake image` end to end: real OCI clients from Debian read what it writes.

skopeo and podman accept almost anything; umoci checks diff_ids, sizes and media types
strictly (but rejects zstd); reproflake's own validator checks digests and referrers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproflake.artifacts.validate import check_layout
from reproflake.fsclock import RACY_NS
from tests.e2e.conftest import git, raw_nix_build, reproflake
from tests.e2e.test_hardware_scheduling import fake_gpu_path

pytestmark = pytest.mark.e2e


def tool(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def export(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    run = reproflake("image", "report", *args, cwd=root, env=env)
    return run.stdout.split(": ", 1)[1].split()[0]


def manifest_of(layout: Path) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_bytes())
    digest = index["manifests"][0]["digest"]
    return dict(json.loads((layout / "blobs/sha256" / digest[7:]).read_bytes()))


def config_of(layout: Path) -> dict[str, object]:
    manifest = manifest_of(layout)
    digest = manifest["config"]["digest"]  # type: ignore[index]
    return dict(json.loads((layout / "blobs/sha256" / digest[7:]).read_bytes()))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1, storing into a temporary directory."""
    base = tmp_path_factory.mktemp("registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {base / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_clients_read_every_format_and_compression(
    python_project: Path, tmp_path: Path, registry: str
) -> None:
    root = python_project
    layout = tmp_path / "image"
    digest = export(root, "-o", str(layout))
    assert check_layout(layout) == []
    inspect = json.loads(tool("skopeo", "inspect", f"oci:{layout}:latest").stdout)
    assert inspect["Digest"] == digest
    labels = inspect["Labels"]
    assert labels["dev.reproflake.step"] == "report"
    assert labels["org.opencontainers.image.created"] == "1980-01-01T00:00:00Z" or labels[
        "org.opencontainers.image.created"
    ].endswith("Z")
    assert len(labels["dev.reproflake.environment.packages.sha256"]) == 64
    assert labels["org.opencontainers.image.description"].startswith("the report of")
    # The provenance referrer: an in-toto statement whose subject is the image.
    index = json.loads((layout / "index.json").read_bytes())
    referrer = next(m for m in index["manifests"] if m.get("artifactType"))
    ref_doc = json.loads((layout / "blobs/sha256" / referrer["digest"][7:]).read_bytes())
    assert ref_doc["subject"]["digest"] == digest
    statement = json.loads(
        (layout / "blobs/sha256" / ref_doc["layers"][0]["digest"][7:]).read_bytes()
    )
    assert statement["subject"][0]["digest"]["sha256"] == digest[7:]
    names = [d["name"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]]
    assert any(n.startswith("deb:python3.11=") for n in names)
    assert any(n.startswith("wheel:numpy==") for n in names)

    # skopeo copies every compression between dirs, archives and the registry.
    for compression in ("gzip", "zstd", "none"):
        archive = tmp_path / f"image-{compression}.tar"
        export(root, "--format", "oci-archive", "--compression", compression, "-o", str(archive))
        assert check_layout(archive) == []
        copy = tmp_path / f"copy-{compression}"
        tool("skopeo", "copy", f"oci-archive:{archive}:latest", f"oci:{copy}:latest")
        tool(
            "skopeo", "copy", "--dest-tls-verify=false", f"oci:{copy}:latest",
            f"docker://{registry}/demo/report:{compression}",
        )  # fmt: skip
        if compression != "zstd":  # umoci rejects zstd layers
            bundle = tmp_path / f"bundle-{compression}"
            tool("umoci", "unpack", "--image", f"{copy}:latest", str(bundle))
            report = bundle / "rootfs/work/results/report/report.json"
            assert report.read_bytes() == (root / "results/report/report.json").read_bytes()

    # --push: the image by skopeo, byte for byte, and its provenance beside it.
    export(root, "--push", f"{registry}/demo/pushed:v1")
    pushed = tool(
        "skopeo", "inspect", "--tls-verify=false", f"docker://{registry}/demo/pushed:v1"
    ).stdout
    assert json.loads(pushed)["Digest"] == digest
    referrers = tool(
        "skopeo", "inspect", "--raw", "--tls-verify=false",
        f"docker://{registry}/demo/pushed:sha256-{digest[7:]}",
    ).stdout  # fmt: skip
    assert referrer["digest"] in referrers

    # podman loads the archive and runs the entrypoint: the report, computed inside the
    # image by the step's own Python and numpy, is the one the build wrote.
    archive = tmp_path / "image-gzip.tar"
    loaded = tool("podman", "load", "-i", str(archive)).stdout
    image_id = loaded.strip().rsplit(" ", 1)[-1]
    ran = tool(
        "podman", "run", "--rm", "--network", "none", "--runtime", "runc",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image_id,
    )  # fmt: skip
    expected = json.loads((root / "results/report/report.json").read_bytes())
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == expected


def test_exports_are_identical_across_clones_and_clocks(
    python_project: Path, tmp_path: Path
) -> None:
    digests = []
    for i, tz in enumerate(("UTC", "Asia/Tokyo")):
        clone = tmp_path / f"clone{i}" / ("deep" * i) / "demo"
        shutil.copytree(
            python_project, clone, symlinks=True, ignore=shutil.ignore_patterns("results")
        )
        env = {"TZ": tz, "XDG_CACHE_HOME": str(tmp_path / f"cache{i}"), "SOURCE_DATE_EPOCH": str(i)}
        export(clone, "--format", "oci-archive", "-o", str(tmp_path / f"a{i}.tar"), env=env)
        digests.append(hashlib.sha256((tmp_path / f"a{i}.tar").read_bytes()).hexdigest())
        time.sleep(1.1)
    assert digests[0] == digests[1]


def test_changing_an_output_keeps_every_environment_layer(project_copy: Path) -> None:
    root = project_copy
    export(root, "-o", "before")
    script = root / "src/report.py"
    script.write_text(script.read_text().replace('"rows":', '"n_rows":'))
    export(root, "-o", "after")
    before = config_of(root / "before")["history"], manifest_of(root / "before")["layers"]
    after = config_of(root / "after")["history"], manifest_of(root / "after")["layers"]
    for (hb, lb), (ha, la) in zip(zip(*before, strict=True), zip(*after, strict=True), strict=True):
        assert hb == ha
        if hb["comment"].startswith("environment"):
            assert lb == la, hb["comment"]
        else:
            assert lb != la, hb["comment"]  # the sources and the outputs changed


def test_a_gpu_step_image_requires_its_cuda(project_copy: Path, tmp_path: Path) -> None:
    root = project_copy
    with open(root / "reproflake.toml", "a") as f:
        f.write(
            '\n[steps.train]\nenv = "py"\nrun = "echo trained > $OUT/model"\noutputs = ["model"]\n'
            'hardware = { gpu = "nvidia", cuda = "12.2", compute_capability = "8.0" }\n'
            '\n[images.train]\nstep = "train"\nentrypoint = ["cat", "results/train/model"]\n'
        )
    path = fake_gpu_path(tmp_path)
    run = reproflake("image", "train", "-o", "train", cwd=root, env={"PATH": path})
    assert "Traceback" not in run.output
    config = config_of(root / "train")
    env = dict(e.split("=", 1) for e in config["config"]["Env"])  # type: ignore[index]
    assert env["NVIDIA_REQUIRE_CUDA"] == "cuda>=12.2"
    assert env["NVIDIA_REQUIRE_ARCH"] == "arch>=8.0"
    labels = config["config"]["Labels"]  # type: ignore[index]
    assert labels["dev.reproflake.hardware.cuda"] == "12.2"
    assert labels["dev.reproflake.hardware.gpu"] == "nvidia"
    assert labels["dev.reproflake.system-features"] == "cuda-12.2,gpu-nvidia,gpu-sm-8.0"
    assert json.loads(labels["dev.reproflake.hardware"]) == {
        "compute_capability": "8.0", "cuda": "12.2", "gpu": "nvidia",
    }  # fmt: skip


def wait_until_quiet() -> None:
    """The copy's files are new: an export's snapshot keeps a file changed within RACY_NS
    of it without its times, and later judges it by its bytes, so a touch alone would not
    count (tests/unit/test_noop.py). These tests touch a file and expect it to."""
    time.sleep(RACY_NS / 1e9 + 0.2)


def test_a_second_export_with_nothing_changed_does_no_work(project_copy: Path) -> None:
    wait_until_quiet()
    first = reproflake("image", "report", cwd=project_copy)
    second = reproflake("image", "report", cwd=project_copy)
    assert "(unchanged)" in second.stdout and "(unchanged)" not in first.stdout
    os.utime(project_copy / "src/report.py")
    third = reproflake("image", "report", cwd=project_copy)
    assert "(unchanged)" not in third.stdout
    assert third.stdout.split()[1] == first.stdout.split()[1]


def test_an_image_removed_or_in_another_format_is_written_without_nix(
    project_copy: Path, tmp_path: Path
) -> None:
    """With nothing changed since the last export, only the image is written: from the
    export's record, not the project, so Nix is not needed (here it is not on PATH).
    The bytes are those the full path writes."""
    wait_until_quiet()
    digest = export(project_copy)
    layout = project_copy / "results/report.oci"
    before = _tree(layout)
    shutil.rmtree(layout)
    (tmp_path / "bin").mkdir()
    no_nix = {"PATH": str(tmp_path / "bin")}
    assert export(project_copy, env=no_nix) == digest
    assert _tree(layout) == before
    archive = tmp_path / "again.tar"
    export(project_copy, "--format", "oci-archive", "--compression", "none", "-o", str(archive),
           env=no_nix)  # fmt: skip
    # A new time on a source: the full path (which needs Nix) writes the same bytes.
    os.utime(project_copy / "src/report.py")
    run = reproflake("image", "report", cwd=project_copy, env=no_nix, check=False)
    assert run.returncode != 0 and "Nix is not installed" in run.stderr
    full = tmp_path / "full.tar"
    export(project_copy, "--format", "oci-archive", "--compression", "none", "-o", str(full))
    assert full.read_bytes() == archive.read_bytes()


def test_an_unknown_image_is_a_usage_error(project_copy: Path) -> None:
    run = reproflake("image", "nope", cwd=project_copy, check=False)
    assert run.returncode == 2
    assert "unknown image 'nope'" in run.stderr and "known images: report" in run.stderr


def _tree(top: Path) -> dict[str, bytes]:
    """Every file under ``top`` by relative path: its bytes."""
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def test_nix_build_of_the_image_gives_the_exported_bytes(
    project_copy: Path, tmp_path: Path
) -> None:
    """`nix build .#image-report` (raw Nix, sandbox on, offline) writes, in the sandbox
    with the environment's own python3, the bytes `reproflake image report` writes."""
    root = project_copy
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    export(root, "-o", str(tmp_path / "first.oci"), env=env)  # generated files up to date
    if not (root / ".git").is_dir():
        git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "--allow-empty", "-m", "image", cwd=root)  # a clean tree: self.rev
    export(root, "-o", str(tmp_path / "cli.oci"), env=env)
    export(root, "--format", "oci-archive", "--compression", "none",
           "-o", str(tmp_path / "cli.tar"), env=env)  # fmt: skip
    layout = Path(raw_nix_build(root, "image-report"))
    archive = Path(
        raw_nix_build(root, "legacyPackages.x86_64-linux.images.report.oci-archive.none")
    )
    cli = _tree(tmp_path / "cli.oci")
    assert "index.json" in cli and len(cli) > 10
    assert _tree(layout) == cli
    assert archive.read_bytes() == (tmp_path / "cli.tar").read_bytes()
    # The image names the commit it was built from, both ways.
    head = git("rev-parse", "HEAD", cwd=root).strip()
    assert config_of(layout)["config"]["Labels"]["org.opencontainers.image.revision"] == head  # type: ignore[index]
