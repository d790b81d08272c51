"""Backup and restore for both backends, plus per-table digests to prove a restore is exact.

Formats (the first bytes of a file say which one it is):

- ``sqlite``: a SQLite database file written with SQLite's online backup API (a consistent
  snapshot while the clinic keeps working). Restores into a SQLite target.
- ``pgdump``: ``pg_dump --format=custom`` (PostgreSQL; needs ``pg_dump``/``pg_restore`` on PATH,
  same major version as the server or newer). Restores into a PostgreSQL target.
- ``jsonl``: portable JSON lines, every table of ``Base.metadata`` in dependency order, read in
  one snapshot transaction. Restores into either backend (the target schema is migrated first),
  so it also moves a clinic from SQLite to PostgreSQL.

The audit chain is keyed by the instance secret: restore into an instance that runs with the
same ``KETACLINIC_SECRET_KEY``, or the chain will not verify.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ketaclinic.store import migrate
from ketaclinic.store.models import Base
from ketaclinic.store.private import private_file

Format = Literal["sqlite", "pgdump", "jsonl"]
JSONL_MAGIC = "ketaclinic-backup"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """The backup or restore cannot be done; the message says why (no patient data)."""


# --- digests ------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"d": format(value.normalize(), "f")}
    if isinstance(value, dt.datetime):
        return {"t": value.replace(tzinfo=None).isoformat()}
    if isinstance(value, dt.date):
        return {"D": value.isoformat()}
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    return value


def _ordered_rows(conn: Any, table: Table) -> Iterator[dict[str, Any]]:
    """The table's rows in primary-key order, with the columns the database has: a database
    one revision behind (backed up before `ketaclinic migrate`) lacks the newest columns."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    columns = [c for c in table.columns if c.name in present]
    order = [c for c in table.primary_key.columns if c.name in present] or columns
    result = conn.execution_options(yield_per=2000).execute(select(*columns).order_by(*order))
    for row in result.mappings():
        yield dict(row)


def table_digests(engine: Engine) -> dict[str, tuple[int, str]]:
    """Row count and SHA-256 of every application table, rows in primary-key order."""
    out: dict[str, tuple[int, str]] = {}
    with engine.connect() as conn:
        existing = set(inspect(conn).get_table_names())
        for table in Base.metadata.sorted_tables:
            if table.name not in existing:
                continue
            h = hashlib.sha256()
            n = 0
            for row in _ordered_rows(conn, table):
                h.update(json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True,
                                    default=str).encode())
                h.update(b"\n")
                n += 1
            out[table.name] = (n, h.hexdigest())
    return out


def is_empty(engine: Engine) -> bool:
    """True when no application table holds a row (a fresh or merely migrated instance)."""
    with engine.connect() as conn:
        existing = set(inspect(conn).get_table_names())
        for table in Base.metadata.sorted_tables:
            if table.name in existing and table.name != "audit_head":
                if conn.execute(select(func.count()).select_from(table)).scalar_one():
                    return False
    return True


def detect_format(path: Path) -> Format:
    with path.open("rb") as f:
        head = f.read(64)
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_PGDUMP_MAGIC):
        return "pgdump"
    if head.lstrip().startswith(b"{") and JSONL_MAGIC.encode() in head:
        return "jsonl"
    raise BackupError(f"{path.name} is not a ketaclinic backup (sqlite, pg_dump or jsonl)")


def _libpq_url(engine: Engine) -> str:
    """The engine's URL in the form pg_dump understands (postgresql://, no driver)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _sqlite_path(engine: Engine) -> str:
    path = make_url(str(engine.url)).database
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return path


# --- backup -------------------------------------------------------------------------------
def backup(engine: Engine, out: Path, fmt: Format | Literal["auto"] = "auto") -> Format:
    """Write a consistent backup of the database behind ``engine`` to ``out``."""
    dialect = engine.dialect.name
    if fmt == "auto":
        fmt = "sqlite" if dialect == "sqlite" else ("pgdump" if shutil.which("pg_dump")
                                                    else "jsonl")
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    private_file(tmp)  # 0600 in a 0700 folder (if created here) before any row is written
    if fmt == "sqlite":
        if dialect != "sqlite":
            raise BackupError("the sqlite format backs up a SQLite database only")
        _backup_sqlite(_sqlite_path(engine), tmp)
    elif fmt == "pgdump":
        if dialect != "postgresql":
            raise BackupError("the pgdump format backs up a PostgreSQL database only")
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
              f"--file={tmp}", f"--dbname={_libpq_url(engine)}"], "pg_dump")
    elif fmt == "jsonl":
        _backup_jsonl(engine, tmp)
    else:
        raise BackupError(f"unknown backup format {fmt!r}")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(out)
    return fmt


def _backup_sqlite(source: str, tmp: Path) -> None:
    src = sqlite3.connect(source)
    dst = sqlite3.connect(str(tmp))
    try:
        src.backup(dst, pages=1024)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()


def _backup_jsonl(engine: Engine, tmp: Path) -> None:
    with engine.connect() as conn, tmp.open("w", encoding="utf-8") as f:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        existing = set(inspect(conn).get_table_names())
        tables = [t for t in Base.metadata.sorted_tables if t.name in existing]
        f.write(json.dumps({"format": JSONL_MAGIC, "version": 1, "revision": revision,
                            "tables": [t.name for t in tables]}) + "\n")
        for table in tables:
            for row in _ordered_rows(conn, table):
                f.write(json.dumps({"t": table.name, "r": {k: _plain(v) for k, v in row.items()}},
                                   separators=(",", ":")) + "\n")


def _run(cmd: list[str], what: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise BackupError(f"{what} is not installed (install postgresql-client) or use "
                          "--format jsonl")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupError(f"{what} failed: {last[:300]}")


# --- restore ------------------------------------------------------------------------------
Check = Callable[[Connection], "str | None"]


def restore(engine: Engine, source: Path, *, force: bool = False,
            check: Check | None = None) -> Format:
    """Restore ``source`` into the database behind ``engine``.

    ``check(connection)`` runs on the restored data BEFORE it replaces the target and returns a
    reason to refuse it (e.g. the audit chain does not verify) or None. A refused restore
    leaves the target exactly as it was: a SQLite backup is restored into a new file beside
    the target and swapped in only after the check; a pg_dump backup is restored into a
    scratch database first; a JSON-lines backup is loaded and checked in one transaction that
    rolls back.
    """
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    fmt = detect_format(source)
    if not force and not is_empty(engine):
        raise BackupError("the target database is not empty; restore into a fresh instance "
                          "or pass --force to replace its contents")
    if fmt == "sqlite":
        if engine.dialect.name != "sqlite":
            raise BackupError("a SQLite backup restores into SQLite; use --format jsonl to move "
                              "between backends")
        _restore_sqlite(engine, source, check)
    elif fmt == "pgdump":
        if engine.dialect.name != "postgresql":
            raise BackupError("a pg_dump backup restores into PostgreSQL only")
        if check is not None:
            _check_pgdump_in_scratch(engine, source, check)
        engine.dispose()
        _drop_all_pg(engine)
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
              "--single-transaction", f"--dbname={_libpq_url(engine)}", str(source)],
             "pg_restore")
    else:
        _restore_jsonl(engine, source, check)
    engine.dispose()
    return fmt


def _refuse_unless_ok(check: Check | None, conn: Connection) -> None:
    reason = check(conn) if check is not None else None
    if reason:
        raise BackupError(f"the backup was not restored, the target is unchanged: {reason}")


def _restore_sqlite(engine: Engine, source: Path, check: Check | None) -> None:
    target = Path(_sqlite_path(engine))
    staging = target.with_name(target.name + ".restoring")
    staging.unlink(missing_ok=True)
    src, dst = sqlite3.connect(str(source)), sqlite3.connect(str(staging))
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    scratch = create_engine(f"sqlite:///{staging.as_posix()}")
    try:
        with scratch.connect() as conn:
            _refuse_unless_ok(check, conn)
    except BaseException:
        scratch.dispose()
        staging.unlink(missing_ok=True)
        raise
    scratch.dispose()
    engine.dispose()
    old = sqlite3.connect(str(target))
    try:  # fold the target's write-ahead log in, so no stale log meets the new file
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        old.close()
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    staging.replace(target)
    new = sqlite3.connect(str(target))
    try:
        new.execute("PRAGMA journal_mode=WAL")
    finally:
        new.close()


def _check_pgdump_in_scratch(engine: Engine, source: Path, check: Check) -> None:
    name = f"{engine.url.database}_restore_{os.getpid()}_{int(time.time())}"[:63]
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except SQLAlchemyError as exc:
        raise BackupError("cannot create a scratch database to verify the backup before it "
                          "replaces the target (the database user needs CREATEDB); the "
                          f"target is unchanged ({type(exc).__name__})") from exc
    scratch = create_engine(engine.url.set(database=name))
    try:
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
              f"--dbname={_libpq_url(scratch)}", str(source)], "pg_restore")
        with scratch.connect() as conn:
            _refuse_unless_ok(check, conn)
    finally:
        scratch.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_all_pg(engine: Engine) -> None:
    with engine.begin() as conn:
        names = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))]
        if names:
            conn.execute(text("DROP TABLE " + ", ".join(f'"{n}"' for n in names) + " CASCADE"))


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, raw), = value.items()
        if tag == "d":
            return Decimal(raw)
        if tag == "t":
            return dt.datetime.fromisoformat(raw)
        if tag == "D":
            return dt.date.fromisoformat(raw)
        if tag == "b":
            return base64.b64decode(raw)
    return value


def _restore_jsonl(engine: Engine, source: Path, check: Check | None = None) -> None:
    with source.open(encoding="utf-8") as f:
        header = json.loads(f.readline())
        if header.get("format") != JSONL_MAGIC or header.get("version") != 1:
            raise BackupError("unsupported backup header")
        problem = migrate.refusal(header["revision"])
        if problem:
            raise BackupError(problem.replace("the database is", "the backup is"))
        # A backup of the pre-squash head loads into the baseline: the same schema.
        revision = (migrate.BASELINE if header["revision"] == migrate.PRE_BASELINE_HEAD
                    else header["revision"])
        migrate.upgrade(engine, revision or "head")
        if migrate.current_revision(engine) != revision:
            raise BackupError("the target schema could not be brought to the backup's revision")
        tables = {t.name: t for t in Base.metadata.sorted_tables}
        unknown = [n for n in header["tables"] if n not in tables]
        if unknown:
            raise BackupError(f"this version does not know the tables {unknown}")
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            batch: list[dict[str, Any]] = []
            current: str | None = None
            for line in f:
                item = json.loads(line)
                if item["t"] != current or len(batch) >= 1000:
                    if batch and current:
                        conn.execute(tables[current].insert(), batch)
                    batch, current = [], item["t"]
                batch.append({k: _decode(v) for k, v in item["r"].items()})
            if batch and current:
                conn.execute(tables[current].insert(), batch)
            if engine.dialect.name == "postgresql":
                _reset_sequences(conn)
            _refuse_unless_ok(check, conn)  # raising rolls the whole load back


def _reset_sequences(conn: Any) -> None:
    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement in (True, "auto") and str(pk[0].type) in (
                "INTEGER", "BIGINT"):
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": pk[0].name}).scalar()
            if seq:
                conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT MAX("{pk[0].name}") '
                                  f'FROM "{table.name}"), 0) + 1, false)'), {"s": seq})
