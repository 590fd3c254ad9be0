"""The end-to-end tests' own Nix store (tests/teststore.py): where it lives, what seeds it,
its layout, and the private mount that puts it in place (no Nix needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import teststore

TESTS = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0


def test_location_defaults_to_var_cache_and_follows_the_variable() -> None:
    assert teststore.location({}) == Path("/var/cache/reproflake-tests")
    assert teststore.location({"REPROFLAKE_TEST_STORE": ""}) == teststore.DEFAULT_LOCATION
    assert teststore.location({"REPROFLAKE_TEST_STORE": "/srv/t"}) == Path("/srv/t")


def test_a_relative_location_is_refused_with_what_to_do() -> None:
    with pytest.raises(teststore.StoreError) as e:
        teststore.location({"REPROFLAKE_TEST_STORE": "store"})
    message = str(e.value)
    assert "REPROFLAKE_TEST_STORE='store'" in message and "absolute" in message


def test_only_flat_content_addressed_files_seed_the_store() -> None:
    listing: list[dict[str, object]] = [
        {"path": "/nix/store/b-x.deb", "ca": "fixed:sha256:0abc"},
        {"path": "/nix/store/a-y.whl", "ca": "fixed:sha512:0abc"},
        {"path": "/nix/store/c-env", "ca": "fixed:r:sha256:0abc"},  # built, content-addressed
        {"path": "/nix/store/d-x.drv", "ca": "text:sha256:0abc"},
        {"path": "/nix/store/e-step"},  # input-addressed
        {"path": "/nix/store/f-z", "ca": None},
    ]
    assert teststore.seed_paths(listing) == ["/nix/store/a-y.whl", "/nix/store/b-x.deb"]


def test_prepare_makes_the_layout_nix_expects_and_keeps_what_is_there(tmp_path: Path) -> None:
    teststore.prepare(tmp_path)
    nix = tmp_path / "nix"
    assert (nix / "store").stat().st_mode & 0o7777 == 0o1775
    assert (nix / "var/nix/gcroots/auto").is_dir() and (nix / "var/nix/profiles").is_dir()
    assert "tests' own Nix store" in (nix / teststore.MARKER).read_text()
    (nix / "store" / "kept").write_text("x")
    teststore.prepare(tmp_path)
    assert (nix / "store" / "kept").read_text() == "x"


def test_a_threaded_process_is_refused_before_anything_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(teststore.os, "geteuid", lambda: 0)
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(teststore.StoreUnavailable) as e:
            teststore.enter(tmp_path, target=tmp_path / "target")
    finally:
        release.set()
        worker.join()
    assert "other threads" in str(e.value)
    assert not (tmp_path / "target").exists()


def test_without_root_the_reason_is_given_and_nothing_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(teststore.os, "geteuid", lambda: 1000)
    with pytest.raises(teststore.StoreUnavailable) as e:
        teststore.isolate({"REPROFLAKE_TEST_STORE": str(tmp_path / "t")})
    assert "need root" in str(e.value) and "CAP_SYS_ADMIN" in str(e.value)
    assert not (tmp_path / "t").exists()


CHILD = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import teststore
target = Path(sys.argv[3])
before = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
fd = teststore.enter(Path(sys.argv[2]), target=target)
pool = sorted(os.listdir(target / teststore.USERPOOL))
print((target / teststore.MARKER).exists(), os.listdir(fd) == os.listdir(before), pool, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not IS_ROOT and not os.environ.get("CI"), reason="mounting needs root")
def test_the_mount_is_seen_by_the_process_only_never_by_the_machine(tmp_path: Path) -> None:
    store, target = tmp_path / "store", tmp_path / "target"
    teststore.prepare(store)
    target.mkdir()
    (target / "machine-file").write_text("the machine's")
    (target / teststore.USERPOOL).mkdir(parents=True)
    (target / teststore.USERPOOL / "995").write_text("")  # a build user's lock
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(TESTS), str(store), str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        # The child sees the tests' store at target, the machine's through its descriptor,
        # and the machine's build-user locks.
        seen = child.stdout.readline().split()
        # While the child holds the mount, this process (the machine's namespace) does not
        # see it: the mount did not propagate.
        here = sorted(os.listdir(target))
        child.stdin.close()
        child.wait(timeout=30)
    assert child.returncode == 0
    assert seen == ["True", "True", "['995']"]
    assert here == ["machine-file", "var"]


def test_environments_and_pinned_files_are_kept_for_the_next_session_steps_are_not() -> None:
    def info(name: str, ca: str | None = None) -> dict[str, object]:
        return {"path": f"/nix/store/{'a' * 32}-{name}", "ca": ca}

    assert teststore.worth_keeping(info("reproflake-env-py", "fixed:r:sha256:0abc"))
    assert teststore.worth_keeping(info("reproflake-env-paper"))
    assert teststore.worth_keeping(info("numpy-2.2.6.whl", "fixed:sha256:0abc"))
    assert not teststore.worth_keeping(info("reproflake-step-fit", "fixed:r:sha256:0abc"))
    assert not teststore.worth_keeping(info("x-reproflake-env-py"))


def test_only_roots_under_the_sessions_directory_count() -> None:
    text = (
        "/tmp/pytest-of-root/pytest-7/e2e0/demo/results/fit -> /nix/store/b-step\n"
        "/tmp/pytest-of-root/pytest-7/e2e0/demo/.reproflake/cache/gcroots/lock-1 -> /nix/store/a-lock\n"
        "/tmp/pytest-of-root/pytest-70/x/results/fit -> /nix/store/c-other-session\n"
        "/proc/12/maps -> /nix/store/d-running\n"
        "/tmp/pytest-of-root/pytest-7/e2e0/demo/results/again -> /nix/store/b-step\n"
    )
    assert teststore.parse_roots(text, Path("/tmp/pytest-of-root/pytest-7")) == [
        "/nix/store/a-lock",
        "/nix/store/b-step",
    ]
