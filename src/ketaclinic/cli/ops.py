"""Operations commands: backup and restore (see docs/robustness.md)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from ketaclinic.cli import app, fail
from ketaclinic.cli.core import settings
from ketaclinic.cli.output import (
    EXIT_REFUSED,
    CliError,
    JsonFlag,
    emit,
    input_path,
    is_stdio,
    output_path,
)
from ketaclinic.store.backup import BackupError, Format, backup, restore, table_digests
from ketaclinic.store.db import make_engine

console = Console()


def _engine():
    cfg = settings()
    return make_engine(cfg.effective_database_url, busy_timeout_ms=cfg.sqlite_busy_timeout_ms)


def _checkpoint_before_backup(engine, cfg, out: Path):
    """Sign the tips before the snapshot (the backup then holds every row it names): one line
    in the data dir's file and a copy beside the backup."""
    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.audit.trail import audit_key
    from ketaclinic.services.clock import utc_now
    from ketaclinic.store.db import Database

    key = audit_key(cfg)
    with Database(engine).transaction() as s:
        cp = acp.take(s, utc_now())
    acp.append(cfg.data_dir / acp.FILE_NAME, key, cp)
    return lambda: acp.write(companion_checkpoint(out), key, cp)


def companion_checkpoint(backup_file: Path) -> Path:
    return backup_file.with_name(backup_file.name + ".audit-checkpoint.json")


_BACKUP_FORMATS: dict[str, Format | Literal["auto"]] = {
    "auto": "auto", "sqlite": "sqlite", "pgdump": "pgdump", "jsonl": "jsonl"}


@app.command("backup")
def backup_cmd(
    out: Annotated[Path, typer.Option(
        "--out", help="File to write; - writes the backup to stdout (the audit checkpoint then "
        "goes to the data dir only)")],
    fmt: Annotated[str, typer.Option(
        "--format", help="auto (sqlite file / pg_dump), sqlite, pgdump or jsonl")] = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Write a consistent backup of the database while the clinic keeps working, with a
    signed checkpoint of the audit chain beside it (and in the data dir). The summary goes to
    stderr when the backup goes to stdout."""
    chosen = _BACKUP_FORMATS.get(fmt)
    if chosen is None:
        raise fail("--format must be auto, sqlite, pgdump or jsonl")
    to_stdout = is_stdio(out)
    cfg = settings()
    engine = _engine()
    try:
        with output_path(out) as target:
            write_companion = _checkpoint_before_backup(engine, cfg, target)
            written = backup(engine, target, chosen)
            if not to_stdout:
                write_companion()
            size = target.stat().st_size
        counts = {name: n for name, (n, _h) in table_digests(engine).items()}
    except BackupError as exc:
        raise fail(str(exc), 1) from exc
    except OSError as exc:
        raise fail(f"cannot write the audit checkpoint: {exc.strerror}", 1) from exc
    finally:
        engine.dispose()
    companion = None if to_stdout else str(companion_checkpoint(out))
    summary = {"file": str(out), "format": written, "bytes": size, "rows": counts,
               "audit_checkpoint": companion}
    emit(summary, as_json,
         f"backup written to {'stdout' if to_stdout else out} ({written}, {size} bytes, "
         f"{sum(counts.values())} rows in {len(counts)} tables); audit checkpoint "
         f"{companion or 'in the data dir'}", err=to_stdout)


def _audit_check(cfg, files: list[Path]):
    """The check a restored copy must pass before it replaces the target: its audit chain
    verifies, and reaches every given checkpoint."""
    from sqlalchemy.orm import Session

    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.audit.trail import AuditTrail, audit_key

    trail = AuditTrail(audit_key(cfg))
    try:
        marks = [acp.read_latest(p, trail.key) for p in files]
    except acp.CheckpointError as exc:
        raise fail(str(exc), 1) from exc

    def check(conn) -> str | None:
        with Session(bind=conn) as s:
            verdict = trail.verify(s, [m for m in marks if m is not None])
        return None if verdict.ok else verdict.describe() + (
            " (is KETACLINIC_SECRET_KEY the same as on the source instance?)")
    return check


@app.command("restore")
def restore_cmd(
    source: Annotated[Path, typer.Argument(
        help="A file written by `ketaclinic backup`, or - for stdin")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of a non-empty target database")] = False,
    checkpoint: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", help="Audit checkpoint the backup must reach (default: the one written "
        "beside the backup, if present); repeatable; - reads it from stdin")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore a backup into this instance's database: the copy is restored aside and its
    audit chain verified first; a backup that fails leaves the database as it was."""
    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.audit.trail import AuditTrail, audit_key
    from ketaclinic.services.clock import utc_now
    from ketaclinic.store.db import Database

    cfg = settings()
    files = list(checkpoint or [])
    if not files and not is_stdio(source) and companion_checkpoint(source).is_file():
        files = [companion_checkpoint(source)]
    if sum(is_stdio(f) for f in [source, *files]) > 1:
        raise fail("only one of the backup and its checkpoints can be read from stdin (-)")
    missing = [str(f) for f in files if not is_stdio(f) and not f.is_file()]
    if missing:
        raise fail(f"{missing[0]} does not exist")
    with ExitStack() as stack:  # the checkpoints are read here, before the restore
        check = _audit_check(cfg, [stack.enter_context(input_path(f)) for f in files])
    engine = _engine()
    try:
        with input_path(source) as real_source:
            fmt = restore(engine, real_source, force=force, check=check)
        db = Database(engine)
        trail = AuditTrail(audit_key(cfg))
        with db.transaction() as s:
            verdict = trail.verify(s)
            cp = acp.take(s, utc_now())
        acp.append(cfg.data_dir / acp.FILE_NAME, trail.key, cp)  # the new baseline
        counts = {name: n for name, (n, _h) in table_digests(engine).items()}
    except BackupError as exc:
        raise fail(str(exc), 1) from exc
    finally:
        engine.dispose()
    broken = None if verdict.ok else CliError(
        "the audit chain does not verify after the restore (is KETACLINIC_SECRET_KEY the same "
        "as on the source instance?)", EXIT_REFUSED, "check_failed")
    emit({"format": fmt, "rows": counts, "audit_ok": verdict.ok, "audit": verdict.describe(),
          "checkpoints": [str(f) for f in files]}, as_json,
         lambda: console.print(f"restored {sum(counts.values())} rows ({fmt}); "
                               f"{verdict.describe()}"), error=broken)


@app.command("doctor")
def doctor_cmd(
    as_json: JsonFlag = False,
) -> None:
    """Check this instance as an operator would before opening the clinic: settings, secret
    strength, data dir permissions, database reachable, schema at head, durability, free disk
    and writes, audit chain against the latest checkpoint. Every check runs; exits 1 if any
    fails (warnings do not fail)."""
    from rich.table import Table

    from ketaclinic.cli import environ
    from ketaclinic.services.doctor import run_doctor

    report = run_doctor(environ())

    def human() -> None:
        table = Table("check", "status", "detail", title="ketaclinic doctor")
        colour = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for c in report.checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
        console.print(table)

    failed = [c.name for c in report.checks if c.status == "fail"]
    emit(report.to_json(), as_json, human, error=None if report.ok else CliError(
        f"doctor: failed check(s): {', '.join(failed) or 'see above'}", EXIT_REFUSED,
        "check_failed"))
