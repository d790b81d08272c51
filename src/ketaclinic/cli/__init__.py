"""The `ketaclinic` command line: thin commands that parse, call one service and print."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

app = typer.Typer(
    name="ketaclinic",
    help="ketaclinic: software for ketamine and esketamine clinics. Decision support, not medical advice.",
    no_args_is_help=True,
    add_completion=False,
)


def _register() -> None:
    # Each command group lives in its own module and attaches itself to `app`.
    from ketaclinic.cli import commands  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the console script and the tests)."""
    _register()
    try:
        app(args=list(argv) if argv is not None else sys.argv[1:], standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
