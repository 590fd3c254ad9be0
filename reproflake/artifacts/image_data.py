"""An image's recipe from the spec and the lock: what build.json tells the image
derivation, and what `reproflake image` writes from, so both write the same bytes."""

from __future__ import annotations

import json

from reproflake.artifacts import provenance
from reproflake.artifacts.recipe import LABEL, Recipe
from reproflake.lock.model import Lock
from reproflake.spec import Spec


def runtime_env(spec: Spec, lock: Lock, name: str) -> dict[str, str]:
    """The variables the step ran with (as nix/step.sh sets them), then the image's own."""
    image = spec.images[name]
    step = spec.steps[image.step]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "HOME": "/root",
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SOURCE_DATE_EPOCH": str(lock.source_date_epoch),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_CORETYPE": spec.environments[step.env].openblas_coretype,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OUT": image.outputs_path,
        "REPROFLAKE_STEP": image.step,
        **step.variables,
    }
    hw = step.hardware
    if hw is not None and hw.gpu == "nvidia":
        # The NVIDIA container toolkit reads these: it refuses to start the container on a
        # driver or GPU older than required, instead of the step failing at run time.
        env["NVIDIA_VISIBLE_DEVICES"] = "all"
        env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        if hw.cuda:
            env["NVIDIA_REQUIRE_CUDA"] = f"cuda>={hw.cuda}"
        if hw.compute_capability:
            env["NVIDIA_REQUIRE_ARCH"] = f"arch>={hw.compute_capability}"
    env.update(image.env)
    return dict(sorted(env.items()))


def own_labels(spec: Spec, lock: Lock, name: str) -> dict[str, str]:
    """reproflake's labels, less the spec's and the lock's digests (recipe.metadata)."""
    image = spec.images[name]
    step = spec.steps[image.step]
    hw = step.hardware
    own = {
        LABEL + "step": image.step,
        LABEL + "environment": step.env,
        LABEL + "environment.packages.sha256": provenance.package_list_digest(lock, step.env),
        LABEL + "hardware": json.dumps(hw.as_dict(), sort_keys=True) if hw else "{}",
        LABEL + "system-features": ",".join(hw.features()) if hw else "",
    }
    if hw:
        for key, value in hw.as_dict().items():
            shown = ",".join(value) if isinstance(value, list) else str(value)
            own[f"{LABEL}hardware.{key}"] = shown
    return dict(sorted(own.items()))


def python_env(lock: Lock, preferred: str) -> str:
    """An environment with Debian's full python3 (its stdlib has lzma and zlib): the
    step's own if it has one, else the first by name; "" when none has."""

    def has_python(env: str) -> bool:
        names = {lock.debs[k].package for k in lock.environments[env].debs}
        return "python3" in names and any(
            n.startswith("libpython3.") and n.endswith("-stdlib") for n in names
        )

    for env in [preferred, *sorted(lock.environments)]:
        if has_python(env):
            return env
    return ""


def recipe(spec: Spec, lock: Lock, sources: tuple[str, ...], name: str) -> Recipe:
    """``sources``: the files the step's source globs matched."""
    image = spec.images[name]
    step = spec.steps[image.step]
    locked = lock.environments[step.env]
    return {
        "image": f"{spec.name}/{image.name}",
        "step": image.step,
        "env": step.env,
        "pythonEnv": python_env(lock, step.env),
        "debs": list(locked.debs),
        "packages": [lock.debs[k].package for k in locked.debs],
        "python": locked.python_version,
        "sourceDateEpoch": lock.source_date_epoch,
        "workspace": image.workspace,
        "workdir": image.workdir,
        "outputsPath": image.outputs_path,
        "sources": list(sources),
        "inputs": sorted(step.inputs),
        "needs": sorted(step.needs),
        "entrypoint": list(image.entrypoint),
        "cmd": list(image.cmd),
        "containerEnv": runtime_env(spec, lock, name),
        "labels": dict(sorted(image.labels.items())),
        "own": own_labels(spec, lock, name),
        "materials": provenance.materials(lock, step.env, step.inputs),
        "packageListSha256": provenance.package_list_digest(lock, step.env),
    }
