"""`reproflake log STEP`: a step's whole build log, as Nix kept it.

Nix keeps a log per derivation it built. A content-addressed step is built as its
*resolved* derivation (its inputs replaced by their outputs), so the log is found
through what this machine's last build of the step reported (recorded under
.reproflake/cache/), failed or not; else through the step's current output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from reproflake import executor, state
from reproflake.commands._project import Log, load_project
from reproflake.errors import NixError


def run(start: Path, step: str, *, log: Log, out: Log) -> int:
    executor.require_nix()
    p = load_project(start, log, write_lock=False, steps=[step])
    candidates = [state.last_built(p.root).get(step)]
    link = p.root / "results" / step
    if link.is_symlink():
        candidates.append(os.readlink(link))
    for what in candidates:
        text = executor.build_log(p.root, what) if what else None
        if text is not None:
            sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
            return 0
    raise NixError(
        f"no build log of step {step} on this machine",
        hint=f"it has not been built here (run `reproflake build {step}`), or its result came "
        "from a cache",
    )
