"""`reproflake reproduce`: a release archive extracted safely, rebuilt, compared.

Stages: the archive extracted (every entry checked first: artifacts/extract.py) → its
signature checked, when it has one or one is required (a bad one stops here) → its
records read (SHA256SUMS, provenance.json) → the extracted entries against SHA256SUMS,
entries.json (kinds, modes, links) and the provenance subjects →
every step built from the release's own flake (a vendored release needs no network) →
each output, file by file, against the recorded hashes → a verdict table. Exit 0 only
when everything is identical.

The release's flake is built as it was released, not generated again: a later reproflake
may generate different Nix, and what is reproduced is the release. Its Nix code is
evaluated only when it is this reproflake's own, a required signer vouches for it, or the
user trusts it (artifacts/trust.py): Nix evaluates outside the sandbox. A step whose output is
already in the local store (on the machine that released it, say) is built once more,
independently, as `verify` does (`verifyVaried.none`), so every step really runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from reproflake import compare, executor
from reproflake.artifacts import extract, recorded, signing, trust
from reproflake.artifacts.extract import Member
from reproflake.artifacts.release import ENTRIES, SUMS
from reproflake.commands._project import Log, labels, load_project, store_items
from reproflake.commands._steps import Progress, hardware_features
from reproflake.errors import ArchiveError, BuildError, ReproflakeError, UsageError
from reproflake.fsutil import sha256_file

IDENTICAL = "identical"
DIFFERENT = "different"
NOT_BUILT = "could not build"


@dataclass
class StepVerdict:
    step: str
    verdict: str
    files: list[compare.FileVerdict] = field(default_factory=list)
    path: str = ""  # the store path rebuilt
    ran: bool = False  # Nix ran the step in this command (else: already in the store)
    log: list[str] = field(default_factory=list)


def run(
    archive: Path,
    *,
    log: Log,
    out: Log,
    dest: Path | None = None,
    allowed_signers: Path | None = None,
    public_key: Path | None = None,
    limits: extract.Limits | None = None,
    as_json: bool = False,
    trust_nix_code: bool = False,
) -> int:
    """``as_json``: no text on stdout, one JSON document at the end (docs/commands.md).
    ``trust_nix_code``: evaluate the release's Nix code even when it is not this
    reproflake's and no signer the user named vouches for it (artifacts/trust.py)."""
    if allowed_signers is not None and public_key is not None:
        raise UsageError(
            "--allowed-signers and --public-key both name who signs: give one of them",
            hint="an allowed_signers file may list the public key too",
        )
    for option, given in (("--allowed-signers", allowed_signers), ("--public-key", public_key)):
        if given is not None and not given.is_file():
            raise UsageError(f"{option}: no file at {given}")
    if not archive.is_file():
        raise UsageError(
            f"no archive at {archive}", hint="pass the file `reproflake release` wrote"
        )
    dest = (dest or Path.cwd()).absolute()
    _outside_git(dest)
    human = out
    if as_json:
        out = _quiet
    doc: dict[str, Any] = {"archive": str(archive)}

    def stop(error: ReproflakeError) -> int:
        """A failure that ends it: raised, or the document so far with it."""
        if not as_json:
            raise error
        doc.update(
            reproduced=False, error=error.message, hint=error.hint, exit_code=error.exit_code
        )
        human(json.dumps(doc, indent=2, sort_keys=True))
        return error.exit_code

    def checked_and_rebuilt() -> int:
        got = extract.extract(archive, dest, limits or extract.Limits())
        top = got.top
        files = sum(1 for m in got.members.values() if m.kind == "file")
        out(f"extracted {archive} into {top} ({files} files, every entry checked)")
        doc["directory"] = str(top)
        # The signature first: it is over SHA256SUMS' bytes, whatever they say.
        failures, doc["signature"] = _signature(top, out, allowed_signers, public_key)
        if failures:  # nothing in it can be trusted: do not go on to build it
            return stop(BuildError(failures[0], hint="get the release again from its author"))
        rec = recorded.read(top)
        doc.update(project=rec.project, commit=rec.commit)
        out(f"release of {rec.project} at commit {rec.commit}")
        problems = recorded.check_files(rec, got.members)
        entries = recorded.check_entries(top, rec, got.members)
        if entries is None:
            out(f"{ENTRIES}: none (a release from before it): links and modes are not checked")
        else:
            problems += entries
        doc["records"] = {"problems": problems, "entries_checked": entries is not None}
        if problems:
            out(f"{SUMS}: {len(problems)} problem(s) with the files as extracted:")
            for line in problems:
                out(f"  {line}")
            failures.append(
                f"{len(problems)} entries disagree with {SUMS}, {ENTRIES} or provenance.json"
            )
            if allowed_signers is not None or public_key is not None:
                # The signature vouches for SHA256SUMS (and through it entries.json): an entry
                # they do not cover is not what the signer released, and building it would
                # run unsigned Nix and code.
                return stop(
                    BuildError(
                        f"{failures[0]}, not covered by the signature: nothing is built",
                        hint="get the release again from its author",
                    )
                )
        else:
            checked = "" if entries is None else f", {len(got.members)} entries match {ENTRIES}"
            out(f"{SUMS}: all {len(rec.sums)} files match{checked}; provenance.json agrees")
        refused = _evaluated_code(top, doc, out, trust_nix_code)
        if refused is not None:
            return stop(refused)
        verdicts = _rebuild(top, rec, got.members, log)
        _table(verdicts, top, rec, out)
        doc["steps"] = {v.step: _step_document(v, rec) for v in verdicts}
        doc["summary"] = {
            verdict: sum(1 for v in verdicts if v.verdict == verdict)
            for verdict in (IDENTICAL, DIFFERENT, NOT_BUILT)
        }
        bad = [v for v in verdicts if v.verdict != IDENTICAL]
        if bad:
            failures.append(
                f"{len(bad)} of {len(verdicts)} step(s) did not reproduce: "
                + ", ".join(f"{v.step} ({v.verdict})" for v in bad)
            )
        doc["reproduced"] = not failures
        if as_json:
            doc["failures"] = failures
            human(json.dumps(doc, indent=2, sort_keys=True))
            return 1 if failures else 0
        if failures:
            raise BuildError(
                "the release did not reproduce: " + "; ".join(failures),
                hint="see the table above; the extracted release stays in " + str(top),
            )
        out(f"reproduced {len(verdicts)} step(s) bit for bit: every output matches {SUMS}")
        return 0

    try:
        return checked_and_rebuilt()
    except ReproflakeError as exc:
        return stop(exc)


def _evaluated_code(
    top: Path, doc: dict[str, Any], out: Log, trust_nix_code: bool
) -> ArchiveError | None:
    """Why the release's Nix must not be evaluated here (None: it may be). Nix evaluates a
    flake outside the sandbox, as the user: only this reproflake's own code, or code a
    required signer vouches for, or code the user said to trust, is run."""
    local = trust.local_urls_not_carried(top)
    if local:
        return ArchiveError(
            f"the release names {len(local)} pinned file(s) by file:// URL without carrying "
            f"them in vendor/ (first: {local[0]}): its Nix library would read them from this "
            "machine",
            hint="ask its author for a release made with `reproflake release --vendor`, which "
            "carries every pinned file",
        )
    foreign = trust.foreign_code(top)
    vouched = doc.get("signature", {}).get("status") == "good"
    doc["nix_code"] = {"reproflakes_own": not foreign, "differs": foreign}
    if not foreign:
        out("Nix code: flake.nix, flake.lock and the Nix library are this reproflake's")
        return None
    listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    if vouched or trust_nix_code:
        why = "its signer vouches for it" if vouched else "trusted as asked (--trust-nix-code)"
        out(f"Nix code: {listed} differ(s) from this reproflake's; {why}")
        return None
    return ArchiveError(
        f"the release's Nix code is not this reproflake's ({listed} differ): evaluating it "
        "would run code from the archive outside the sandbox, where it can read this "
        "machine's files",
        hint="require its signer (--allowed-signers FILE or --public-key FILE), reproduce it "
        "with the reproflake that made it (provenance.json names the version), or pass "
        "--trust-nix-code if you trust its author",
    )


def _quiet(_line: str) -> None:
    return None


def _step_document(v: StepVerdict, rec: recorded.Recorded) -> dict[str, Any]:
    return {
        "verdict": v.verdict,
        "path": v.path,
        "recorded_path": rec.outputs.get(v.step, ""),
        "rebuilt": v.ran,
        "files": {
            f"results/{v.step}/{f.path}" if f.path else f"results/{v.step}": {
                "verdict": f.verdict,
                "detail": f.detail,
            }
            for f in v.files
        },
        "log_tail": v.log[-10:],
    }


def _outside_git(dest: Path) -> None:
    """Nix takes a flake inside a git work tree from git, where the release's files are
    not tracked: refuse before extracting anything."""
    probe = dest
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    found = pygit2.discover_repository(str(probe))
    if found:
        raise UsageError(
            f"{dest} is inside the git repository {Path(found).parent}: Nix would read the "
            "release's flake from git and see none of its files",
            hint="reproduce into a directory outside any git repository (--dir DIR)",
        )


def _signature(
    top: Path, out: Log, allowed_signers: Path | None, public_key: Path | None
) -> tuple[list[str], dict[str, str]]:
    """The failures (none or one) and what was found, for the JSON document."""
    sig = top / signing.SIGNATURE
    required = allowed_signers is not None or public_key is not None
    if not sig.exists():
        if required:
            return [f"{sig}: missing: the release is not signed, and a signer was required"], {
                "status": "missing"
            }
        out("signature: none (the release is not signed)")
        return [], {"status": "none"}
    check = signing.verify(top / SUMS, sig, allowed_signers=allowed_signers, public_key=public_key)
    if not check.good:
        return [f"{sig}: BAD signature over {SUMS}: {check.detail}"], {
            "status": "bad",
            "detail": check.detail,
        }
    if not check.trusted:
        out(
            f"signature: {signing.SIGNATURE} is intact ({check.detail}), but whose key it is "
            "was not checked: pass --allowed-signers FILE or --public-key FILE"
        )
        return [], {"status": "intact, signer not checked", "detail": check.detail}
    out(f"signature: good, {signing.SIGNATURE} by {check.principal} ({check.detail})")
    return [], {"status": "good", "signer": check.principal, "detail": check.detail}


def _rebuild(
    top: Path, rec: recorded.Recorded, members: dict[str, Member], log: Log
) -> list[StepVerdict]:
    executor.require_nix()
    p = load_project(top, log, write_lock=False)
    order = p.graph.order()
    # Vendored files come from vendor/ (the flake reads them there); only the rest (local
    # data kept outside git, file:// mirrors) is put in the store first.
    items = [i for i in store_items(p, order) if not (top / "vendor" / i.name).exists()]
    _refuse_outside(top, items)
    executor.ensure_in_store(items)
    features, _host = hardware_features(p, order)
    first = executor.build(top, order, Progress(log), labels=labels(p), features=features)
    outputs = dict(first.outputs)
    ran = set(first.built)
    again = [s for s in order if s in outputs and s not in ran]
    failed = dict(first.failed)
    errors = first.errors
    if again:
        log(f"{len(again)} step(s) already in the store: building them again, independently")
        second = executor.build(
            top, again, Progress(log), which=f"{executor.VERIFY_VARIED}.none", features=features
        )
        for step in again:
            outputs.pop(step, None)
        outputs.update(second.outputs)
        ran |= set(second.built)
        failed.update(second.failed)
        errors = errors + second.errors
    verdicts = []
    for step in order:
        path = outputs.get(step)
        if path is None:
            lines = failed.get(step) or errors[-10:]
            verdicts.append(StepVerdict(step, NOT_BUILT, log=list(lines)))
            continue
        files = _compare(Path(path), recorded.step_files(rec, members, step))
        same = all(f.verdict == compare.IDENTICAL for f in files)
        same = same and path == rec.outputs.get(step, path)
        verdict = IDENTICAL if same else DIFFERENT
        verdicts.append(StepVerdict(step, verdict, files, path, step in ran))
    return verdicts


def _refuse_outside(top: Path, items: list[executor.StoreItem]) -> None:
    """A release names files by path (file:// pins from its author's mirror, which
    `--vendor` would have carried): reproflake puts none outside the release into the
    store, whatever it names. (The release's own Nix code is not confined by this:
    docs/commands.md, `reproduce`.)"""
    inside = top.resolve()
    outside = [i for i in items if not i.local.resolve().is_relative_to(inside)]
    if outside:
        first = outside[0]
        raise ArchiveError(
            f"the release needs {len(outside)} file(s) it does not carry, named by paths "
            f"outside it ({first.what}: {first.local}): reproduce takes no pinned file from "
            "outside the release",
            hint="ask its author for a release made with `reproflake release --vendor`, "
            "which carries every pinned file",
        )


def _compare(built: Path, wanted: dict[str, Member]) -> list[compare.FileVerdict]:
    have = compare.walk(built)
    found = []
    for rel in sorted(set(have) | set(wanted)):
        w = wanted.get(rel)
        h = have.get(rel)
        if w is None:
            found.append(
                compare.FileVerdict(rel, compare.ONLY_FIRST, "rebuilt, not in the release")
            )
        elif h is None:
            found.append(
                compare.FileVerdict(rel, compare.ONLY_SECOND, "in the release, not rebuilt")
            )
        elif w.kind == "symlink" or h.is_symlink():
            target = str(h.readlink()) if h.is_symlink() else "(a file)"
            same = w.kind == "symlink" and target == w.target
            found.append(
                compare.FileVerdict(rel, compare.IDENTICAL)
                if same
                else compare.FileVerdict(
                    rel, compare.DIFFERENT, f"link {target!r}, recorded {w.target or '(a file)'!r}"
                )
            )
        else:
            got = sha256_file(h).hexdigest()
            if got == w.sha256:
                found.append(compare.FileVerdict(rel, compare.IDENTICAL))
            else:
                found.append(
                    compare.FileVerdict(
                        rel, compare.DIFFERENT, f"recorded sha256 {w.sha256}, rebuilt {got}"
                    )
                )
    return found


def _table(verdicts: list[StepVerdict], top: Path, rec: recorded.Recorded, out: Log) -> None:
    width = max([len("STEP")] + [len(v.step) for v in verdicts])
    out(f"{'STEP'.ljust(width)}  {'VERDICT'.ljust(15)}  FILES    OUTPUT")
    for v in verdicts:
        same = sum(1 for f in v.files if f.verdict == compare.IDENTICAL)
        count = f"{same}/{len(v.files)}" if v.verdict != NOT_BUILT else "-"
        how = "rebuilt" if v.ran else "already in the store, not run again"
        where = f"{v.path} ({how})" if v.path else ""
        out(f"{v.step.ljust(width)}  {v.verdict.ljust(15)}  {count.ljust(7)}  {where}")
        recorded_path = rec.outputs.get(v.step)
        if v.path and recorded_path and v.path != recorded_path:
            out(f"    store path differs: recorded {recorded_path}")
        for f in v.files:
            name = f"results/{v.step}/{f.path}" if f.path else f"results/{v.step}"
            if f.verdict == compare.IDENTICAL:
                continue
            out(f"    {f.verdict}: {name}" + (f" ({f.detail})" if f.detail else ""))
            archived = top / name
            if (
                f.verdict == compare.DIFFERENT
                and v.path
                and (archived.exists() or archived.is_symlink())
            ):
                rebuilt = Path(v.path) / f.path if f.path else Path(v.path)
                if compare.same_bytes(rebuilt, archived):
                    out(
                        "      the rebuilt file is the archived copy's bytes: the recorded sha256 is what differs"
                    )
                    continue
                out("      rebuilt (first) against the archived copy (second):")
                for line in compare.explain(rebuilt, archived):
                    out(f"      {line}")
        for line in v.log[-10:]:
            out(f"    | {line}")
