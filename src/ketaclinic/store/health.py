"""Storage health: a full disk or a lost database told apart from a bug, and a readiness check.

A full disk or an unreachable database is an operator's problem, not a crash: the app answers
503 with a message that says what to do (and nothing is saved: the transaction rolled back).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ketaclinic.store.db import Database

PG_DISK_FULL = "53100"
PG_OUT_OF_RESOURCES = {"53000", "53100", "53200", "53300"}


@dataclass(frozen=True)
class StorageProblem:
    code: str
    message: str


DISK_FULL = StorageProblem(
    "disk full", "The server's disk is full, so nothing was saved. Ask the administrator to "
    "free disk space, then try again.")
DATABASE_DOWN = StorageProblem(
    "database unavailable", "The database is not reachable right now, so nothing was saved. "
    "Try again in a minute; if it persists, tell the administrator.")


def storage_problem(exc: BaseException) -> StorageProblem | None:
    """DISK_FULL or DATABASE_DOWN when ``exc`` is one of those, else None (a real bug)."""
    if isinstance(exc, OSError):
        return DISK_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else None
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    if getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return DISK_FULL
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == PG_DISK_FULL:
        return DISK_FULL
    if sqlstate in PG_OUT_OF_RESOURCES or exc.connection_invalidated:
        return DATABASE_DOWN
    if sqlstate is not None and sqlstate.startswith("08"):  # connection exception class
        return DATABASE_DOWN
    return None


def storage_folder(database_url: str, data_dir: Path) -> Path:
    """The folder whose disk must have room: the SQLite file's, else the data folder."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent
    return data_dir


def read_replica_revision(db: Database) -> str | None:
    """The schema revision the read replica holds: a real read of a ketaclinic table."""
    with db.analytics() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def replica_problem(db: Database) -> str | None:
    """Why the read replica cannot serve the dashboard's reads, or None."""
    try:
        read_replica_revision(db)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; type only
        return f"read replica cannot be read ({type(exc).__name__})"
    return None


def readiness(db: Database, folder: Path, min_free_mb: int) -> list[str]:
    """What keeps this instance from serving (empty: ready): the database must take a write
    (in a transaction that is rolled back), a configured read replica must answer a read, and
    the data folder must have free space."""
    problems = []
    try:
        with db.engine.connect() as conn:
            trans = conn.begin()
            try:
                # A write statement that matches no row: refused by a read-only database
                # (SQLite takes its write lock at BEGIN), and it locks no row others use.
                conn.execute(text("UPDATE audit_head SET count = count WHERE id = -1"))
            finally:
                trans.rollback()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; type only
        problems.append(f"database does not accept writes ({type(exc).__name__})")
    if db.has_replica:
        problem = replica_problem(db)
        if problem:
            problems.append(problem)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free_mb, needed = shutil.disk_usage(folder).free / (1024 * 1024), max(min_free_mb, 1)
    if free_mb < needed:
        problems.append(f"{free_mb:.0f} MB free on the database's disk, below the {needed} MB "
                        "needed (KETACLINIC_MIN_FREE_DISK_MB)")
    return problems
