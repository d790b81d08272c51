"""The `ketaclinic` command line: thin commands that parse, call one service and print.

Printing, errors, exit codes and `-` for stdin/stdout live in ``ketaclinic.cli.output``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Annotated

import typer
from typer import _click as click

from ketaclinic.cli.output import (
    EXIT_INVALID,
    EXIT_REFUSED,
    CliError,
    classify,
    report,
    set_json_mode,
    wants_json,
)

app = typer.Typer(
    name="ketaclinic",
    help="ketaclinic: software for ketamine and esketamine clinics. "
    "Decision support for clinicians, not medical advice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_environ: Mapping[str, str] | None = None


def environ() -> Mapping[str, str]:
    """The environment this invocation runs with (``main(environ=...)`` in tests)."""
    return _environ if _environ is not None else os.environ


def fail(message: str, code: int = EXIT_INVALID) -> CliError:
    """The error to raise for an expected failure: ``main`` prints it (one line on stderr, or
    JSON on stdout under --json) and exits with ``code`` (see ``output.EXIT_CODES``)."""
    return CliError(message, code)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ketaclinic")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ketaclinic {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """ketaclinic: software for ketamine and esketamine clinics. Decision support for
    clinicians, not medical advice."""


_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        # Each command group lives in its own module and attaches itself to `app` on import.
        from ketaclinic.cli import commands

        _in_listed_order(commands.MODULES)
        _registered = True


def _in_listed_order(modules: Sequence[ModuleType]) -> None:
    """Put ``app``'s commands and groups in the order of the command modules listed in
    ``cli/commands.py`` (each in the order it registered them), whatever order the modules
    were first imported in: a test or a plugin that imports ``cli.chair`` first would
    otherwise move the chair group up in ``ketaclinic --help`` and the CLI reference."""
    rank = {m.__name__: i for i, m in enumerate(modules)}
    owner: dict[int, str] = {}  # a group's Typer -> the first listed module that holds it
    for m in modules:
        for v in vars(m).values():
            if isinstance(v, typer.Typer):
                owner.setdefault(id(v), m.__name__)

    def group_rank(info: typer.models.TyperInfo) -> int:
        return rank.get(owner.get(id(info.typer_instance), ""), len(rank))

    def command_rank(info: typer.models.CommandInfo) -> int:
        return rank.get(getattr(info.callback, "__module__", ""), len(rank))

    app.registered_groups.sort(key=group_rank)  # sort is stable: a module's own order stays
    app.registered_commands.sort(key=command_rank)


_command: click.Command | None = None


def _click_command() -> click.Command:
    """The click command typer makes of ``app`` (every group, command and parameter), made
    once per process: ``app(...)`` makes it again on each call, about 40 ms of CPU, which a
    process running many commands (the test suite runs a few hundred) paid every time.
    ``app`` has typer's pretty exceptions off, so calling the command is what ``app(...)``
    does."""
    global _command
    if _command is None:
        _command = typer.main.get_command(app)
    return _command


def _run(args: list[str]) -> int:
    """Run one command; expected errors become one line (or JSON) and their exit code."""
    from typer._click import exceptions as click_exc

    try:
        rv = _click_command()(args=args, standalone_mode=False, prog_name="ketaclinic")
    except click_exc.NoArgsIsHelpError as exc:  # a bare group: its help, as click prints it
        typer.echo(exc.ctx.get_help() if exc.ctx else "")
        return exc.exit_code
    except click_exc.ClickException as exc:  # usage: unknown option, missing argument, ...
        return report(CliError(exc.format_message(), exc.exit_code if exc.exit_code else
                               EXIT_INVALID, "usage"))
    except typer.Abort:
        return report(CliError("aborted", EXIT_REFUSED, "aborted"))
    except typer.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:
        error = classify(exc)
        if error is None:
            raise
        return report(error)
    return rv if isinstance(rv, int) else 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the console script and the tests)."""
    global _environ
    _register()
    args = list(argv) if argv is not None else sys.argv[1:]
    # Everything the command line (and the server it starts) creates is private to its user:
    # the database, backups, exports, checkpoints.
    previous_umask = os.umask(0o077)
    _environ = environ
    set_json_mode(wants_json(args))
    try:
        return _run(args)
    finally:
        set_json_mode(False)
        _environ = None
        os.umask(previous_umask)


def console() -> None:  # pragma: no cover - the console-script entry point
    sys.exit(main())
