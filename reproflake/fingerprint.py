"""What each step's derivation depends on, component by component.

Nix decides what to rebuild from the derivation; this module names the same
ingredients, so reproflake can predict a rebuild before it happens and explain
it (verdicts.describe: "src/clean.py changed (sha256 3f1a… → 9c0d…)"). Upstream
steps enter by their content-addressed output, exactly as Nix resolves them:
an upstream step rebuilt to identical bytes changes nothing downstream.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable

from reproflake.digests import sha256_of
from reproflake.lock.model import Lock
from reproflake.nixgen import Facts, library, step_data
from reproflake.spec import Spec
from reproflake.verdicts import source_component

Components = dict[str, str]


def working_tree_source(root: str | os.PathLike[str], rel: str) -> str:
    """A source file's component, read from the working tree (verdicts.source_component)."""
    path = os.path.join(root, rel)
    return source_component(sha256_of(path), os.stat(path).st_mode)


@functools.lru_cache(maxsize=256)
def _json_list(items: tuple[str, ...]) -> str:
    # Many steps share one list of outputs: encoded once each.
    return json.dumps(list(items))


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@functools.cache
def library_digest() -> str:
    return _digest({k: hashlib.sha256(v).hexdigest() for k, v in library().items()})


# How each attribute of a step's derivation (nixgen.StepData, what build.json tells Nix)
# enters its fingerprint. Every key of StepData has an entry: a test fails when one side
# gains an attribute the other lacks.
STEP_KEYS: dict[str, str] = {
    "env": "the environment's name, and its root through environment-pins",
    "run": "verbatim",
    "sourceFiles": "one component per file, with its sha256 and executable bit",
    "inputs": "one component per input (per matched file for a glob), with its pin",
    "needs": "added by the planner: the needed steps' content-addressed outputs",
    "outputs": "the list as JSON",
    "variables": "one component per variable",
    "systemFeatures": "follows from hardware (each constraint is one feature)",
    "hardware": "the constraints as canonical JSON",
}


def own_components(
    spec: Spec,
    lock: Lock,
    facts: Facts,
    step: str,
    read_source: Callable[[str], str] | None = None,
) -> Components:
    """Everything a step's derivation depends on except the outputs of the steps it needs.

    Derived from the very entry Nix reads for the step (nixgen.step_data), plus what the
    library adds for every step (the environment, SOURCE_DATE_EPOCH, the library, the
    seed). ``read_source`` gives a project file's component, its sha256 and whether it is
    executable (verdicts.source_component; default: from the working tree; `diff` passes
    one that reads a git revision).
    """
    if read_source is None:
        read_source = functools.partial(working_tree_source, spec.root)
    d = step_data(spec, facts, step)
    comps: Components = {
        "run": d["run"],
        "outputs": _json_list(tuple(d["outputs"])),
        "environment": d["env"],
        "source-date-epoch": str(lock.source_date_epoch),
        "openblas-coretype": spec.environments[d["env"]].openblas_coretype,
        "reproflake-library": library_digest(),
        "seed": lock.seed.nar_hash,
    }
    # The environment's pins enter as one digest (a record per step stays small); the
    # pins themselves are kept once per environment, to say which package changed.
    comps["environment-pins"] = environment_digest(lock, d["env"])
    for rel in d["sourceFiles"]:
        comps[f"source:{rel}"] = read_source(rel)
    for name in d["inputs"]:
        pinned = lock.inputs[name]
        item = spec.inputs[name]
        if pinned.files is not None:
            # One component per matched file: a plan names the file that changed.
            for rel, digest in pinned.files.items():
                comps[f"input:{name}:{rel}"] = f"{digest} at {rel}"
        else:
            comps[f"input:{name}"] = f"{pinned.nar_hash or pinned.sha256} at {item.mount_path}"
    if d["hardware"]:
        comps["hardware"] = d["hardware"]
    for var, value in d["variables"].items():
        comps[f"variable:{var}"] = value
    return comps


class _EnvironmentCache:
    """An environment's pins as components, computed once per lock: its steps share them."""

    def __init__(self) -> None:
        self.lock: Lock | None = None  # held, so it is the same object, not a reused id
        self.envs: dict[str, Components] = {}
        self.digests: dict[str, str] = {}

    def digest(self, lock: Lock, name: str) -> str:
        env = lock.environments[name]
        comps = self.get(lock, name, env.debs, env.wheels)
        if name not in self.digests:
            self.digests[name] = _digest(comps)
        return self.digests[name]

    def get(self, lock: Lock, name: str, debs: Iterable[str], wheels: Iterable[str]) -> Components:
        if self.lock is not lock:
            self.lock, self.envs, self.digests = lock, {}, {}
        if name not in self.envs:
            comps = {
                f"deb:{lock.debs[k].package}": f"{lock.debs[k].version} {lock.debs[k].sha256}"
                for k in debs
            }
            for k in wheels:
                comps[f"wheel:{lock.wheels[k].name}"] = (
                    f"{lock.wheels[k].version} {lock.wheels[k].sha256}"
                )
            self.envs[name] = comps
        return self.envs[name]


_CACHE = _EnvironmentCache()


def environment_components(lock: Lock, name: str) -> Components:
    """An environment's pinned packages and wheels, as components (name → version sha256)."""
    env = lock.environments[name]
    return _CACHE.get(lock, name, env.debs, env.wheels)


def environment_digest(lock: Lock, name: str) -> str:
    return _CACHE.digest(lock, name)
