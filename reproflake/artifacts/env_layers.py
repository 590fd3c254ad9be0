"""An environment's package layers, split once per environment root and kept.

Splitting a root into layers walks every path under it and looks each one up in the
packages' file lists: 0.1-0.2 s for the 8,000 paths of a Python environment, at every
export, and needless, since a root is a Nix store path whose contents never change
while it exists. The split is kept in the user's cache, keyed on what it follows from:
the root's path with its device, inode and change time (a root deleted and built
again is a new directory, so a new key), the .debs' store paths (content-addressed),
the packages' names, the Python version and the environment's name (the layers'
comments). A missing or unreadable entry is computed again; nothing else reads it.
Only the split is kept: every layer's bytes are still read from the root when written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from reproflake.artifacts import recipe as _recipe
from reproflake.artifacts.layers import Layer
from reproflake.artifacts.tarball import Entry
from reproflake.fsutil import write_atomic

VERSION = 1  # bump when the split or the rows change


def key(recipe: _recipe.Recipe, resolved: _recipe.Resolved) -> str | None:
    """What the split follows from; None when the root cannot be looked at."""
    try:
        st = os.stat(resolved["envRoot"])
    except OSError:
        return None
    facts = [VERSION, resolved["envRoot"], st.st_dev, st.st_ino, st.st_ctime_ns,
             resolved["debs"], recipe["packages"], recipe["python"], recipe["env"]]  # fmt: skip
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def lookup(cache: Path, recipe: _recipe.Recipe, resolved: _recipe.Resolved) -> list[Layer] | None:
    """The kept split, or None."""
    k = key(recipe, resolved)
    if k is None:
        return None
    try:
        return [_layer(row) for row in json.loads((cache / f"{k}.json").read_bytes())]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def cached(
    cache: Path,
    recipe: _recipe.Recipe,
    resolved: _recipe.Resolved,
    deb_lists: Callable[[], Sequence[Sequence[str]]],
) -> list[Layer]:
    """:func:`recipe.environment`, from the cache when it has the split; ``deb_lists``
    is only called when it has not."""
    found = lookup(cache, recipe, resolved)
    if found is not None:
        return found
    layers = _recipe.environment(recipe, resolved, deb_lists())
    k = key(recipe, resolved)
    if k is not None:
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            write_atomic(cache / f"{k}.json", json.dumps([_row(layer) for layer in layers]) + "\n")
    return layers


def _row(layer: Layer) -> dict[str, object]:
    return {
        "comment": layer.comment,
        "owners": list(layer.owners),
        "entries": [[e.path, e.kind, e.source, e.target, e.executable] for e in layer.entries],
    }


def _layer(row: dict[str, object]) -> Layer:
    entries, owners = row["entries"], row["owners"]
    if not isinstance(entries, list) or not isinstance(owners, list):
        raise TypeError("not a cached split")
    return Layer(
        str(row["comment"]),
        tuple(Entry(p, kind, source, target, bool(x)) for p, kind, source, target, x in entries),
        tuple(str(o) for o in owners),
    )
