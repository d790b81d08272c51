"""How every command prints: data as human text or, with ``--json``, one JSON document on stdout;
errors as one line on stderr or, with ``--json``, a JSON object on stdout; ``-`` as a file name
means stdin (inputs) or stdout (outputs). The exit codes are in ``EXIT_CODES`` (docs/cli.md).

Error messages come from ``str()`` of domain errors, which by contract carry no patient data.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_INVALID = 2
EXIT_HARD_STOP = 3
EXIT_NOT_FOUND = 4

EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("ok", "success"),
    EXIT_REFUSED: ("refused", "refused or failed: a check failed (doctor, audit verify), "
                   "permission denied, conflict, unavailable, a file could not be written"),
    EXIT_INVALID: ("invalid_input", "usage error or invalid input (nothing was changed)"),
    EXIT_HARD_STOP: ("hard_stop", "a clinical hard stop (a dose blocked by a hard limit)"),
    EXIT_NOT_FOUND: ("not_found", "the named record does not exist"),
}

STDIO = "-"

JSON_HELP = "Print one JSON document on stdout (errors too)."
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


class CliError(Exception):
    """An expected failure: one line for people, ``{"error": {...}}`` under --json."""

    def __init__(self, message: str, code: int = EXIT_INVALID, kind: str | None = None,
                 details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = " ".join(str(message).split())
        self.code = code
        self.kind = kind or EXIT_CODES.get(code, ("error", ""))[0]
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.kind, "message": self.message,
                                "exit_code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


_json_mode = False


def set_json_mode(on: bool) -> None:
    """Set by ``main`` from the arguments, so errors raised anywhere honour --json."""
    global _json_mode
    _json_mode = on


def json_mode() -> bool:
    return _json_mode


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: they become null (a median "not reached" is null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(data: Any) -> str:
    return json.dumps(_finite(data), ensure_ascii=False, default=_default, allow_nan=False)


def write_json(data: Any, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(dumps(data) + "\n")
    stream.flush()


def emit(data: Any, as_json: bool, human: Callable[[], None] | str | None = None, *,
         err: bool = False, error: CliError | None = None) -> None:
    """Print a command's result: ``data`` as JSON with --json, else ``human`` (a callable
    that prints, or a line). ``err`` sends it to stderr (when stdout carries a file written
    to ``-``). With ``error`` the result is a failing one (a failed check, a hard stop): under
    --json the document gets an ``"error"`` key; the error is raised after printing."""
    if as_json:
        if error is not None:
            data = {**data, **error.as_dict()} if isinstance(data, dict) else {
                "result": data, **error.as_dict()}
        write_json(data, err=err)
    elif callable(human):
        human()
    elif human is not None:
        typer.echo(human, err=err)
    if error is not None:
        raise _Reported(error)


class _Reported(CliError):
    """An error whose JSON already went out inside the result document."""

    def __init__(self, error: CliError) -> None:
        super().__init__(error.message, error.code, error.kind, error.details)


def classify(exc: BaseException) -> CliError | None:
    """The CliError for an expected exception; None for a bug (which keeps its traceback)."""
    from ketaclinic.clinical.rules import ClinicalInputError
    from ketaclinic.services import errors as se

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, se.ServiceError):
        details = getattr(exc, "errors", None)
        kinds: list[tuple[type[se.ServiceError], int, str]] = [
            (se.NotFound, EXIT_NOT_FOUND, "not_found"),
            (se.InvalidInput, EXIT_INVALID, "invalid_input"),
            (se.PermissionDenied, EXIT_REFUSED, "permission_denied"),
            (se.NotAuthenticated, EXIT_REFUSED, "not_authenticated"),
            (se.Conflict, EXIT_REFUSED, "conflict"),
            (se.Throttled, EXIT_REFUSED, "throttled"),
            (se.Unavailable, EXIT_REFUSED, "unavailable"),
        ]
        code, kind = next(((c, k) for cls, c, k in kinds if isinstance(exc, cls)),
                          (EXIT_INVALID, "invalid_input"))
        listed = [e.as_dict() if hasattr(e, "as_dict") else str(e) for e in details] if (
            isinstance(details, list)) else None
        return CliError(str(exc), code, kind, listed)
    if isinstance(exc, ClinicalInputError):
        return CliError(str(exc), EXIT_INVALID, "invalid_input")
    return None


def report(error: CliError) -> int:
    """Print an error (JSON on stdout under --json, else one line on stderr); its exit code."""
    if isinstance(error, _Reported):
        if not _json_mode:
            typer.echo(f"error: {error.message}", err=True)
        return error.code
    if _json_mode:
        write_json(error.as_dict())
    else:
        if error.details:
            for d in error.details:
                typer.echo(f"error: {_detail_line(d)}", err=True)
        typer.echo(f"error: {error.message}", err=True)
    return error.code


def _detail_line(d: Any) -> str:
    if isinstance(d, dict):
        return "; ".join(f"{k}: {v}" for k, v in d.items() if v not in (None, ""))
    return str(d)


# --- files: `-` is stdin for inputs and stdout for outputs -------------------------------------

def is_stdio(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDIO


def read_bytes(path: str | Path, max_bytes: int | None = None) -> bytes:
    """Read a file, or stdin for ``-``; an unreadable or too large input is a CliError."""
    try:
        if is_stdio(path):
            raw = sys.stdin.buffer.read(-1 if max_bytes is None else max_bytes + 1)
        else:
            raw = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise CliError(f"{path} is larger than {max_bytes} bytes (KETACLINIC_MAX_BODY_BYTES)")
    return raw


def read_text(path: str | Path, max_bytes: int | None = None) -> str:
    try:
        return read_bytes(path, max_bytes).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file, or binary stdout for ``-``."""
    if is_stdio(path):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", EXIT_REFUSED) from None


@contextmanager
def input_path(path: Path) -> Iterator[Path]:
    """A real file for APIs that need one: ``-`` spools stdin to a private temporary file."""
    if not is_stdio(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ketaclinic-stdin-") as folder:
        spooled = Path(folder) / "stdin"
        with spooled.open("wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh)
        yield spooled


@contextmanager
def output_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A real file for APIs that write one: for ``-`` a private temporary file that is copied
    to binary stdout when the block succeeds."""
    if not is_stdio(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ketaclinic-stdout-") as folder:
        target = Path(folder) / f"stdout{suffix}"
        yield target
        if target.exists():
            sys.stdout.flush()
            with target.open("rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer)
            sys.stdout.buffer.flush()


def wants_json(argv: list[str]) -> bool:
    """Whether --json is among the options (not after a `--`)."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in head

