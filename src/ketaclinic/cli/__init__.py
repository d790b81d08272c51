"""The `ketaclinic` command line: thin commands that parse, call one service and print."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import typer

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


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line reason on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        # Each command group lives in its own module and attaches itself to `app`.
        from ketaclinic.cli import commands  # noqa: F401

        _registered = True


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the console script and the tests)."""
    global _environ
    _register()
    # Everything the command line (and the server it starts) creates is private to its user:
    # the database, backups, exports, checkpoints.
    previous_umask = os.umask(0o077)
    _environ = environ
    try:
        app(args=list(argv) if argv is not None else sys.argv[1:], standalone_mode=True,
            prog_name="ketaclinic")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        _environ = None
        os.umask(previous_umask)
    return 0


def console() -> None:  # pragma: no cover - the console-script entry point
    sys.exit(main())
