"""Pure parts of the executor: store paths, log parsing, error translation."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest

from reproflake import executor
from reproflake.errors import HardwareError, HashMismatchError

SRI = "sha256-9CPbx+I+g28afJMSdqpzyncWktW6aBdLNMcrnyFqyCE="


@pytest.mark.parametrize("recursive", [True, False])
@pytest.mark.parametrize(
    "name", ["busybox-seed", "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.whl"]
)
def test_fixed_path_matches_nix(recursive: bool, name: str) -> None:
    if shutil.which("nix-store") is None:
        pytest.skip("Nix is not installed")
    digest = base64.b64decode(SRI[7:]).hex()
    argv = [
        "nix-store",
        "--print-fixed-path",
        *(["--recursive"] if recursive else []),
        "sha256",
        digest,
        name,
    ]
    expected = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    assert executor.fixed_path(SRI, name, recursive=recursive) == expected


def test_fixed_path_pinned() -> None:
    # Pinned so the test also runs where Nix is not installed.
    assert executor.fixed_path(SRI, "busybox-seed", recursive=True) == (
        "/nix/store/wjq2d6i745k72xif62fx13zxncn4f2v3-busybox-seed"
    )
    assert executor.fixed_path(SRI, "busybox-seed", recursive=False) == (
        "/nix/store/88675n5766siihvzw1z7hr2r4w1y0lgg-busybox-seed"
    )


def test_step_names_from_derivations() -> None:
    assert executor._step_of("/nix/store/" + "a" * 32 + "-reproflake-step-fit.drv") == "fit"
    assert executor._step_of("/nix/store/" + "a" * 32 + "-reproflake-env-py.drv") is None


def feed(lines: list[str]) -> executor.BuildOutcome:
    outcome = executor.BuildOutcome()
    events: list[tuple[str, str]] = []
    reader = executor._LogReader(lambda kind, step, _s: events.append((kind, step)), outcome)
    for line in lines:
        reader.feed(line)
    outcome.errors.extend(f"{k}:{s}" for k, s in events)
    return outcome


def test_log_reader_follows_builds() -> None:
    drv = "/nix/store/" + "b" * 32 + "-reproflake-step-prepare.drv"
    outcome = feed(
        [
            "@nix "
            + json.dumps({"action": "start", "id": 7, "type": 105, "fields": [drv, "", 1, 1]}),
            '@nix {"action":"result","id":7,"type":101,"fields":["hello"]}',
            "@nix "
            + json.dumps(
                {
                    "action": "result",
                    "id": 7,
                    "type": 101,
                    "fields": ["reproflake: step 'prepare' finished"],
                }
            ),
            '@nix {"action":"stop","id":7}',
        ]
    )
    assert outcome.built == ["prepare"]
    assert outcome.drvs == {"prepare": drv}
    assert outcome.errors == ["start:prepare", "done:prepare"]


def test_hash_mismatch_is_translated() -> None:
    outcome = executor.BuildOutcome(
        errors=[
            "error: hash mismatch in fixed-output derivation '/nix/store/"
            + "c" * 32
            + "-ref.bin.drv':\n         specified: sha256-AAAA\n            got:    sha256-BBBB"
        ]
    )
    with pytest.raises(HashMismatchError) as err:
        executor._raise_for_infrastructure(outcome, {"ref.bin": "input ref"})
    assert (
        "sha256 mismatch for input ref (ref.bin): the lock says sha256-AAAA, the download is sha256-BBBB"
        in str(err.value)
    )


def test_missing_system_feature_is_translated() -> None:
    outcome = executor.BuildOutcome(
        errors=[
            "error: a 'x86_64-linux' with features {cuda-12.2, gpu-nvidia} is required to build '/nix/store/"
            + "d" * 32
            + "-reproflake-step-train.drv', but I am a 'x86_64-linux' with features {benchmark}"
        ]
    )
    with pytest.raises(HardwareError) as err:
        executor._raise_for_infrastructure(outcome, {})
    assert "step train needs a machine with cuda-12.2, gpu-nvidia" in str(err.value)


def test_long_derivation_lists_are_split_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "ARGV_BYTES", 100)
    paths = [
        f"/nix/store/{i:032d}-reproflake-step-s{i}.drv" for i in range(7)
    ]  # 67 bytes with a space
    chunks = executor._chunks(paths)
    assert [len(c) for c in chunks] == [1] * 7
    monkeypatch.setattr(executor, "ARGV_BYTES", 210)
    chunks = executor._chunks(paths)
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [p for c in chunks for p in c] == paths


def test_default_jobs_is_the_usable_cores() -> None:
    import os

    assert executor.default_jobs() == len(os.sched_getaffinity(0))


class FakeNix:
    """Stands in for `nix` at the subprocess choke point: records every command."""

    def __init__(self, drvs: dict[str, str], outputs: dict[str, str]) -> None:
        self.drvs = drvs
        self.outputs = outputs
        self.commands: list[list[str]] = []

    def run(self, argv: list[str], **_kw: object) -> executor._proc.Result:
        self.commands.append(list(argv))
        assert argv[-3:] == ["eval", "--json", ".#legacyPackages.x86_64-linux.drvPaths.steps"]
        return executor._proc.Result(0, json.dumps(self.drvs), "")

    def stream(self, argv: list[str], on_stderr: object, **_kw: object) -> executor._proc.Result:
        self.commands.append(list(argv))
        built = [
            {"drvPath": d, "outputs": {"out": self.outputs[d]}} for d in argv if d.endswith(".drv")
        ]
        return executor._proc.Result(0, json.dumps(built), "")


def test_build_evaluates_once_and_realises_derivations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    drvs = {s: f"/nix/store/{s * 32}-reproflake-step-{s}.drv" for s in "abc"}
    outputs = {d: d.removesuffix(".drv") for d in drvs.values()}
    fake = FakeNix(drvs, outputs)
    monkeypatch.setattr(executor, "require_nix", lambda: "nix")
    monkeypatch.setattr(executor._proc, "run", fake.run)
    monkeypatch.setattr(executor._proc, "stream", fake.stream)
    from pathlib import Path

    outcome = executor.build(Path("/tmp"), ["a", "b"], lambda *_: None, jobs=3)
    assert outcome.outputs == {"a": outputs[drvs["a"]], "b": outputs[drvs["b"]]}
    assert len(fake.commands) == 2  # one evaluation, one build: not one flake read per step
    build = fake.commands[1]
    assert build[build.index("--max-jobs") + 1] == "3"
    assert [a for a in build if a.endswith(".drv")] == [drvs["a"], drvs["b"]]
    assert not any(a.startswith(".#") for a in build)


def test_known_outputs_asks_by_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    drvs = {s: f"/nix/store/{s * 32}-reproflake-step-{s}.drv" for s in "ab"}
    seen: list[list[str]] = []

    def dry_run(argv: list[str], **_kw: object) -> executor._proc.Result:
        seen.append(list(argv))
        known = [{"drvPath": drvs["a"], "outputs": {"out": "/nix/store/x-a"}},
                 {"drvPath": drvs["b"], "outputs": {}}]  # fmt: skip
        return executor._proc.Result(0, json.dumps(known), "")

    monkeypatch.setattr(executor, "require_nix", lambda: "nix")
    monkeypatch.setattr(executor._proc, "run", dry_run)
    from pathlib import Path

    found = executor.known_outputs(Path("/tmp"), ["a", "b"], drvs)
    assert found == {"a": "/nix/store/x-a", "b": None}
    assert seen[0][-5:] == ["build", drvs["a"], drvs["b"], "--dry-run", "--json"]


def test_log_reader_counts_fetches_not_helpers() -> None:
    def start(name: str, id_: int) -> str:
        drv = "/nix/store/" + "e" * 32 + f"-{name}.drv"
        return "@nix " + json.dumps({"action": "start", "id": id_, "type": 105, "fields": [drv]})

    outcome = feed([start("reproflake-applets", 1), start("python3_3.11.2-1_amd64.deb", 2)])
    assert outcome.errors == ["fetch:python3_3.11.2-1_amd64.deb"]
