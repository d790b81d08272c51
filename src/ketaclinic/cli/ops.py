"""Operations commands: backup and restore (see docs/harden.md)."""

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


@app.command("backup")
def backup_cmd(
    out: Annotated[Path, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option(
        "--format", help="auto (sqlite file / pg_dump), sqlite, pgdump or jsonl")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
) -> None:
    """Write a consistent backup of the database while the clinic keeps working."""
    if fmt not in {"auto", "sqlite", "pgdump", "jsonl"}:
        raise fail("--format must be auto, sqlite, pgdump or jsonl")
    engine = _engine()
    try:
        written = backup(engine, out, fmt)  # type: ignore[arg-type]
        counts = {name: n for name, (n, _h) in table_digests(engine).items()}
    except BackupError as exc:
        raise fail(str(exc), 1) from exc
    finally:
        engine.dispose()
    summary = {"file": str(out), "format": written, "bytes": out.stat().st_size, "rows": counts}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(f"backup written to {out} ({written}, {summary['bytes']} bytes, "
                      f"{sum(counts.values())} rows in {len(counts)} tables)")


@app.command("restore")
def restore_cmd(
    source: Annotated[Path, typer.Argument(help="A file written by `ketaclinic backup`")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of a non-empty target database")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
) -> None:
    """Restore a backup into this instance's (fresh) database and verify the audit chain."""
    from ketaclinic.bootstrap import audit_key
    from ketaclinic.services.audit import AuditTrail
    from ketaclinic.store.db import Database

    cfg = settings()
    engine = _engine()
    try:
        fmt = restore(engine, source, force=force)
        db = Database(engine)
        with db.transaction() as s:
            verdict = AuditTrail(audit_key(cfg)).verify(s)
        counts = {name: n for name, (n, _h) in table_digests(engine).items()}
    except BackupError as exc:
        raise fail(str(exc), 1) from exc
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"format": fmt, "rows": counts, "audit_ok": verdict.ok,
                               "audit": verdict.describe()}))
    else:
        console.print(f"restored {sum(counts.values())} rows ({fmt}); {verdict.describe()}")
    if not verdict.ok:
        raise fail("the audit chain does not verify after the restore (is "
                   "KETACLINIC_SECRET_KEY the same as on the source instance?)", 1)
