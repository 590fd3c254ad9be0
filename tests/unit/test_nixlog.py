"""Nix's internal-json progress, read from a recorded real build.

fixtures/nix-build-cold.internal-json is the standard error of one real `nix build
--log-format internal-json` (Nix 2.8, sandbox on) of a small project: steps `broken`
(exits 3), `slow` (sleeps 3 s) and `banner` (needs slow, in an environment whose four
packages were not in the store yet). The mirror's host name is replaced by
mirror.invalid; nothing else is changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reproflake import executor, nixlog
from reproflake.nixlog import Act, Activities, Count, Res

FIXTURE = Path(__file__).parent / "fixtures" / "nix-build-cold.internal-json"
# The four packages' sizes as the lock pinned them (Debian's index), not as Nix counted.
DEB_SIZES = {
    "toilet_0.3-1.4_amd64.deb": 22588,
    "toilet-fonts_0.3-1.4_all.deb": 724400,
    "libcaca0_0.99.beta20-3+deb12u1_amd64.deb": 200964,
    "libslang2_2.3.3-3_amd64.deb": 554316,
}


def recorded() -> list[str]:
    return FIXTURE.read_text().splitlines(keepends=True)


def message(**fields: object) -> nixlog.Message:
    parsed = nixlog.parse("@nix " + json.dumps(fields))
    assert parsed is not None
    return parsed


def test_codes_are_nix_2_8s() -> None:
    # src/libutil/logging.hh: a renumbering would silently turn the counts into nonsense.
    assert (Act.COPY_PATH, Act.FILE_TRANSFER, Act.COPY_PATHS, Act.BUILDS, Act.BUILD) == (
        100, 101, 103, 104, 105,
    )  # fmt: skip
    assert (Res.BUILD_LOG_LINE, Res.PROGRESS, Res.SET_EXPECTED) == (101, 105, 106)


def test_parse_takes_only_nix_messages() -> None:
    assert nixlog.parse("error: builder failed\n") is None
    assert nixlog.parse("@nix {not json") is None
    assert nixlog.parse("@nix [1, 2]") is None
    assert nixlog.parse('@nix {"action":"stop","id":3}') == {"action": "stop", "id": 3}


def test_recorded_build_downloads_what_the_lock_pinned() -> None:
    acts = Activities()
    for line in recorded():
        msg = nixlog.parse(line)
        if msg is not None:
            acts.feed(msg)
    assert acts.downloads_done == len(DEB_SIZES)
    assert acts.downloads_running() == 0
    total = sum(DEB_SIZES.values())
    assert acts.total(Act.FILE_TRANSFER) == Count(done=total, expected=total)
    builds = acts.total(Act.BUILDS)
    # Four packages, the environment, slow and banner twice each (a content-addressed
    # derivation and the one it resolves to); broken failed.
    assert (builds.done, builds.running) == (9, 0)
    assert builds.failed > 0
    assert acts.total(Act.COPY_PATHS) == Count()  # no cache configured


def test_bytes_while_the_first_package_downloads() -> None:
    acts = Activities()
    seen: list[Count] = []
    for line in recorded():
        msg = nixlog.parse(line)
        if msg is not None and acts.feed(msg) and acts.downloads_running():
            seen.append(acts.total(Act.FILE_TRANSFER))
    assert seen[0] == Count()  # started, size not known yet
    first = DEB_SIZES["libcaca0_0.99.beta20-3+deb12u1_amd64.deb"]
    assert Count(done=first, expected=first) in seen
    assert all(c.done <= c.expected or c.expected == 0 for c in seen)


def test_set_expected_is_an_announcement_withdrawn_on_stop() -> None:
    acts = Activities()
    acts.feed(message(action="start", id=1, type=Act.REALISE))
    acts.feed(message(action="result", id=1, type=Res.SET_EXPECTED, fields=[Act.COPY_PATH, 900]))
    acts.feed(message(action="result", id=1, type=Res.SET_EXPECTED, fields=[Act.COPY_PATH, 1000]))
    acts.feed(message(action="start", id=2, type=Act.COPY_PATH))
    acts.feed(message(action="result", id=2, type=Res.PROGRESS, fields=[250, 400, 0, 0]))
    assert acts.total(Act.COPY_PATH) == Count(done=250, expected=1000)
    acts.feed(message(action="result", id=2, type=Res.PROGRESS, fields=[400, 400, 0, 0]))
    acts.feed(message(action="stop", id=2))
    assert acts.total(Act.COPY_PATH) == Count(done=400, expected=1000)
    acts.feed(message(action="stop", id=1))
    assert acts.total(Act.COPY_PATH) == Count(done=400, expected=400)


def test_cache_metadata_is_not_a_file() -> None:
    acts = Activities()
    acts.feed(message(action="start", id=1, type=Act.FILE_TRANSFER, fields=["http://c/x.narinfo"]))
    acts.feed(message(action="start", id=2, type=Act.FILE_TRANSFER, fields=["http://c/nar/y.nar"]))
    assert acts.downloads_running() == 1
    acts.feed(message(action="stop", id=1))
    acts.feed(message(action="stop", id=2))
    assert acts.downloads_done == 1


def test_unknown_and_malformed_messages_change_nothing() -> None:
    acts = Activities()
    assert not acts.feed(message(action="result", id=9, type=Res.PROGRESS, fields=[1, 2, 0, 0]))
    assert not acts.feed(message(action="stop", id=9))
    acts.feed(message(action="start", id=1, type=Act.BUILDS))
    assert not acts.feed(message(action="result", id=1, type=Res.PROGRESS, fields=["x"]))
    assert acts.total(Act.BUILDS) == Count()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def replay(
    on_event: executor.Event, on_status: executor.Status, clock: Clock, step: float = 0.001
) -> executor.BuildOutcome:
    """Feed the recording through the executor's reader, the clock moving ``step`` per
    line and 3 s while `slow` sleeps (before its last log line), when Nix is silent and
    only the executor's timer reports (every STATUS_SECONDS)."""
    outcome = executor.BuildOutcome()
    reader = executor._LogReader(on_event, outcome, on_status, clock=clock)
    for line in recorded():
        clock.now += step
        if "reproflake: step 'slow' finished" in line:
            for _ in range(int(3.0 / executor.STATUS_SECONDS)):
                clock.now += executor.STATUS_SECONDS
                on_status(reader.snapshot())
        reader.feed(line)
    return outcome


def test_reader_reports_running_steps_with_their_start() -> None:
    clock = Clock()
    events: list[tuple[str, str, float]] = []
    snapshots: list[nixlog.Snapshot] = []
    outcome = replay(lambda k, n, s: events.append((k, n, round(s, 2))), snapshots.append, clock)
    kinds = [(k, n) for k, n, _s in events if k != "fetch"]
    assert kinds == [
        ("start", "broken"),
        ("start", "slow"),
        ("failed", "broken"),
        ("env-start", "art"),
        ("done", "slow"),
        ("env-done", "art"),
        ("start", "banner"),
        ("done", "banner"),
    ]
    slow = next(s for k, n, s in events if (k, n) == ("done", "slow"))
    assert 3.0 < slow < 3.5  # 157 lines apart, and the sleep
    assert [n for k, n, _s in events if k == "fetch"] == [
        "libcaca0_0.99.beta20-3+deb12u1_amd64.deb",
        "libslang2_2.3.3-3_amd64.deb",
        "toilet-fonts_0.3-1.4_all.deb",
        "toilet_0.3-1.4_amd64.deb",
    ]
    running = {tuple(r.name for r in s.running) for s in snapshots}
    assert ("slow", "art") in running and ("banner",) in running
    assert snapshots[-1].running == ()
    assert snapshots[-1].downloads == 4
    assert outcome.built == ["broken", "slow", "banner"]


def test_build_reports_status_and_stops_reporting_when_it_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import time

    from reproflake import _proc

    drv = "/nix/store/vdzpkilc15285xphghyba0ixzi4m2jji-reproflake-step-slow.drv"

    def run(argv: list[str], **_kw: object) -> _proc.Result:
        return _proc.Result(0, json.dumps({"slow": drv}), "")

    def stream(argv: list[str], on_stderr: Callable[[str], None], **_kw: object) -> _proc.Result:
        for line in recorded():
            on_stderr(line)
            if "reproflake: step 'slow' finished" in line:
                time.sleep(executor.STATUS_SECONDS * 2.5)  # Nix silent: the timer reports
        return _proc.Result(0, json.dumps([{"drvPath": drv, "outputs": {"out": "/x"}}]), "")

    monkeypatch.setattr(executor, "require_nix", lambda: "nix")
    monkeypatch.setattr(_proc, "run", run)
    monkeypatch.setattr(_proc, "stream", stream)
    snapshots: list[nixlog.Snapshot] = []
    outcome = executor.build(tmp_path, ["slow"], lambda *_: None, on_status=snapshots.append)
    assert outcome.outputs == {"slow": "/x"}
    timer = [s for s in snapshots if s.running and s.running[0].name == "slow"]
    assert len(timer) >= 2  # the same moment reported again while Nix said nothing
    seen = len(snapshots)
    time.sleep(executor.STATUS_SECONDS * 2)
    assert len(snapshots) == seen  # nothing after build returned
