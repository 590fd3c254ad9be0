"""Spec → Lock: resolve and pin every input.

Only what changed is resolved again: an environment whose requested packages
are unchanged keeps its pins (``upgrade=True`` re-resolves everything), so a
lock changes exactly where the spec did.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reproflake import _confine
from reproflake.errors import HashMismatchError, LockError, UsageError
from reproflake.fsutil import write_atomic
from reproflake.lock import debian as deb_index
from reproflake.lock import python as py
from reproflake.lock import signature
from reproflake.lock.deb import extract_file
from reproflake.lock.inputs import hash_cache, pin_inputs
from reproflake.lock.model import (
    DebianPin,
    Lock,
    LockedDeb,
    LockedEnv,
    LockedWheel,
    Seed,
    python_index_request,
)
from reproflake.spec import ESSENTIAL, Spec

SEED_PACKAGE = "busybox-static"
SEED_MEMBER = "./bin/busybox"
ZIP_EPOCH = 315532800  # 1980-01-01: the earliest time a zip file can hold

Log = Callable[[str], None]


@dataclass(frozen=True)
class Context:
    root: Path
    cache_dir: Path
    log: Log


# --------------------------------------------------------------------------- Debian


def _python_version(debs: list[deb_index.DebPackage]) -> str:
    for pkg in debs:
        if m := re.fullmatch(r"python(3\.\d+)-minimal", pkg.name):
            return m.group(1)
    return ""


def _locked(pkg: deb_index.DebPackage, mirror: str) -> LockedDeb:
    return LockedDeb(
        package=pkg.name,
        version=pkg.version,
        architecture=pkg.architecture,
        filename=pkg.filename,
        url=pkg.url(mirror),
        size=pkg.size,
        sha256=pkg.sha256,
    )


def _seed(deb: LockedDeb, ctx: Context) -> Seed:
    binary = seed_binary(deb, ctx.cache_dir)
    seed_dir = binary.parent
    from reproflake.lock.hashing import nar_hash

    return Seed(
        package=deb.package,
        version=deb.version,
        deb=deb.key,
        member=SEED_MEMBER,
        sha256=hashlib.sha256(binary.read_bytes()).hexdigest(),
        nar_hash=nar_hash(seed_dir),
    )


def seed_binary(deb: LockedDeb, cache: Path) -> Path:
    """The busybox seed extracted from its pinned .deb with Python's stdlib (cached)."""
    target = cache / "seed" / deb.sha256 / "busybox"
    if target.is_file():
        return target
    data = deb_index.download(deb.url)
    got = hashlib.sha256(data).hexdigest()
    if got != deb.sha256:
        raise HashMismatchError(
            f"seed {deb.package} {deb.version}: sha256 mismatch for {deb.url}",
            hint=f"expected {deb.sha256}, got {got}; the mirror serves different bytes",
        )
    write_atomic(target, extract_file(data, SEED_MEMBER), mode=0o755)
    return target


# --------------------------------------------------------------------------- the whole lock


def lock(
    spec: Spec,
    old: Lock | None,
    *,
    ctx: Context,
    upgrade: bool = False,
    source_date_epoch: int | None = None,
) -> Lock:
    d = spec.debian
    _confine_spec_urls(spec)
    pin = DebianPin(d.mirror, d.suite, d.components, d.architecture)
    index_request = python_index_request(spec)
    reuse = old is not None and not upgrade and old.debian == pin
    reuse_py = reuse and old is not None and dict(old.python_index) == index_request

    index: deb_index.PackageIndex | None = None

    def get_index() -> deb_index.PackageIndex:
        nonlocal index
        if index is None:
            ctx.log(f"fetching the package index of {d.suite} ({', '.join(d.components)})")
            try:
                index = deb_index.fetch_index(
                    d.mirror,
                    d.suite,
                    d.components,
                    d.architecture,
                    ctx.cache_dir / "debian",
                    verify=_verifier(spec) if d.verify else None,
                )
            except LockError as exc:
                if exc.message.startswith(f"suite {d.suite!r} not found"):
                    raise _in_spec(spec, ("debian", "suite"), exc) from None
                raise
        return index

    debs: dict[str, LockedDeb] = {}
    wheels: dict[str, LockedWheel] = {}
    environments: dict[str, LockedEnv] = {}
    for name, env in sorted(spec.environments.items()):
        prev = old.environments.get(name) if old is not None else None
        if reuse and old is not None and prev is not None and prev.debian == env.all_debian:
            env_debs = [old.debs[k] for k in prev.debs]
            python_version = prev.python_version
            glibc = next((x.version for x in env_debs if x.package == "libc6"), "")
        else:
            ctx.log(f"resolving Debian packages for environment {name}")
            roots = [r for r in env.all_debian if r != ESSENTIAL]
            if ESSENTIAL in env.all_debian:
                # The user's own request (perhaps with a version) stands for itself.
                asked = {re.split(r"[=(\s]", r, maxsplit=1)[0] for r in roots}
                roots += [e for e in get_index().essential() if e not in asked]
                # As debootstrap does: the merged-/usr marker, not the usrmerge converter
                # (which would pull in perl) where a package asks for either.
                if get_index().get("usr-is-merged") is not None:
                    roots.append("usr-is-merged")
                # The fixed clock the maintainer scripts see while the root is configured.
                if get_index().get("libfaketime") is not None:
                    roots.append("libfaketime")
            try:
                closure = deb_index.resolve_closure(get_index(), sorted(set(roots)), d.architecture)
            except LockError as exc:
                # What cannot be resolved is what the spec asked for: point at it.
                raise _in_spec(spec, ("environments", name, "debian"), exc) from None
            env_debs = [_locked(p, d.mirror) for p in closure]
            python_version = _python_version(closure)
            glibc = next((p.version for p in closure if p.name == "libc6"), "")
        for item in env_debs:
            debs[item.key] = item

        env_wheels: list[LockedWheel] = []
        pylock = ""
        if not env.python:
            pass
        elif (
            reuse_py
            and prev is not None
            and prev.python == env.python
            and prev.python_version == python_version
        ):
            assert old is not None
            env_wheels = [old.wheels[k] for k in prev.wheels]
            pylock = prev.pylock
        else:
            if not python_version:
                raise LockError(
                    f"environment {name}: no Python interpreter among its Debian packages",
                    hint='add "python3" to its debian packages',
                )
            m = re.match(r"(?:\d+:)?(\d+\.\d+)", glibc)
            ctx.log(
                f"resolving Python requirements for environment {name} (Python {python_version})"
            )
            py_index = _index_config(spec)
            if py_index.constraints:
                # Said, not silent: the host's constraints shape the lock but are not in it.
                ctx.log(f"  with pip's constraint file(s): {' '.join(py_index.constraints)}")
            try:
                resolved = py.resolve(
                    env.python,
                    python_version,
                    m.group(1) if m else "2.17",
                    "x86_64",
                    py_index,
                    ctx.cache_dir / "uv",
                )
            except LockError as exc:
                raise _in_spec(spec, ("environments", name, "python"), exc) from None
            env_wheels = [
                LockedWheel(w.name, w.version, w.filename, w.url, w.sha256) for w in resolved.wheels
            ]
            pylock = resolved.pylock
        for w in env_wheels:
            wheels[w.key] = w
        environments[name] = LockedEnv(
            debian=env.all_debian,
            python=env.python,
            debs=tuple(sorted(x.key for x in env_debs)),
            wheels=tuple(sorted(w.key for w in env_wheels)),
            python_version=python_version,
            pylock=pylock,
        )

    if reuse and old is not None and old.seed.deb in old.debs:
        seed_deb = old.debs[old.seed.deb]
        seed = old.seed
    else:
        found = get_index().get(SEED_PACKAGE)
        if found is None:
            raise LockError(
                f"{SEED_PACKAGE} is not in {d.suite}; reproflake needs it as its bootstrap seed",
                hint="use a Debian suite that ships busybox-static (bookworm or newer)",
            )
        seed_deb = _locked(found, d.mirror)
        ctx.log(f"extracting the bootstrap seed from {seed_deb.key}")
        seed = _seed(seed_deb, ctx)
    debs[seed_deb.key] = seed_deb

    if spec.source_date_epoch is not None:
        sde = spec.source_date_epoch
    elif old is not None:
        sde = old.source_date_epoch
    elif source_date_epoch is not None:
        sde = source_date_epoch
    else:
        sde = ZIP_EPOCH

    return Lock(
        debian=pin,
        python_index=index_request,
        source_date_epoch=sde,
        seed=seed,
        debs=dict(sorted(debs.items())),
        wheels=dict(sorted(wheels.items())),
        environments=environments,
        inputs=pin_inputs(spec, hash_cache(ctx.root)),
    )


def _in_spec(spec: Spec, key: tuple[str, ...], exc: LockError) -> UsageError:
    """A resolution failure caused by what the spec asks for: exit 2, with its file:line."""
    return UsageError(f"{spec.where(*key)}: {'.'.join(key)}: {exc.message}", hint=exc.hint)


def _confine_spec_urls(spec: Spec) -> None:
    """file:// URLs the spec names are read only inside the project or where allowed
    (checked before anything is resolved or read)."""
    urls: list[tuple[tuple[str, ...], str]] = [(("debian", "mirror"), spec.debian.mirror)]
    urls += [(("inputs", n, "url"), i.url) for n, i in sorted(spec.inputs.items()) if i.url]
    if spec.python_index.index_url:
        urls.append((("python", "index_url"), spec.python_index.index_url))
    urls += [(("python", "extra_index_urls"), u) for u in spec.python_index.extra_index_urls]
    for key, url in urls:
        _confine.file_url(spec.root, url, f"{spec.where(*key)}: {'.'.join(key)}")


# Where a keyring named by an absolute path may be: the system's own keyring directories.
SYSTEM_KEYRINGS = ("/usr/share/keyrings", "/etc/apt/trusted.gpg.d", "/etc/apt/keyrings")


def _keyring(spec: Spec) -> Path:
    """The spec's keyring: in the project, in the system's keyring directories, or allowed."""
    name = spec.debian.keyring
    if name is None:
        return signature.DEFAULT_KEYRING
    where = f"{spec.where('debian', 'keyring')}: debian.keyring"
    if not name.startswith("/"):
        path = _confine.local_path(spec.root, name, where)
    else:
        path = Path(name).resolve()
        system = any(path.is_relative_to(Path(d).resolve()) for d in SYSTEM_KEYRINGS)
        if not system and not _confine.is_allowed(path, spec.root):
            raise UsageError(
                f"{where}: {name} is outside the project and the system's keyring directories",
                hint=f"copy the keyring into the project; or {_confine.ALLOW_HINT}",
            )
    _confine.regular_file(path, where)
    return path


def _verifier(spec: Spec) -> deb_index.Verify:
    """Checks the suite's signature with the spec's keyring, or Debian's on this machine."""
    keyring = _keyring(spec)

    def verify(url: str, data: bytes, detached: bytes | None) -> bytes:
        return signature.verify(url, data, detached, keyring)

    return verify


def _index_config(spec: Spec) -> py.IndexConfig:
    """The spec's package index if it names one, else pip's configuration on this host
    (its indexes and its constraint files: a spec that names its index reads neither)."""
    if spec.python_index.index_url or spec.python_index.extra_index_urls:
        return py.IndexConfig(
            index_url=spec.python_index.index_url,
            extra_index_urls=spec.python_index.extra_index_urls,
            find_links=(),
        )
    return py.index_from_pip_config()


def describe_changes(old: Lock | None, new: Lock) -> list[str]:
    """Human lines: which pins were added, removed or changed."""
    if old is None:
        return [
            f"pinned {len(new.debs)} Debian packages, {len(new.wheels)} wheels, {len(new.inputs)} inputs"
        ]
    lines: list[str] = []

    def compare(kind: str, a: Mapping[str, object], b: Mapping[str, object]) -> None:
        for key in sorted(set(a) | set(b)):
            if key not in a:
                lines.append(f"+ {kind} {key}")
            elif key not in b:
                lines.append(f"- {kind} {key}")
            elif a[key] != b[key]:
                lines.append(f"~ {kind} {key}")

    compare("deb", old.debs, new.debs)
    compare("wheel", old.wheels, new.wheels)
    compare("input", old.inputs, new.inputs)
    return lines
