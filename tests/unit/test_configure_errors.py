"""nix/configure.sh's error path: a maintainer script that fails is named, its output shown.

The `run` stage is what runs inside an environment's root while Nix builds it. Here it
runs, unchanged, in a root made of this machine's own /usr (its dpkg, dash and Perl) and a
crafted dpkg database: one unpacked package whose maintainer script fails, as a script
that needs something the sandbox lacks would.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from reproflake._paths import data_dir

CONFIGURE = data_dir("nix") / "configure.sh"


def crafted_root(root: Path, script: str) -> None:
    """A root whose dpkg database holds `broken` 1.0, unpacked, with a failing ``script``."""
    root.mkdir()
    for name in ("bin", "lib", "lib64", "sbin"):
        (root / name).symlink_to(f"usr/{name}")
    for d in ("usr", "etc/dpkg/dpkg.cfg.d", "tmp", "var/log", "dev", "proc"):
        (root / d).mkdir(parents=True)
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers", "alternatives"):
        (admin / d).mkdir(parents=True)
    for f in ("available", "diversions", "statoverride", "triggers/Unincorp"):
        (admin / f).touch()
    (admin / "status").write_text(
        textwrap.dedent("""\
            Package: broken
            Status: install ok unpacked
            Priority: optional
            Maintainer: nobody <nobody@example.invalid>
            Architecture: all
            Version: 1.0
            Description: a package whose maintainer script fails

        """)
    )
    (admin / "info/broken.list").write_text("/.\n")
    maint = admin / f"info/broken.{script}"
    maint.write_text("#!/bin/sh\necho 'broken: cannot reach the license server' >&2\nexit 3\n")
    maint.chmod(0o755)
    shutil.copy(CONFIGURE, root / ".reproflake-configure.sh")


def configure(root: Path) -> subprocess.CompletedProcess[str]:
    """The `run` stage in ``root`` (in a user and mount namespace: nothing of the host
    is written; its /usr and /dev are bound in, as the `chroot` stage binds /dev)."""
    inner = (
        'mount --rbind /usr "$1/usr" && mount --rbind /dev "$1/dev" && exec chroot "$1" /usr/bin/env -i '
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "
        "DEBIAN_FRONTEND=noninteractive /bin/sh -e /.reproflake-configure.sh run"
    )
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is needed"
    return subprocess.run(
        [unshare, "-r", "-m", "sh", "-c", inner, "sh", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian host's dpkg")
@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("postinst", "maintainer scripts of broken failed"),
        ("preinst", "package broken 1.0: its preinst script failed"),
    ],
)
def test_a_failing_maintainer_script_is_named_with_its_output(
    tmp_path: Path, script: str, says: str
) -> None:
    root = tmp_path / "root"
    crafted_root(root, script)
    done = configure(root)
    assert done.returncode == 1, done.stderr
    assert "broken: cannot reach the license server" in done.stderr
    assert says in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("reproflake: ")


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian host's dpkg")
def test_a_succeeding_script_configures_the_package(tmp_path: Path) -> None:
    root = tmp_path / "root"
    crafted_root(root, "postinst")
    (root / "var/lib/dpkg/info/broken.postinst").write_text("#!/bin/sh\nexit 0\n")
    done = configure(root)
    assert done.returncode == 0, done.stderr
    assert "Status: install ok installed" in (root / "var/lib/dpkg/status").read_text()
