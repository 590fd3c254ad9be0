"""The command line: thin, and the single place errors become exit codes.

Exit codes: 0 success, 1 a build or fetch failed, 2 the input (command line,
reproflake.toml, lock) must be fixed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from reproflake import __version__, _term
from reproflake.errors import ReproflakeError

# What the global options say (shared with progress on the terminal).
_Settings = _term.settings


def _log(message: str) -> None:
    """Progress and notes (standard error); -q silences them, never errors or results."""
    if not _Settings.quiet:
        click.echo(message, err=True)


def _out(message: str) -> None:
    click.echo(message)


def _color() -> bool | None:
    if _Settings.color is None and os.environ.get("NO_COLOR"):
        return False  # https://no-color.org: any non-empty value
    return _Settings.color


def _error(message: str) -> None:
    click.secho(message, fg="red", err=True, color=_color())


def _guard(fn: Callable[[], int], *, as_json: bool = False) -> None:
    try:
        code = fn()
    except ReproflakeError as exc:
        _fail(exc.message, exc.hint, exc.exit_code, as_json)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # the file system said no: name the file, keep the traceback out
        where = f" {exc.filename}" if exc.filename else ""
        _fail(
            f"cannot use{where}: {exc.strerror or exc}",
            "check that the project directory is writable and not full",
            1,
            as_json,
        )
    except Exception as exc:  # a bug: its own exit code, the traceback in a log, not on screen
        log = _crash_log()
        _fail(
            f"internal error: {type(exc).__name__}: {exc}",
            f"this is a bug in reproflake; the details are in {log}"
            if log
            else "this is a bug in reproflake; run again with -v for the details",
            INTERNAL_ERROR,
            as_json,
            prefix="",
        )
    sys.exit(code)


# Exit code of an unexpected error (BSD's EX_SOFTWARE): not 1, which means a step failed.
INTERNAL_ERROR = 70


def _fail(
    message: str, hint: str | None, code: int, as_json: bool, prefix: str = "error: "
) -> NoReturn:
    """Say why and exit with ``code``: on stderr, or with ``--json`` as a document on
    stdout (a script reading stdout gets a document, whatever went wrong)."""
    if as_json:
        import json

        doc = {"error": message, "hint": hint, "exit_code": code}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        sys.exit(code)
    _error(f"{prefix}{message}")
    if hint:
        click.echo(f"  hint: {hint}", err=True)
    sys.exit(code)


def _crash_log() -> str | None:
    """Write the current exception's traceback to the user's cache; its path, or None."""
    import traceback

    from reproflake._paths import user_cache_dir

    path = user_cache_dir() / "crash.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"reproflake {__version__}\n{traceback.format_exc()}")
    except OSError:
        return None
    return str(path)


def _set_directory(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.obj = value
        if ctx.parent is not None:
            ctx.parent.obj = value


def _set_verbose(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from reproflake import _proc

        _proc.VERBOSE = True


def _set_quiet(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _Settings.quiet = True


def _set_color(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _Settings.color = {"always": True, "never": False, "auto": None}[value]


def _global_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-C, -v, -q and --color, accepted before or after the subcommand."""
    for option in reversed(
        [
            click.option("-C", "directory_", type=click.Path(file_okay=False, path_type=Path),
                         default=None, expose_value=False, is_eager=True, callback=_set_directory,
                         help="Run as if started in this directory."),
            click.option("-v", "--verbose", is_flag=True, expose_value=False,
                         callback=_set_verbose, help="Echo every command reproflake runs."),
            click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
                         help="Print only results and errors, no progress."),
            click.option("--color", type=click.Choice(["auto", "always", "never"]),
                         default=None, expose_value=False, callback=_set_color,
                         help="Colour in messages (default auto; NO_COLOR=1 turns it off)."),
        ]
    ):  # fmt: skip
        fn = option(fn)
    return fn


def _completer(table: str) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    """A click ``shell_complete`` callback naming the project's steps, environments or
    images (the project of -C, else of the working directory)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        from reproflake import completion

        directory = next((c.obj for c in _contexts(ctx) if c.obj is not None), Path("."))
        # STEP... offers each step once; a single STEP has nothing given yet.
        given = (ctx.params.get(param.name or "") or ()) if param.nargs == -1 else ()
        return completion.names(directory, table, incomplete, given)

    return complete


def _contexts(ctx: click.Context | None) -> list[click.Context]:
    found = []
    while ctx is not None:
        found.append(ctx)
        ctx = ctx.parent
    return found


_STEPS = _completer("steps")


class _Group(click.Group):
    """Every subcommand accepts the global options too (`reproflake plan -v`)."""

    # Used only as @main.command(...) here; click's overloads cannot be restated simply.
    def command(self, *args: Any, **kwargs: Any) -> Callable[..., Any]:  # type: ignore[override]
        make = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> click.Command:
            return make(_global_options(fn))  # type: ignore[no-any-return]

        return decorator


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reproflake")
@_global_options
@click.pass_context
def main(ctx: click.Context) -> None:
    """Hermetic, bit-for-bit reproducible pipelines built by Nix."""
    if ctx.obj is None:
        ctx.obj = Path(".")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--template", "-t", default=None, help="Project template (default: python).")
@click.option("--from", "sources", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Start the spec from the project's requirements file, pyproject.toml or "
              "environment.yml (repeatable).")  # fmt: skip
@click.option("--extra", "extras", multiple=True,
              help="With --from pyproject.toml: also its optional dependencies NAME (repeatable).")  # fmt: skip
@click.option("--list", "list_", is_flag=True, help="List the templates and exit.")
@click.option("--debian-mirror", help="Debian mirror URL (default: this machine's apt sources).")
@click.option("--suite", help="Debian suite, e.g. bookworm (default: this machine's).")
@click.option("--library", type=click.Choice(["vendored", "input"]), default="vendored",
              show_default=True, help="Where the flake takes reproflake's Nix library from: "
              "a copy in the project, or reproflake's flake as an input.")  # fmt: skip
@click.option("--library-url", help="With --library input: the URL of reproflake's flake "
              "(default: this reproflake's source checkout).")  # fmt: skip
def init(
    directory: Path,
    template: str | None,
    sources: tuple[Path, ...],
    extras: tuple[str, ...],
    list_: bool,
    debian_mirror: str | None,
    suite: str | None,
    library: str,
    library_url: str | None,
) -> None:
    """Create a project from a template, or adopt an existing directory."""
    from reproflake.commands import init as cmd

    def go() -> int:
        if list_:
            for name in cmd.template_names():
                _out(name)
            return 0
        url = cmd.library_url(library, library_url)
        done = cmd.run(directory, template, debian_mirror, suite, url, sources, extras)
        for rel in done.added:
            _log(f"added {rel}")
        if done.appended:
            _log(f"appended to .gitignore: {', '.join(done.appended)}")
        for rel, why in done.left_alone:
            _log(f"left alone {rel}: {why}")
        for note in done.notes:
            _log(f"note: {note}")
        for name in done.unmapped:
            _log(f"not mapped: {name}")
        if done.created_repository:
            _log("created a git repository")
        origin = f"from {', '.join(map(str, sources))}" if sources else (
            f"from template {template or cmd.DEFAULT_TEMPLATE!r}")  # fmt: skip
        count = len(done.added)
        _log(f"created {count} file{'' if count == 1 else 's'} in {directory} {origin}")
        import shlex

        _log(f"next: cd {shlex.quote(str(directory))} && reproflake lock && reproflake build")
        return 0

    _guard(go)


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if the lock is stale; write nothing.")
@click.option("--upgrade", is_flag=True, help="Re-resolve every package, not only what changed.")
@click.option("--json", "as_json", is_flag=True, help="With --check: the verdict as JSON.")
@click.pass_obj
def lock(directory: Path, check: bool, upgrade: bool, as_json: bool) -> None:
    """Pin every input (packages, wheels, data) into reproflake.lock."""
    from reproflake.commands import lock as cmd

    if as_json and not check:
        raise click.UsageError("--json goes with --check")

    def go() -> int:
        try:
            return cmd.run(
                directory,
                check=check,
                upgrade=upgrade,
                log=_log,
                json_out=_out if as_json else None,
            )
        except ReproflakeError as exc:
            from reproflake.errors import StaleLockError

            if check and isinstance(exc, StaleLockError):
                exc.exit_code = 1  # --check reports staleness as failure
            raise

    _guard(go, as_json=as_json)


def _jobs_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
        help="Build up to N steps at once (Nix's max-jobs; default: one per CPU core).",
    )(fn)  # fmt: skip


@main.command()
@click.argument("steps", nargs=-1, shell_complete=_STEPS)
@_jobs_option
@click.option(
    "--keep-going/--no-keep-going", default=True, show_default=True,
    help="After a step fails, still build the steps that do not need it.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Build nothing: say what would build (= plan).")
@click.option("--json", "as_json", is_flag=True, help="Per step: status, output, time, log.")
@click.pass_obj
def build(
    directory: Path,
    steps: tuple[str, ...],
    jobs: int | None,
    keep_going: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Build steps (default: all) in Nix's sandbox."""
    from reproflake.commands import _noop

    def go() -> int:
        if dry_run:
            from reproflake.commands import plan

            return plan.run(directory, steps, as_json=as_json, log=_log, out=_out)
        # Nothing changed since the last build: answer before importing the heavy parts.
        if not as_json and _noop.answer(directory, steps, _out):
            return 0
        from reproflake.commands import build as cmd

        return cmd.run(
            directory, steps, log=_log, out=_out, jobs=jobs, keep_going=keep_going,
            as_json=as_json,
        )  # fmt: skip

    _guard(go, as_json=as_json)


_VARIATIONS = ("aslr", "cpus", "hostname", "time", "umask")


@main.command()
@click.argument("steps", nargs=-1, shell_complete=_STEPS)
@_jobs_option
@click.option(
    "--vary",
    "vary",
    multiple=True,
    type=click.Choice([*_VARIATIONS, "all", "none"]),
    help="What the second build varies (repeatable; default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Per step and environment: a verdict.")
@click.pass_obj
def verify(
    directory: Path, steps: tuple[str, ...], jobs: int | None, vary: tuple[str, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """Rebuild steps with the clock, CPUs, host name, umask and ASLR varied; compare bytes."""
    from reproflake.commands import verify as cmd

    chosen = set(vary or ("all",))
    if "all" in chosen:
        chosen |= set(_VARIATIONS)
    chosen -= {"all", "none"}
    _guard(
        lambda: cmd.run(
            directory, steps, log=_log, out=_out, jobs=jobs, vary=sorted(chosen), as_json=as_json
        ),
        as_json=as_json,
    )


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the archive (default: NAME-COMMIT.FORMAT here).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tar.zst", "tar.gz"]),
    default="tar.zst",
    show_default=True,
)
@click.option(
    "--vendor", is_flag=True, help="Carry every pinned file: reproducing needs no network."
)
@click.option(
    "--allow-dirty", is_flag=True, help="Release the commit even if the work tree differs."
)
@click.option(
    "--sign",
    "sign",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="KEY",
    help="Sign SHA256SUMS with this SSH private key (ed25519): SHA256SUMS.sig.",
)
@click.pass_obj
def release(
    directory: Path,
    output: Path | None,
    fmt: str,
    vendor: bool,
    allow_dirty: bool,
    sign: Path | None,
) -> None:
    """Write one deterministic archive of the project at its commit, with outputs,
    SHA256SUMS and provenance."""
    from reproflake.commands import release as cmd

    _guard(
        lambda: cmd.run(
            directory, log=_log, out=_out, output=output, fmt=fmt, vendor=vendor,
            allow_dirty=allow_dirty, sign=sign,
        )
    )  # fmt: skip


@main.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dir",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Extract into this directory (default: here); outside any git repository.",
)
@click.option(
    "--allowed-signers",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Require SHA256SUMS.sig by a key of this OpenSSH allowed_signers file.",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Require SHA256SUMS.sig by this SSH public key (a .pub file).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document: every verdict.")
@click.option(
    "--trust-nix-code",
    is_flag=True,
    help="Evaluate the release's own Nix code even where it is not this reproflake's.",
)
@click.pass_obj
def reproduce(
    directory: Path,
    archive: Path,
    dest: Path | None,
    allowed_signers: Path | None,
    public_key: Path | None,
    as_json: bool,
    trust_nix_code: bool,
) -> None:
    """Extract a release archive safely, rebuild it offline and compare every output.

    Exit 0: every output identical to the recorded hashes; 1: something differs, did not
    build, or the signature is bad; 2: the archive is unsafe or damaged. Bounds: 8 GiB
    per entry, 64 GiB in all, a million entries."""
    from reproflake.commands import reproduce as cmd

    # -C DIR: paths given relative to DIR, as if started there.
    def at(p: Path | None) -> Path | None:
        return None if p is None else directory / p

    _guard(
        lambda: cmd.run(
            directory / archive, log=_log, out=_out, dest=at(dest) or directory,
            allowed_signers=at(allowed_signers), public_key=at(public_key), as_json=as_json,
            trust_nix_code=trust_nix_code,
        ),
        as_json=as_json,
    )  # fmt: skip


@main.command()
@click.argument("steps", nargs=-1, shell_complete=_STEPS)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def plan(directory: Path, steps: tuple[str, ...], as_json: bool) -> None:
    """Say which steps a build would run, and why, without building."""
    from reproflake.commands import plan as cmd

    _guard(lambda: cmd.run(directory, steps, as_json=as_json, log=_log, out=_out), as_json=as_json)


@main.command()
@click.argument("steps", nargs=-1, shell_complete=_STEPS)
@click.pass_obj
def status(directory: Path, steps: tuple[str, ...]) -> None:
    """One word per step: built, will build, may build or cannot build here (plan, short)."""
    from reproflake.commands import plan as cmd

    _guard(lambda: cmd.run(directory, steps, as_json=False, log=_log, out=_out, short=True))


@main.command()
@click.argument("steps", nargs=-1, shell_complete=_STEPS)
@click.option("--to", metavar="URL", help="The cache to push to (default: [cache] push).")
@click.pass_obj
def push(directory: Path, steps: tuple[str, ...], to: str | None) -> None:
    """Sign and upload steps' results (default: all), and what they need, to a Nix cache."""
    from reproflake.commands import push as cmd

    _guard(lambda: cmd.run(directory, steps, to=to, log=_log, out=_out))


@main.command()
@click.argument("steps", nargs=-1, shell_complete=_STEPS)
@click.pass_obj
def pull(directory: Path, steps: tuple[str, ...]) -> None:
    """Fetch steps' results (default: all) from the caches without building anything."""
    from reproflake.commands import pull as cmd

    _guard(lambda: cmd.run(directory, steps, log=_log, out=_out))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--install-hook",
    "hook",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the GPU pre-build hook to this file (e.g. /etc/nix/reproflake-gpu-hook) "
    "and print its nix.conf line.",
)
@click.pass_obj
def hw(directory: Path, as_json: bool, hook: Path | None) -> None:
    """Probe this machine's hardware; print the Nix features and config lines for it."""
    from reproflake.commands import hw as cmd

    _guard(lambda: cmd.run(directory, as_json=as_json, out=_out, hook=hook))


@main.command()
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Keep what the last N locks need, not only the current one.",
)
@click.option("--dry-run", is_flag=True, help="Say what would go; delete nothing.")
@click.pass_obj
def gc(directory: Path, keep: int, dry_run: bool) -> None:
    """Drop the project's roots it no longer needs and collect Nix's garbage."""
    from reproflake.commands import gc as cmd

    _guard(lambda: cmd.run(directory, keep=keep, dry_run=dry_run, log=_log, out=_out))


@main.command(name="log")
@click.argument("step", shell_complete=_STEPS)
@click.pass_obj
def log_(directory: Path, step: str) -> None:
    """Print a step's whole build log (failed or not), as Nix kept it."""
    from reproflake.commands import log as cmd

    _guard(lambda: cmd.run(directory, step, log=_log, out=_out))


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "json", "svg", "png"]),
    default=None,
    help="Output format (svg and png need Graphviz's dot). Default: from -o's extension "
    "(.svg, .png, .dot/.gv, .mmd, .json), else text.",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.pass_obj
def graph(directory: Path, fmt: str | None, output: Path | None) -> None:
    """Draw the pipeline: inputs, environments and steps, marked built or stale."""
    from reproflake.commands import graph as cmd

    _guard(lambda: cmd.run(directory, fmt, output, log=_log, out=_out))


@main.command()
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def diff(directory: Path, rev_a: str | None, rev_b: str | None, as_json: bool) -> None:
    """What changed between two git revisions (default: HEAD and the working tree)."""
    from reproflake.commands import diff as cmd

    _guard(lambda: cmd.run(directory, rev_a, rev_b, as_json=as_json, log=_log, out=_out))


@main.command()
@click.argument("name", shell_complete=_completer("images"))
@click.option(
    "--format", "fmt", type=click.Choice(["oci-dir", "oci-archive"]), default="oci-dir",
    show_default=True, help="An OCI layout directory, or the same as one tar file.",
)  # fmt: skip
@click.option(
    "--compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip",
    show_default=True, help="How layers are compressed.",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(path_type=Path),
    help="Where to write it (default: results/NAME.oci, or results/NAME.oci.tar).",
)  # fmt: skip
@click.option("--push", "push", metavar="REF", help="Then copy it to a registry (via skopeo).")
@click.pass_obj
def image(
    directory: Path, name: str, fmt: str, compression: str, output: Path | None, push: str | None
) -> None:
    """Export a step as a deterministic OCI image (see [images.NAME] in reproflake.toml)."""
    from reproflake.commands import _image_stamp

    def go() -> int:
        # Nothing changed since the last export: answer before importing the heavy parts.
        hit = None if push else _image_stamp.check(directory, name, fmt, compression, output)
        if hit is not None:
            _out(f"{hit[0].dest}: {hit[1]} (unchanged)")
            return 0
        # Only the image is to write (removed, another format): not the project to load.
        from reproflake.commands import _image_write

        if not push and _image_write.again(
            directory, name, fmt, compression, output, log=_log, out=_out
        ):
            return 0
        from reproflake.commands import image as cmd

        return cmd.run(
            directory,
            name,
            fmt=fmt,
            compression=compression,
            output=output,
            push=push,
            log=_log,
            out=_out,
        )

    _guard(go)


@main.command()
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
def schema(output: Path | None) -> None:
    """Print the JSON Schema of reproflake.toml (for editors: Taplo, Even Better TOML)."""
    from reproflake import schema as json_schema

    def go() -> int:
        if output is None:
            click.echo(json_schema.text(), nl=False)
        else:
            from reproflake.fsutil import write_if_changed

            write_if_changed(output, json_schema.text().encode())
        return 0

    _guard(go)


class _ShellCommand(click.Command):
    """Everything after `--` is the command to run, kept verbatim (click would otherwise
    take its first word for the step)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["shell_command"] = args[cut + 1 :]
            args = args[:cut]
        return super().parse_args(ctx, args)


@main.command(cls=_ShellCommand)
@click.argument("step", required=False, shell_complete=_STEPS)
@click.option("--env", "env", metavar="ENV", help="An environment, with an empty /work.",
              shell_complete=_completer("environments"))  # fmt: skip
@click.pass_context
def shell(ctx: click.Context, step: str | None, env: str | None) -> None:
    """Enter a step's environment as the step sees it: [STEP | --env ENV] [-- COMMAND...]."""
    from reproflake.commands import shell as cmd

    command = list(ctx.meta.get("shell_command", []))
    _guard(lambda: cmd.run(ctx.obj, step, env, command, log=_log))
