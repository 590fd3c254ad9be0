"""What `build` puts in the store itself: only what the requested steps need."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from reproflake import executor, graph, nixgen
from reproflake.commands._project import Project, store_items
from reproflake.lock.model import Lock, LockedWheel
from reproflake.spec import Spec, parse

TEXT = """
[project]
name = "p"
[debian]
mirror = "http://m.invalid/debian"
suite = "bookworm"
[environments.cpu]
debian = ["python3"]
python = ["small==1"]
[environments.gpu]
debian = ["python3"]
python = ["huge==1"]
[steps.a]
env = "cpu"
run = "true"
outputs = ["o"]
[steps.b]
env = "gpu"
run = "true"
outputs = ["o"]
"""


def wheel(name: str) -> LockedWheel:
    filename = f"{name}-1-py3-none-any.whl"
    return LockedWheel(name, "1", filename, f"file:///wheels/{filename}", "ab" * 32)


def test_only_the_requested_steps_wheels_are_added(
    tmp_path: Path, make_lock: Callable[[Spec], Lock]
) -> None:
    spec = parse(TEXT, tmp_path / "reproflake.toml")
    lock = make_lock(spec)
    small, huge = wheel("small"), wheel("huge")
    envs = dict(lock.environments)
    envs["cpu"] = dataclasses.replace(envs["cpu"], wheels=(small.key,))
    envs["gpu"] = dataclasses.replace(envs["gpu"], wheels=(huge.key,))
    lock = dataclasses.replace(lock, wheels={small.key: small, huge.key: huge}, environments=envs)
    p = Project(spec, lock, graph.build(spec), nixgen.Facts(sources={}, external=frozenset()))

    def names(steps: list[str], **kw: bool) -> list[str]:
        return sorted(i.what for i in store_items(p, steps, **kw))

    assert names(["a"]) == [f"wheel {small.key}"]
    assert names(["b"]) == [f"wheel {huge.key}"]
    assert names(["a", "b"]) == sorted([f"wheel {small.key}", f"wheel {huge.key}"])
    assert isinstance(store_items(p, ["a"])[0], executor.StoreItem)


def test_a_rebuild_that_failed_is_not_a_difference() -> None:
    from reproflake._proc import Result

    differs = executor._recheck(
        Result(1, "", "error: derivation '/nix/store/x.drv' may not be deterministic: "
               "output '/nix/store/y' differs")
    )  # fmt: skip
    assert (differs.same, differs.differs) == (False, True)
    crashed = executor._recheck(Result(1, "", "error: unexpected end-of-file\n"))
    assert (crashed.same, crashed.differs) == (False, False)
    assert crashed.detail == ("error: unexpected end-of-file",)
    assert executor._recheck(Result(0, "", "")).same
