"""`reproflake lock`: pin every input into reproflake.lock."""

from __future__ import annotations

import json
from pathlib import Path

from reproflake import executor, project, templates
from reproflake.commands._project import (
    Log,
    generate,
    load_project,
    load_spec,
    refuse_foreign_flake,
)
from reproflake.errors import StaleLockError
from reproflake.lock import inputs as input_pins
from reproflake.lock import model, pin
from reproflake.spec import find_spec


def run(start: Path, *, check: bool, upgrade: bool, log: Log, json_out: Log | None = None) -> int:
    """``json_out``: with ``check``, print the verdict there as a JSON document."""
    if not check:  # a project copied verbatim from a template (nix flake init -t) is finished here
        for line in templates.complete(find_spec(start)):
            log(line)
    spec, _graph = load_spec(start)
    old = model.read(spec.root)
    if check:
        if old is None:
            raise StaleLockError(
                f"{spec.root / model.LOCK_FILE} does not exist", hint="run `reproflake lock`"
            )
        stale = model.stale_entries(spec, old)
        inputs = input_pins.pin_inputs(spec, input_pins.hash_cache(spec.root))
        for name in sorted(inputs):
            if (
                name in old.inputs
                and inputs[name] != old.inputs[name]
                and not spec.inputs[name].is_url
            ):
                stale.append(f"inputs.{name}: {spec.inputs[name].path} changed since it was locked")
        if json_out is not None:
            json_out(json.dumps({"up_to_date": not stale, "stale": stale}, indent=2))
            return 1 if stale else 0
        if stale:
            raise StaleLockError(
                f"{spec.root / model.LOCK_FILE} is stale:\n" + "\n".join(f"  {s}" for s in stale),
                hint="run `reproflake lock` and commit the result",
            )
        log("lock is up to date")
        return 0
    refuse_foreign_flake(spec.root)  # before the lock is written: all or nothing
    ctx = pin.Context(root=spec.root, cache_dir=input_pins.cache_dir(), log=log)
    new = pin.lock(
        spec, old, ctx=ctx, upgrade=upgrade, source_date_epoch=project.last_commit_time(spec.root)
    )
    changed = model.write(spec.root, new)
    local = sorted(k for k, w in new.wheels.items() if w.url.startswith("file://"))
    local += sorted(k for k, d in new.debs.items() if d.url.startswith("file://"))
    if local:
        log(
            f"note: {len(local)} pinned file(s) come from a local file:// mirror (e.g. {local[0]}); "
            "a machine without that mirror cannot fetch them: use an http(s) index in "
            "[python] or [debian] for projects others will rebuild"
        )
    for line in pin.describe_changes(old, new):
        log(line)
    log(f"wrote {model.LOCK_FILE}" if changed else f"{model.LOCK_FILE} unchanged")
    # The flake reads the pins from its generated data: keep it in step with the lock, so
    # that committing after `reproflake lock` gives a project plain `nix build` agrees with.
    written = generate(load_project(spec.root, log))
    if written:
        log(f"regenerated {', '.join(written)}")
    if spec.nix_library is not None:
        executor.lock_flake(spec.root, update=["reproflake"] if upgrade else [])
        log("pinned reproflake's Nix library in flake.lock")
    return 0
