"""A plan brought up to date after an edit, from the plan's record, without computing it
again.

Beside its answer (commands/_plan_record.py), a plan keeps how each step compared with
its record (verdicts.Assessment), the steps each source file belongs to with that file's
component in the step's record (its sha256 and executable bit), and the stat of every path it watched, one by one. When the
answer no longer holds, the next plan looks at what changed:

- reproflake, the interpreter, the environment, the project's place, the spec, the lock
  and the store must be as recorded (the record's identity), and this form and selection
  of steps must have been planned before;
- every path whose stat differs must be a step's source file that is a regular file with
  the same mode before and after (an edit, in place or by renaming a new file over it),
  or a directory above such files that is still the same directory (same inode, device
  and mode: only its entries came or went, and every file the plan reads is watched on
  its own). A source kept as racy (changed while the plan ran) counts as changed.

Then only the edited files are hashed again; each step that reads one is compared again
for that file alone (verdicts.with_source), and the graph decides every verdict with the
same function as the full path (verdicts.decide). Anything else (a new file where a glob
looks, an input, the records, git's index, a step to build that declares hardware) and
the plan is computed in full.

The light imports of the record's check suffice: no spec, no lock, no git, no Nix.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproflake import fsclock, verdicts
from reproflake.commands._plan_record import (
    INODE,
    MODE,
    PARENT,
    SOURCE,
    TARGET,
    Event,
    Looked,
    Stat,
    form_of,
    load,
    recent,
    stats_digest,
    store_holds,
    write,
)
from reproflake.digests import sha256_of
from reproflake.fsutil import write_atomic

if TYPE_CHECKING:
    from reproflake.commands._plan import Consulted
    from reproflake.commands._project import Project

STEPS_RECORD = Path(".reproflake/cache/plan-steps.json")
VERSION = 1


def keep(
    p: Project,
    base: str,
    kinds: str,
    stats: Sequence[Stat],
    racy: Sequence[int],
    events: Sequence[Event],
    seen: Consulted,
) -> None:
    """Write the record of the plan's steps beside the answer whose identity is ``base``
    (which keeps, under "wanted", the steps each form and selection printed)."""
    assert seen.assessed is not None
    steps: dict[str, list[Any]] = {}
    sources: dict[str, dict[str, str | None]] = {}
    for step, a in seen.assessed.items():
        steps[step] = _row(a)
        for rel, recorded in (a.sources or {}).items():
            sources.setdefault(rel, {})[step] = recorded
    doc = {
        "version": VERSION,
        "base": base,
        "kinds": kinds,
        "stats": list(stats),
        "racy": list(racy),
        "logs": [text for stream, text in events if stream == "log"],
        "order": list(p.graph.order()),
        "needs": {s: list(step.needs) for s, step in p.spec.steps.items() if step.needs},
        "hardware": sorted(s for s, step in p.spec.steps.items() if step.hardware is not None),
        "steps": steps,
        "sources": dict(sorted(sources.items())),
    }
    _write(p.root, doc)


def _write(root: Path, doc: Mapping[str, Any]) -> None:
    # Built in a fixed order (the graph's, sorted names): not sorted again, and compact.
    write_atomic(root / STEPS_RECORD, json.dumps(doc, separators=(",", ":")) + "\n")


def _same_file(old: Stat, now: Stat) -> bool:
    """Both a regular file (no link: no target's fields), with the same mode: an edit,
    nothing more."""
    return (
        old is not None
        and now is not None
        and len(old) == len(now) == TARGET
        and stat.S_ISREG(now[MODE])
        and old[MODE] == now[MODE]
    )


def _same_directory(old: Stat, now: Stat) -> bool:
    """The same directory (no link), whatever its times and size."""
    return (
        old is not None
        and now is not None
        and len(old) == len(now) == TARGET
        and stat.S_ISDIR(now[MODE])
        and old[INODE : MODE + 1] == now[INODE : MODE + 1]
    )


def update(
    looked: Looked, req: str, out: Callable[[str], None], log: Callable[[str], None]
) -> bool:
    """Print the plan for ``req`` brought up to date from the record, and record it; False
    (and nothing printed) when it must be computed in full."""
    wanted = looked.doc.get("wanted")
    if not isinstance(wanted, dict) or req not in wanted:
        return False
    steps_doc = load(looked.root, STEPS_RECORD)
    if steps_doc is None:
        return False
    found = _current(looked, steps_doc)
    if found is None:
        return False
    plans, edited = found
    # An edited file changed within RACY_NS of the look (on the earlier of the two clocks,
    # the file system's read only now: the quiet answer writes nothing) may change again
    # within its clock's tick: kept as racy, hashed again next time.
    since = fsclock.Clock(looked.root).since(looked.started_ns) if edited else 0
    racy = [i for i in edited if recent(looked.stats[i], since)]
    try:
        chosen = wanted[req]
        order = steps_doc["order"] if chosen is None else chosen
        shown = [plans[s] for s in order]
    except (KeyError, TypeError):
        return False
    events: list[Event] = [("log", text) for text in steps_doc["logs"]]
    events += [("out", text) for text in verdicts.render(shown, form_of(req))]
    for stream, text in events:
        (out if stream == "out" else log)(text)
    # Only the answer is written again. The steps' record stays as the full plan left it:
    # a file edited since still differs from its stat there, and is compared again (the
    # same way) by the next plan brought up to date, whenever it comes.
    doc = looked.doc
    doc["stats"] = stats_digest(looked.stats, racy)
    doc["answers"] = {req: events}
    with contextlib.suppress(OSError):  # a read-only project: the next plan does this again
        write(looked.root, doc)
    return True


def current(looked: Looked, log: Callable[[str], None]) -> dict[str, verdicts.StepPlan] | None:
    """Every step's verdict now, from the records (what the full plan would decide), with
    what the full plan logged logged again; None when the plan must be computed in full.
    Writes nothing (`graph`)."""
    steps_doc = load(looked.root, STEPS_RECORD)
    found = _current(looked, steps_doc) if steps_doc is not None else None
    if found is None or steps_doc is None:
        return None
    for text in steps_doc["logs"]:
        log(text)
    return found[0]


def _current(
    looked: Looked, steps_doc: dict[str, Any]
) -> tuple[dict[str, verdicts.StepPlan], list[int]] | None:
    """The verdicts now and the paths edited since the full plan (hashed again), or None;
    a record of another shape is None."""
    try:
        return _bring_up_to_date(looked, steps_doc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _bring_up_to_date(
    looked: Looked, steps_doc: dict[str, Any]
) -> tuple[dict[str, verdicts.StepPlan], list[int]] | None:
    doc, now = looked.doc, looked.stats
    if steps_doc["base"] != doc.get("steps_record") or not store_holds(doc["store"]):
        return None
    paths: list[str] = doc["paths"]
    kinds: str = steps_doc["kinds"]
    old: list[Stat] = steps_doc["stats"]
    if not (len(paths) == len(kinds) == len(old) == len(now)):
        return None
    marked = set(steps_doc["racy"])
    edited: list[int] = []
    for i, (was, st) in enumerate(zip(old, now, strict=True)):
        if was == st and i not in marked:
            continue
        if kinds[i] == SOURCE and _same_file(was, st):
            edited.append(i)
        elif not (kinds[i] == PARENT and _same_directory(was, st)):
            return None
    assessed = {step: _assessment(row) for step, row in steps_doc["steps"].items()}
    sources: dict[str, dict[str, str | None]] = steps_doc["sources"]
    for i in edited:
        rel, st = paths[i], now[i]
        assert st is not None  # an edited file is a regular file (_same_file)
        try:
            digest = verdicts.source_component(sha256_of(os.path.join(looked.root, rel)), st[MODE])
        except OSError:
            return None  # gone or unreadable since: the full path says what is wrong
        for step, recorded in sources.get(rel, {}).items():
            a = assessed[step]
            changed = verdicts.with_source(a.changes, rel, recorded, digest)
            assessed[step] = a._replace(changes=changed)
    plans = verdicts.decide(steps_doc["order"], steps_doc["needs"], assessed)
    if any(plans[s].status != verdicts.BUILT for s in steps_doc["hardware"]):
        return None  # the hardware gate decides such a step: the full path asks it
    return plans, edited


NO_CHANGES: verdicts.Changes = ()
NO_NEEDS: frozenset[str] = frozenset()


def _assessment(row: list[Any]) -> verdicts.Assessment:
    record, output, changes, stale = row
    found = tuple((str(k), tuple(texts)) for k, texts in changes) if changes else NO_CHANGES
    return verdicts.Assessment(record, output, found, frozenset(stale) if stale else NO_NEEDS)


def _row(a: verdicts.Assessment) -> list[Any]:
    return [a.record, a.output, [[k, list(t)] for k, t in a.changes], sorted(a.stale_needs)]
