"""Operations commands: backup and restore (see docs/robustness.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ketaclinic.cli import app, fail
from ketaclinic.cli.core import settings
from ketaclinic.store.backup import BackupError, backup, restore, table_digests
from ketaclinic.store.db import make_engine

console = Console()


def _engine():  # type: ignore[no-untyped-def]
    cfg = settings()
    return make_engine(cfg.effective_database_url, busy_timeout_ms=cfg.sqlite_busy_timeout_ms)


def _checkpoint_before_backup(engine, cfg, out: Path):  # type: ignore[no-untyped-def]
    """Sign the tips before the snapshot (the backup then holds every row it names): one line
    in the data dir's file and a copy beside the backup."""
    from ketaclinic.bootstrap import audit_key
    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.clock import utc_now
    from ketaclinic.store.db import Database

    key = audit_key(cfg)
    with Database(engine).transaction() as s:
        cp = acp.take(s, utc_now())
    acp.append(cfg.data_dir / acp.FILE_NAME, key, cp)
    return lambda: acp.write(companion_checkpoint(out), key, cp)


def companion_checkpoint(backup_file: Path) -> Path:
    return backup_file.with_name(backup_file.name + ".audit-checkpoint.json")


@app.command("backup")
def backup_cmd(
    out: Annotated[Path, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option(
        "--format", help="auto (sqlite file / pg_dump), sqlite, pgdump or jsonl")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
) -> None:
    """Write a consistent backup of the database while the clinic keeps working, with a
    signed checkpoint of the audit chain beside it (and in the data dir)."""
    if fmt not in {"auto", "sqlite", "pgdump", "jsonl"}:
        raise fail("--format must be auto, sqlite, pgdump or jsonl")
    cfg = settings()
    engine = _engine()
    try:
        write_companion = _checkpoint_before_backup(engine, cfg, out)
        written = backup(engine, out, fmt)  # type: ignore[arg-type]
        write_companion()
        counts = {name: n for name, (n, _h) in table_digests(engine).items()}
    except BackupError as exc:
        raise fail(str(exc), 1) from exc
    except OSError as exc:
        raise fail(f"cannot write the audit checkpoint: {exc.strerror}", 1) from exc
    finally:
        engine.dispose()
    summary = {"file": str(out), "format": written, "bytes": out.stat().st_size, "rows": counts,
               "audit_checkpoint": str(companion_checkpoint(out))}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(f"backup written to {out} ({written}, {summary['bytes']} bytes, "
                      f"{sum(counts.values())} rows in {len(counts)} tables); audit checkpoint "
                      f"{summary['audit_checkpoint']}")


def _audit_check(cfg, files: list[Path]):  # type: ignore[no-untyped-def]
    """The check a restored copy must pass before it replaces the target: its audit chain
    verifies, and reaches every given checkpoint."""
    from sqlalchemy.orm import Session

    from ketaclinic.bootstrap import audit_key
    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.audit.trail import AuditTrail

    trail = AuditTrail(audit_key(cfg))
    try:
        marks = [acp.read_latest(p, trail.key) for p in files]
    except acp.CheckpointError as exc:
        raise fail(str(exc), 1) from exc

    def check(conn) -> str | None:  # type: ignore[no-untyped-def]
        with Session(bind=conn) as s:
            verdict = trail.verify(s, [m for m in marks if m is not None])
        return None if verdict.ok else verdict.describe() + (
            " (is KETACLINIC_SECRET_KEY the same as on the source instance?)")
    return check


@app.command("restore")
def restore_cmd(
    source: Annotated[Path, typer.Argument(help="A file written by `ketaclinic backup`")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of a non-empty target database")] = False,
    checkpoint: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", help="Audit checkpoint the backup must reach (default: the one written "
        "beside the backup, if present); repeatable")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
) -> None:
    """Restore a backup into this instance's database: the copy is restored aside and its
    audit chain verified first; a backup that fails leaves the database as it was."""
    from ketaclinic.bootstrap import audit_key
    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.audit.trail import AuditTrail
    from ketaclinic.services.clock import utc_now
    from ketaclinic.store.db import Database

    cfg = settings()
    files = list(checkpoint or [])
    if not files and companion_checkpoint(source).is_file():
        files = [companion_checkpoint(source)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise fail(f"{missing[0]} does not exist")
    check = _audit_check(cfg, files)
    engine = _engine()
    try:
        fmt = restore(engine, source, force=force, check=check)
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
    if as_json:
        typer.echo(json.dumps({"format": fmt, "rows": counts, "audit_ok": verdict.ok,
                               "audit": verdict.describe(),
                               "checkpoints": [str(f) for f in files]}))
    else:
        console.print(f"restored {sum(counts.values())} rows ({fmt}); {verdict.describe()}")
    if not verdict.ok:
        raise fail("the audit chain does not verify after the restore (is "
                   "KETACLINIC_SECRET_KEY the same as on the source instance?)", 1)


@app.command("doctor")
def doctor_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON")] = False,
) -> None:
    """Check this instance as an operator would before opening the clinic: settings, secret
    strength, data dir permissions, database reachable, schema at head, durability, free disk
    and writes, audit chain against the latest checkpoint. Every check runs; exits 1 if any
    fails (warnings do not fail)."""
    from rich.table import Table

    from ketaclinic.cli import environ
    from ketaclinic.services.doctor import run_doctor

    report = run_doctor(environ())
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        table = Table("check", "status", "detail", title="ketaclinic doctor")
        colour = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for c in report.checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)
