"""Engine construction and durability settings for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from ketaclinic.store.private import private_file


class DurabilityError(RuntimeError):
    """The database would not keep acknowledged writes across a crash."""


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10) -> Engine:
    """Create an engine. SQLite gets WAL, synchronous=FULL, foreign keys and immediate writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(url, busy_timeout_ms)
    # hide_parameters: a database error's message never carries the values (patient data).
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                         hide_parameters=True)


def _make_sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith(
            "file:"):
        # Created private before SQLite opens it; its -wal and -shm files copy its mode.
        private_file(Path(parsed.database))
    engine = create_engine(
        url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a transaction never upgrades from read to write, so
        # concurrent writers wait (busy_timeout) instead of failing with "database is locked".
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_read_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10) -> Engine:
    """An engine for the read replica (``KETACLINIC_READ_DATABASE_URL``) that cannot write.

    SQLite opens the file read-only (a ``mode=ro`` URI, plus ``query_only``): a write is
    refused, a missing file is an error instead of a new empty database, and its reads take no
    write lock (plain ``BEGIN``, not the primary's ``BEGIN IMMEDIATE``). PostgreSQL marks each
    transaction ``READ ONLY`` (a standby refuses writes anyway; this also holds when the URL
    names a primary, and is transaction-local, so safe behind PgBouncer).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size,
                               max_overflow=pool_size, hide_parameters=True)

        @event.listens_for(engine, "begin")
        def _read_only_transaction(conn: Any) -> None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")

        return engine
    engine = create_engine(
        sqlite_read_only_url(url),
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")  # deferred: one snapshot for the reads, no write lock

    return engine


def sqlite_read_only_url(url: str) -> URL:
    """A SQLite URL as a ``file:`` URI opened read-only (``mode=ro``): ``sqlite:///a b.db``
    becomes database ``file:a%20b.db`` with query ``mode=ro&uri=true``."""
    parsed = make_url(url)
    database = parsed.database or ""
    if not database.startswith("file:"):
        database = "file:" + quote(str(Path(database)), safe="/")
    query = {k: v for k, v in parsed.query.items() if k not in ("mode", "uri")}
    return parsed.set(database=database, query={**query, "mode": "ro", "uri": "true"})


def relax_sqlite_sync_for_bulk_seeding(engine: Engine) -> None:
    """Commit without an fsync each (``synchronous=NORMAL``) on this engine's SQLite connections.

    For writing synthetic demo data only: thousands of small transactions, each waiting for the
    disk under ``synchronous=FULL``, made the first ``make run`` slow. In WAL mode NORMAL keeps
    the database consistent after a crash of the process; a power cut may lose the last
    transactions of the seeding, which is synthetic data that ``ketaclinic demo`` writes again.
    The setting belongs to the connection: the server opens its own with ``synchronous=FULL``
    and :func:`check_durability` still holds it to that. PostgreSQL is left as it is.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "checkout")
    def _normal_sync(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def check_durability(engine: Engine) -> list[str]:
    """Return the weakened durability settings found (empty when all is well)."""
    problems: list[str] = []
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
            fks = conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
            if str(mode).lower() != "wal":
                problems.append(f"SQLite journal_mode is {mode}, expected wal")
            if int(sync) < 2:
                problems.append(f"SQLite synchronous is {sync}, expected 2 (FULL) or 3 (EXTRA)")
            if int(fks) != 1:
                problems.append("SQLite foreign_keys is off")
        elif engine.dialect.name == "postgresql":
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                value = conn.execute(text(f"SHOW {name}")).scalar()
                if str(value).lower() in {"off", "local"}:
                    problems.append(f"PostgreSQL {name} is {value}, expected on")
    return problems


class Database:
    """The engine plus a session factory; ``transaction()`` is the unit of work.

    ``read_engine`` is where read-only analytic queries go (:meth:`analytics`): a read replica
    when one is configured, else the primary ``engine``. Nothing is ever written through it."""

    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine if read_engine is not None else engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=True)

    @property
    def has_replica(self) -> bool:
        return self.read_engine is not self.engine

    @contextmanager
    def analytics(self) -> Iterator[Connection]:
        """A connection for read-only analytic queries (the replica's, when configured); its
        transaction is rolled back at the end, so nothing done on it is kept."""
        with self.read_engine.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """The factory behind ``transaction()`` (services register session events on it)."""
        return self._sessions

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.has_replica:
            self.read_engine.dispose()
